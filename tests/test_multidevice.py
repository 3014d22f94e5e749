"""The same run on 1 or 8 devices, or on 2 processes: the same numbers, and
checkpoints that move between device counts. Each run is its own process, with
virtual CPU devices made by XLA_FLAGS before JAX starts; the two-process run
talks over loopback."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from vae_jax.runs import checkpoints
from vae_jax.runs import writers

TESTS = pathlib.Path(__file__).resolve().parent


_SCRIPT = """
import json, sys
import jax
workdir, overrides, num_devices, num_processes, process_id, port = sys.argv[1:]
if int(num_processes) > 1:
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(f'127.0.0.1:{port}', int(num_processes), int(process_id))
assert jax.device_count() == int(num_devices) * int(num_processes), jax.devices()
from conftest import tiny_config
from vae_jax.training import train
train.train_and_evaluate(tiny_config(**json.loads(overrides)), workdir)
"""


def _xla_flags(num_devices):
  """The suite's XLA_FLAGS (conftest) with `num_devices` virtual CPU devices added."""
  return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={num_devices}".strip()


def _start(workdir, num_devices, overrides, num_processes=1, process_id=0, port=0):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=_xla_flags(num_devices))
  args = [str(workdir), json.dumps(overrides), str(num_devices), str(num_processes), str(process_id), str(port)]
  return subprocess.Popen([sys.executable, '-c', _SCRIPT, *args], cwd=TESTS, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait(proc):
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]


def _train(workdir, num_devices, **overrides):
  """Trains tiny_config(**overrides) in a fresh process that sees `num_devices` CPU devices."""
  _wait(_start(workdir, num_devices, overrides))
  return json.loads((workdir / 'eval.json').read_text())


def _train_losses(workdir):
  return np.array([r['train/loss'] for r in writers.read_metrics(workdir) if 'train/loss' in r])


def _assert_same_params(a, b):
  pa, step_a = checkpoints.restore_params(a)
  pb, step_b = checkpoints.restore_params(b)
  assert step_a == step_b
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-4), pa, pb)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('devices')
  out = {}
  for name, devices, feed in [('one', 1, 'device'), ('eight', 8, 'device'), ('eight_stream', 8, 'stream')]:
    out[name] = (root / name, _train(root / name, devices, **{'data.feed': feed}))
  return out


@pytest.mark.parametrize('other', ['eight', 'eight_stream'])
def test_eight_devices_match_one(runs, other):
  (one, eval_one), (eight, eval_eight) = runs['one'], runs[other]
  np.testing.assert_allclose(_train_losses(eight), _train_losses(one), rtol=1e-4)
  _assert_same_params(one, eight)
  for key in ('elbo_nats', 'nll_nats', 'kl_nats'):
    assert eval_eight[key] == pytest.approx(eval_one[key], rel=1e-4), key
  saved = json.loads((eight / 'config.json').read_text())
  assert len(saved['resolved']['devices']) == 8


@pytest.mark.parametrize('feed', ['device', 'stream'])
def test_two_processes_behave_as_one(runs, tmp_path, feed):
  """jax.distributed over loopback: 2 processes x 2 devices give the 1-device run's numbers, the training set
  on the devices or streamed (each process reading its own half of each batch)."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  workdir = tmp_path / 'two_processes'
  procs = [_start(workdir, 2, {'data.feed': feed}, 2, i, port) for i in range(2)]
  for proc in procs:
    _wait(proc)
  one, eval_one = runs['one']
  eval_two = json.loads((workdir / 'eval.json').read_text())
  for key in ('elbo_nats', 'nll_nats'):
    assert eval_two[key] == pytest.approx(eval_one[key], rel=1e-4), key
  np.testing.assert_allclose(_train_losses(workdir), _train_losses(one), rtol=1e-4)
  _assert_same_params(one, workdir)


def test_checkpoint_saved_on_eight_devices_resumes_on_one(runs, tmp_path):
  eight, _ = runs['eight']
  moved = tmp_path / 'moved'
  shutil.copytree(eight, moved)
  steps = sorted(int(p.name) for p in (moved / 'checkpoints').iterdir() if p.name.isdigit())
  for step in steps[-2:]:
    shutil.rmtree(moved / 'checkpoints' / str(step))
  (moved / 'eval.json').unlink()
  _train(moved, 1, **{'data.feed': 'device'})
  _assert_same_params(eight, moved)


_KINDS_SCRIPT = """
import json, sys
import jax
import numpy as np
cases, num_devices = sys.argv[1:]
assert jax.device_count() == int(num_devices), jax.devices()
from conftest import tiny_config
from vae_jax import data, evaluation
from vae_jax.training import feeds, optimizer, train
from vae_jax.training import setup as setup_lib
out = {}
for name, overrides in json.loads(cases).items():
  config = tiny_config(**overrides)
  setup = setup_lib.make_setup(config, data.load(config))
  state, metrics = feeds.make_feed(setup, 'scan').run(setup.initial_state(), 0, 10)
  params = optimizer.eval_params(state)
  evaluator = evaluation.Evaluator(setup.model, 100, 4, 2, setup.mesh)
  test = setup.dataset.test
  results = evaluator.evaluate(params, test.images[:100], jax.random.key(1), config.model.likelihood, test.labels[:100])
  out[name] = {'loss': np.asarray(metrics['loss']).tolist(), 'eval': results,
               'params': [float(np.sum(np.abs(np.asarray(p)))) for p in jax.tree.leaves(params)]}
print(json.dumps(out))
"""


def test_every_kind_on_eight_devices_matches_one():
  """Ten train steps and an evaluation of a hierarchy with an EMA, the VampPrior and free bits (a batch
  statistic), a CVAE with its class prior (labels sharded with the images), and a VQ-VAE whose EMA
  codebook and dead-code restarts are batch statistics: the same losses, parameters and test numbers
  on 8 devices as on 1."""
  from test_kinds import KINDS  # pylint: disable=g-import-not-at-top
  cases = {name: KINDS[name] for name in ('hvae-mlp-vampprior', 'cvae-class-prior', 'vqvae-ema-restarts')}
  out = {}
  for devices in (1, 8):
    env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=_xla_flags(devices))
    proc = subprocess.run([sys.executable, '-c', _KINDS_SCRIPT, json.dumps(cases), str(devices)], cwd=TESTS,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out[devices] = json.loads(proc.stdout.strip().splitlines()[-1])
  for name in cases:
    one, eight = out[1][name], out[8][name]
    np.testing.assert_allclose(eight['loss'], one['loss'], rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(eight['params'], one['params'], rtol=1e-4, err_msg=name)
    for key in ('elbo_nats', 'nll_nats', 'kl_per_group_nats'):
      np.testing.assert_allclose(eight['eval'][key], one['eval'][key], rtol=1e-4, err_msg=f'{name} {key}')
