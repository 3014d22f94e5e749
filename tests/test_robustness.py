"""Faults a long run meets, and what the run does: preemption by SIGTERM,
unreadable checkpoints, NaNs and exploding gradients, a workdir of another
run, and checkpoints that never execute code."""

import json
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vae_jax
from vae_jax import errors
from vae_jax.runs import checkpoints
from vae_jax.runs import writers
from vae_jax.training import objectives
from vae_jax.training import setup as setup_lib
from vae_jax.training import step as step_lib
from vae_jax.training import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _params(workdir, step=None):
  params, _ = checkpoints.restore_params(workdir, step)
  return jax.device_get(params)


def _assert_bitwise_equal(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), a, b)


# ---------------------------------------------------------------- preemption

_PREEMPTIBLE = ['--config=configs/digits.py', '--config.num_epochs=60', '--config.steps_per_dispatch=10',
                '--config.dispatch=scan',  # two workdirs, compared bit for bit: the same programs
                '--config.log_every_steps=10', '--config.checkpoint_every_steps=400',
                '--config.eval.num_importance_samples=5', '--config.eval.every_epochs=20',
                '--config.eval.measures=false']


def _main(workdir, *args):
  cmd = [sys.executable, '-m', 'vae_jax.main', f'--workdir={workdir}', *_PREEMPTIBLE, *args]
  return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def test_sigterm_saves_and_the_rerun_matches_an_uninterrupted_run_bit_for_bit(tmp_path):
  whole, cut = tmp_path / 'whole', tmp_path / 'cut'
  proc = _main(cut)
  deadline = time.time() + 240
  while time.time() < deadline:  # wait until training is under way, then preempt it
    metrics = cut / writers.METRICS_FILE
    if metrics.exists() and metrics.read_text().count('train/loss') >= 3:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == errors.PREEMPTED_EXIT_CODE, stderr[-2000:]
  assert stderr.strip().splitlines()[-1].startswith('preempted: SIGTERM received: saved the checkpoint at step')
  saved = checkpoints.manager(cut, read_only=True).all_steps()
  assert saved and max(saved) < 1200 and not (cut / 'eval.json').exists()

  for workdir in (cut, whole):  # the rerun continues; the other runs uninterrupted
    proc = _main(workdir)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
  _assert_bitwise_equal(_params(cut), _params(whole))
  assert json.loads((cut / 'eval.json').read_text())['nll_nats'] == json.loads(
      (whole / 'eval.json').read_text())['nll_nats']


# ---------------------------------------------------------------- checkpoints


def test_unreadable_latest_checkpoint_resumes_from_the_previous(finished, tmp_path, make_config, caplog):
  copy = tmp_path / 'copy'
  shutil.copytree(finished, copy)
  (copy / 'eval.json').unlink()
  latest = max(checkpoints.manager(copy, read_only=True).all_steps())
  for f in (copy / 'checkpoints' / str(latest)).rglob('*'):
    if f.is_file():
      f.write_bytes(b'\x00garbage' * 7)
  with caplog.at_level('WARNING'):
    train.train_and_evaluate(make_config(), copy)
  assert any(f'checkpoint at step {latest}' in r.getMessage() and 'cannot be read' in r.getMessage()
             for r in caplog.records)
  assert (copy / 'unreadable_checkpoints' / str(latest)).is_dir()  # kept for inspection, not deleted
  _assert_bitwise_equal(_params(copy), _params(finished))


def test_checkpoints_never_unpickle(finished, monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError('a checkpoint tried to unpickle')
  monkeypatch.setattr(pickle, 'load', refuse)
  monkeypatch.setattr(pickle, 'loads', refuse)
  monkeypatch.setattr(pickle, 'Unpickler', refuse)
  run = vae_jax.load_run(finished)
  assert run.sample(jax.random.key(0), 2).shape == (2, 8, 8, 1)


# ---------------------------------------------------------------- non-finite steps


def _nan_when(condition):
  """Wraps the real objective so that the loss is NaN when `condition(x)` holds."""
  real_make = objectives.make

  def make(config, num_train=None):
    objective = real_make(config, num_train)
    real_loss = objective.loss

    def poisoned(model, params, batch, keys, kl_weight):
      loss, metrics = real_loss(model, params, batch, keys, kl_weight)
      return jnp.where(condition(batch['x']), jnp.nan, loss), metrics
    objective.loss = poisoned
    return objective
  return make


def test_a_nan_step_is_skipped_and_leaves_the_state_unchanged(make_config):
  config = make_config()
  setup = setup_lib.make_setup(config, vae_jax.data.load(config))
  state = setup.initial_state()
  nan_step = step_lib.make_train_step(setup.model, _nan_when(lambda x: True)(config), setup.schedule,
                                   lambda step: 1.0, True)
  batch = {'x': jnp.asarray(setup.dataset.train.images[:config.batch_size]),
           'label': jnp.asarray(setup.dataset.train.labels[:config.batch_size])}
  after, metrics = jax.jit(nan_step)(state, batch, jax.random.key(0))
  assert int(metrics['skipped']) == 1 and int(after.step) == int(state.step) + 1
  _assert_bitwise_equal(jax.device_get((after.params, after.opt_state)),
                        jax.device_get((state.params, state.opt_state)))


def test_injected_nans_are_skipped_and_counted(make_config, tmp_path, monkeypatch):
  # Roughly half the batches (an odd number of lit pixels) get a NaN loss.
  monkeypatch.setattr(objectives, 'make', _nan_when(lambda x: jnp.sum(x).astype(jnp.int32) % 2 == 1))
  results = train.train_and_evaluate(make_config(), tmp_path)
  records = writers.read_metrics(tmp_path)
  total = max(r['train/skipped_steps_total'] for r in records if 'train/skipped_steps_total' in r)
  assert 10 <= total <= 70, total   # of 80 steps
  assert all(np.isfinite(v).all() for v in jax.tree.leaves(_params(tmp_path)))
  assert np.isfinite(results['nll_nats'])


def test_too_many_skips_in_a_row_stop_and_keep_the_last_good_checkpoint(finished, tmp_path, make_config,
                                                                        monkeypatch):
  copy = tmp_path / 'copy'
  shutil.copytree(finished, copy)  # as if preempted at step 40: then every step gets a NaN
  for step in checkpoints.manager(copy, read_only=True).all_steps():
    if step > 40:
      shutil.rmtree(copy / 'checkpoints' / str(step))
  (copy / 'eval.json').unlink()
  monkeypatch.setattr(objectives, 'make', _nan_when(lambda x: True))
  with pytest.raises(errors.TrainingError, match=r'10 steps in a row were skipped by step 50 .* The last good '
                     r'checkpoint is step 40'):
    train.train_and_evaluate(make_config(max_consecutive_skips=10), copy)
  assert max(checkpoints.manager(copy, read_only=True).all_steps()) == 40
  _assert_bitwise_equal(_params(copy, 40), _params(finished, 40))


def test_gradient_norm_above_skip_threshold_is_skipped(make_config, tmp_path):
  with pytest.raises(errors.TrainingError, match='skip_threshold=1e-06'):
    train.train_and_evaluate(make_config(skip_threshold=1e-6, max_consecutive_skips=5), tmp_path)


# ---------------------------------------------------------------- workdirs


def test_workdir_of_another_run_is_refused_or_moved_aside(finished, tmp_path, make_config):
  copy = tmp_path / 'run'
  shutil.copytree(finished, copy)
  other = make_config(**{'model.latent_dim': 3, 'seed': 1})
  with pytest.raises(errors.WorkdirError, match=r'model.latent_dim=4, but this config has model.latent_dim=3 '
                     r'\(and 1 more: seed\); use a new --workdir, or pass --replace_run'):
    train.train_and_evaluate(other, copy)
  train.train_and_evaluate(other, copy, replace_run=True)
  assert checkpoints.read_config(copy).model.latent_dim == 3
  assert checkpoints.read_config(tmp_path / 'run.old-1').model.latent_dim == 4  # nothing lost
  _assert_bitwise_equal(_params(tmp_path / 'run.old-1'), _params(finished))
