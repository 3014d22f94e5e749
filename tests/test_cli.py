"""The command line: config overrides, and bad input as one clear line with a
non-zero exit, no traceback and nothing written."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from vae_jax import errors
from vae_jax.training import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _main(workdir, *overrides, env=None):
  cmd = [sys.executable, '-m', 'vae_jax.main', '--config=configs/digits.py', f'--workdir={workdir}', *overrides]
  env = dict(os.environ, JAX_PLATFORMS='cpu', **(env or {}))
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_config_overrides_reach_the_run(tmp_path):
  proc = _main(tmp_path, '--config.num_epochs=1', '--config.model.latent_dim=3',
               '--config.model.hidden_sizes=(32,16)', '--config.eval.num_importance_samples=5')
  assert proc.returncode == 0, proc.stderr[-2000:]
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['model']['latent_dim'] == 3
  assert saved['model']['hidden_sizes'] == [32, 16]
  assert json.loads((tmp_path / 'eval.json').read_text())['num_importance_samples'] == 5
  assert 'steps/s' in proc.stderr and 'ETA' in proc.stderr


# What the command line itself does with bad input: one `error:` line, exit 2, no traceback, no workdir.
@pytest.mark.parametrize('override,expected', [
    ('--config.data.name=imagenet', "data.name='imagenet' is not allowed; use one of mnist, fashion_mnist"),
    ('--config.batch_size=100000', 'batch_size=100000 is larger than the 1297 training images of digits'),
    ('--config.model.latnt_dim=3',
     'unknown config field model.latnt_dim (--config.model.latnt_dim); did you mean model.latent_dim?'),
    ('--config.model.latent_dim=abc', 'flag --config.model.latent_dim=abc: invalid literal for int()'),
    ('--config=configs/no_such_config.py', "--config: Configuration is not available"),
])
def test_bad_input_is_one_clear_line(tmp_path, override, expected):
  workdir = tmp_path / 'run'
  proc = _main(workdir, override)
  assert proc.returncode == 2
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and expected in last, proc.stderr[-2000:]
  assert not workdir.exists(), 'bad input must not leave a workdir behind'


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
  """The command line's exit code and line; the other unusable workdirs: test_run_faults, in this process."""
  path = tmp_path / 'FILE'
  path.write_text('not a run\n')
  proc = _main(path)
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [
      f"error: workdir {path} is a file, not a directory; give --workdir a directory (a new one, or a run's)"]
  assert path.read_text() == 'not a run\n'


# The same path for bad values, checked in this process (a command line costs 3 s of imports each): the
# UserError that the command line prints as its one line, raised before anything is written.
@pytest.mark.parametrize('overrides,expected', [
    ({'model.kind': 'gan'}, "model.kind='gan' is not allowed; use one of vae, iwae, ae"),
    ({'model.latent_dim': 0}, 'model.latent_dim=0 must be a positive integer'),
    ({'model.beta': -1.0}, 'model.beta=-1.0 must be >= 0'),
    ({'eval.num_importance_samples': 0}, 'eval.num_importance_samples=0 must be >= 1'),
    ({'model.num_importance_samples': 0}, 'model.num_importance_samples=0 must be >= 1'),
    ({'model.likelihood': 'poisson'}, "model.likelihood='poisson' is not allowed; use one of bernoulli, gaussian"),
    ({'model.pixel_context': 1, 'model.likelihood': 'gaussian'},
     'model.pixel_context=1 is a part of the bernoulli and logistic_mixture likelihoods, not of gaussian'),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, make_config, overrides, expected):
  config = make_config(**overrides)
  workdir = tmp_path / 'run'
  with pytest.raises(errors.UserError) as raised:
    train.train_and_evaluate(config, workdir)
  assert expected in str(raised.value) and '\n' not in str(raised.value)
  assert not workdir.exists(), 'bad input must not leave a workdir behind'


def test_batch_that_does_not_divide_over_the_devices(tmp_path):
  workdir = tmp_path / 'run'
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"
  proc = _main(workdir, '--config.batch_size=60', env={'XLA_FLAGS': flags})
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      'error: batch_size=60 does not divide over the 8 devices; use a multiple of 8')
  assert not workdir.exists()
