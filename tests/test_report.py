"""python -m vae_jax.report and experiments/explore_run.ipynb on tiny digits runs:
the report has every picture that applies and the test numbers with units, says
which pictures it left out and why, fails with one line on bad input; the
notebook is stored clean and runs headless, cell by cell, without an error."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import ipykernel.kernelspec
from jupyter_client import kernelspec
from jupyter_client import manager
import nbclient
import nbformat
import numpy as np
import pytest

from vae_jax.training import train
from vae_jax.viz import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / 'experiments' / 'explore_run.ipynb'
ALL_PICTURES = {'prior_samples.png', 'prior_samples_t0.7.png', 'prior_samples_by_temperature.png',
                'reconstructions.png', 'interpolation.png',
                'latent_traversal.png', 'latent_manifold.png', 'latent_scatter.png', 'training_curves.png',
                'samples_by_class.png'}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """A VAE with latent_dim=2 (so the manifold is drawn) and an autoencoder."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  out = {}
  for name, config in (('vae2', tiny_config(num_epochs=2, **{'model.latent_dim': 2})),
                       ('ae', tiny_config(num_epochs=1, **{'model.kind': 'ae'}))):
    workdir = tmp_path_factory.mktemp(name)
    train.train_and_evaluate(config, workdir)
    out[name] = workdir
  return out


def _pngs(directory: pathlib.Path) -> set[str]:
  return {p.name for p in directory.glob('*.png')}


def _check_pngs_and_links(out: pathlib.Path, md: str) -> None:
  """Every PNG is a real picture, report.md shows each one, and links to nothing else."""
  for name in _pngs(out):
    data = (out / name).read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 5000, name
  linked = set(re.findall(r'!\[[^\]]*\]\(([^)]+)\)', md))
  assert linked == _pngs(out)


def test_report_of_a_vae(runs):
  workdir = runs['vae2']
  path = report.write_report(workdir)
  out = workdir / 'report'
  assert pathlib.Path(path) == out / 'report.md'
  assert _pngs(out) == ALL_PICTURES - {'samples_by_class.png'}  # for conditional models (test_cvae)
  md = (out / 'report.md').read_text()
  _check_pngs_and_links(out, md)
  results = json.loads((workdir / 'eval.json').read_text())
  assert f'| {results["elbo_nats"]:.2f} | nats per example | `elbo_nats` |' in md
  assert f'{results["nll_nats"]:.2f} ± {results["nll_stderr_nats"]:.2f}' in md
  for key, fmt in (('recon_nats', '.2f'), ('kl_nats', '.2f'), ('bits_per_dim', '.3f')):
    assert f'| {results[key]:{fmt}} |' in md, key
  assert f'| {results["active_units"]} | count | `active_units` |' in md
  assert f'| {results["num_importance_samples"]} | count |' in md
  assert 'E_q[log p(x\\|z)]' in md  # the bar is escaped: it does not split the table row
  not_drawn = md.split('## Not drawn for this run')[1]
  assert not_drawn.strip().splitlines() == [
      "- `samples_by_class.png`: samples by class need a conditional model (model.kind=cvae); this run is "
      "model.kind='vae'",
      '- `mutual_information.png`: digits has no known factors of variation']  # dsprites: test_dsprites
  assert 'per-dimension KL from eval.json' in md


def test_report_of_an_autoencoder_lists_what_it_left_out(runs):
  workdir = runs['ae']
  report.write_report(workdir)
  out = workdir / 'report'
  assert _pngs(out) == {'reconstructions.png', 'interpolation.png', 'latent_scatter.png', 'training_curves.png'}
  md = (out / 'report.md').read_text()
  _check_pngs_and_links(out, md)
  not_drawn = md.split('## Not drawn for this run')[1]
  for name in ALL_PICTURES - _pngs(out):
    assert re.search(rf'- `{re.escape(name)}`: .*model.kind=\'ae\'', not_drawn), name
  assert '| n/a | nats per example | `elbo_nats` |' in md
  assert 'no likelihood of x' in md


def test_report_without_eval_json(runs, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(runs['vae2'], workdir, ignore=shutil.ignore_patterns('report'))
  (workdir / 'eval.json').unlink()
  md = report.write_report(workdir).read_text()
  assert 'No eval.json in this workdir yet' in md and '| metric |' not in md
  assert 'per-dimension KL from the test images' in md  # computed, since eval.json is gone
  assert _pngs(workdir / 'report') == ALL_PICTURES - {'samples_by_class.png'}


def test_cli_bad_workdir_is_one_line(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.report', f'--workdir={tmp_path / "nothing"}'], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and 'not a vae_jax run directory' in last, proc.stderr[-2000:]
  assert not (tmp_path / 'nothing').exists()


def test_notebook_is_stored_clean_and_installs_from_what_the_user_sets():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert nb.nbformat == 4
  stored = json.loads(NOTEBOOK.read_text())['cells']  # nbformat 4.5 needs an id on every cell
  assert all('id' in c for c in stored) and len({c['id'] for c in stored}) == len(stored)
  code = [c for c in nb.cells if c.cell_type == 'code']
  assert all(c.outputs == [] and c.execution_count is None for c in code)
  text = NOTEBOOK.read_text()
  # no link to a repository that may not exist: the install source is one visible setting, empty by default
  assert 'github.com/vae-jax' not in text and 'colab.research.google.com/github' not in text
  assert "VAE_JAX_SOURCE = ''" in code[0].source and 'VAE_JAX_SOURCE' in nb.cells[0].source
  assert 'find_spec(\'vae_jax\') is None' in code[0].source  # installs only where vae_jax is missing


def _kernel_manager(tmp_path: pathlib.Path) -> manager.KernelManager:
  """A kernel that runs this interpreter (sys.executable -m ipykernel_launcher), whatever kernels the
  machine has installed, so the notebook sees the same vae_jax as the test."""
  ipykernel.kernelspec.write_kernel_spec(tmp_path / 'kernels' / 'vae_jax_test')
  specs = kernelspec.KernelSpecManager(kernel_dirs=[str(tmp_path / 'kernels')])
  assert specs.get_kernel_spec('vae_jax_test').argv[:3] == [sys.executable, '-m', 'ipykernel_launcher']
  return manager.KernelManager(kernel_name='vae_jax_test', kernel_spec_manager=specs)


def test_notebook_runs_headless(runs, tmp_path, monkeypatch):
  monkeypatch.setenv('VAE_JAX_WORKDIR', str(runs['vae2']))
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell('import sys; print(sys.executable)'))
  client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=300,
                                   resources={'metadata': {'path': str(tmp_path)}})
  client.execute(cleanup_kc=True)  # raises CellExecutionError if a cell fails; shuts the kernel down
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  pictures = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(pictures) == 8  # every picture of the report, the manifold included
  printed = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream' and o.name == 'stdout')
  assert 'not drawn' not in printed
  assert printed.strip().splitlines()[-1] == sys.executable
  assert str(runs['vae2']) in printed  # the run named by VAE_JAX_WORKDIR
  per_image = [float(v) for v in re.findall(r'log p\(x\) ≈ (-?[\d.]+) nats', printed)]
  mean = float(re.search(r'mean over these 8: (-?[\d.]+) nats', printed).group(1))
  assert len(per_image) == 8 and mean == pytest.approx(np.mean(per_image), abs=0.01)
  results = json.loads((runs['vae2'] / 'eval.json').read_text())
  assert -80 < mean < 0 and abs(mean + results['nll_nats']) < 15  # digits: tens of nats, as the test set's
