"""python -m vae_jax.evaluate: reproduces training's evaluation, evaluates any
checkpoint and split, and fails with one clear line on bad input."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax.runs import evaluate as evaluate_lib
from vae_jax.runtime import parallel
from vae_jax.training import setup as setup_lib
from vae_jax.training import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tiny_vae_run):
  return tiny_vae_run


def test_same_samples_reproduce_training_eval(run):
  workdir, results = run
  again = evaluate_lib.evaluate_run(workdir, results['num_importance_samples'])
  for key in ('elbo_nats', 'nll_nats', 'recon_nats', 'kl_nats', 'bits_per_dim', 'active_units'):
    assert again[key] == pytest.approx(results[key], rel=1e-5), key
  assert json.loads((workdir / 'eval.json').read_text())['num_importance_samples'] == results['num_importance_samples']
  # eval.json names the dispatch mode that made the figures (the tiny config fixes scan; training's, reused)
  assert results['dispatch'] == again['dispatch'] == 'scan'


def test_more_samples_tighten_the_bound(run):
  workdir, results = run
  more = evaluate_lib.evaluate_run(workdir, 200)
  assert more['num_importance_samples'] == 200
  assert more['nll_nats'] < results['nll_nats'] + 3 * results['nll_stderr_nats']
  assert -more['nll_nats'] > more['elbo_nats']
  assert 0 <= more['active_units'] <= 4 and len(more['kl_per_dim_nats']) == 4
  assert more['binarization'] == 'dynamic (test binarized once, seed 0)'


def test_step_and_split(run):
  workdir, _ = run
  out = evaluate_lib.evaluate_run(workdir, 5, split='validation', step=40)
  assert out['step'] == 40 and out['split'] == 'validation' and out['num_examples'] == 200
  saved = json.loads((workdir / 'eval_validation_step40.json').read_text())
  assert saved['nll_nats'] == pytest.approx(out['nll_nats'])


def test_the_first_examples_are_the_whole_splits_first_without_measures(run, monkeypatch):
  workdir, _ = run
  saved, save = [], evaluation.SavedProgress.save
  monkeypatch.setattr(evaluation.SavedProgress, 'save', lambda self, terms: (saved.append(terms), save(self, terms))[1])
  evaluate_lib.evaluate_run(workdir, 5, split='validation', step=40)
  log_px = saved[-1]['log_px'].astype(np.float64)  # every example's, once the last batch is done
  assert len(log_px) == 200
  first = evaluate_lib.evaluate_run(workdir, 5, split='validation', step=40, num_examples=30, with_measures=False)
  assert first['num_examples'] == 30 and 'probe_accuracy' not in first
  assert first['nll_nats'] == pytest.approx(-np.mean(log_px[:30]), rel=1e-5)
  assert json.loads((workdir / 'eval_validation_first30_step40.json').read_text())['nll_nats'] == first['nll_nats']
  with pytest.raises(errors.ConfigError, match='--num_examples=201 is more than the 200 validation images'):
    evaluate_lib.evaluate_run(workdir, 5, split='validation', num_examples=201)
  with pytest.raises(errors.ConfigError, match='--num_examples=0 must be >= 1'):
    evaluate_lib.evaluate_run(workdir, 5, num_examples=0)
  with pytest.raises(errors.ConfigError, match='this run keeps no EMA'):
    evaluate_lib.evaluate_run(workdir, 5, parameters='ema')
  final = evaluate_lib.evaluate_run(workdir, 5, split='validation', step=40, num_examples=30, with_measures=False,
                                parameters='final')
  assert final['nll_nats'] == first['nll_nats'] and final['parameters'] == 'final'  # no EMA: the same ones
  assert (workdir / 'eval_validation_first30_final_step40.json').exists()


class _Stopped(Exception):
  pass


def test_an_interrupted_evaluation_resumes_with_the_same_numbers(run, monkeypatch):
  workdir, _ = run
  args = dict(num_importance_samples=20, split='validation', step=80, batch_size=80)  # 200 examples: 3 batches
  whole = evaluate_lib.evaluate_run(workdir, **args)
  progress = workdir / 'eval_validation_step80.json.progress.npz'
  assert not progress.exists()
  saves, save = [], evaluation.SavedProgress.save

  def save_then_stop(self, terms):
    save(self, terms)
    saves.append(len(terms['log_px']))
    if len(saves) == 2:
      raise _Stopped
  monkeypatch.setattr(evaluation.SavedProgress, 'save', save_then_stop)
  with pytest.raises(_Stopped):
    evaluate_lib.evaluate_run(workdir, **args)
  assert saves == [80, 160] and progress.exists()
  resumed = evaluate_lib.evaluate_run(workdir, **args)
  assert saves == [80, 160, 200]  # only the last batch was computed again
  for key in ('elbo_nats', 'nll_nats', 'nll_stderr_nats', 'recon_nats', 'kl_nats', 'active_units'):
    assert resumed[key] == whole[key], key
  assert not progress.exists()


def test_saved_progress_of_another_evaluation_or_damaged_is_not_resumed(tmp_path):
  path = tmp_path / 'eval.json.progress.npz'
  terms = {'log_px': np.arange(3.0), 'mean': np.ones((3, 2), np.float32)}
  evaluation.SavedProgress(path, {'num_importance_samples': 20}).save(terms)
  assert evaluation.SavedProgress(path, {'num_importance_samples': 10}).load() is None
  back = evaluation.SavedProgress(path, {'num_importance_samples': 20}).load()
  assert back.keys() == terms.keys() and all(np.array_equal(back[k], terms[k]) for k in terms)
  path.write_bytes(path.read_bytes()[:40])
  assert evaluation.SavedProgress(path, {'num_importance_samples': 20}).load() is None
  assert not list(tmp_path.glob('*.tmp'))


def _cli(*args, background=False):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  command = [sys.executable, '-m', 'vae_jax.evaluate', *args]
  if background:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli_writes_eval_json(run):
  workdir, _ = run
  proc = _cli(f'--workdir={workdir}', '--num_importance_samples=20', '--step=80')
  assert proc.returncode == 0, proc.stderr[-2000:]
  printed = json.loads(proc.stdout)
  assert printed['num_importance_samples'] == 20 and printed['step'] == 80
  assert printed['parameters'] == 'final'  # no EMA in this run: as the training's own eval.json says
  assert (workdir / 'eval_step80.json').exists()
  assert 'evaluating with 20 importance samples: 300/300 examples' in proc.stderr  # the progress line
  assert 'evaluation calls of 100 examples x 4 samples = 400 rows' in proc.stderr  # the memory check's


def test_cli_stopped_by_sigterm_exits_75_and_the_rerun_gives_the_same_nll(run):
  """SIGTERM once the first of 15 batches is saved: the evaluation stops after the batch it is on, exit 75, one
  line; the rerun goes on from there to exactly the figures of an evaluation never stopped."""
  workdir, _ = run
  whole = evaluate_lib.evaluate_run(workdir, 2000, step=60, batch_size=20, with_measures=False)  # ~0.1 s a batch
  eval_file, progress = workdir / 'eval_step60.json', workdir / 'eval_step60.json.progress.npz'
  eval_file.unlink()
  flags = [f'--workdir={workdir}', '--num_importance_samples=2000', '--step=60', '--batch_size=20', '--nomeasures']
  proc = _cli(*flags, background=True)
  deadline = time.monotonic() + 120
  while not progress.exists():
    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=60)
  assert proc.returncode == errors.PREEMPTED_EXIT_CODE, stderr[-2000:]
  last = stderr.strip().splitlines()[-1]
  done = re.fullmatch(rf'preempted: SIGTERM received: saved the results of the first (\d+) examples in '
                      rf'{progress}; rerun the same command to continue', last)
  assert done and 20 <= int(done.group(1)) < 300 and progress.exists() and not eval_file.exists(), last
  assert 'Traceback' not in stderr

  proc = _cli(*flags)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f': {done.group(1)} of 300 examples done' in proc.stderr  # resumed, not started again
  printed = json.loads(proc.stdout)
  for key in ('nll_nats', 'nll_stderr_nats', 'elbo_nats', 'kl_nats', 'active_units'):
    assert printed[key] == whole[key], key
  assert json.loads(eval_file.read_text())['nll_nats'] == whole['nll_nats'] and not progress.exists()


@pytest.mark.parametrize('args,expected', [
    (['--workdir=/nonexistent/run'], 'has no config.json'),
    (['--num_importance_samples=0'], '--num_importance_samples=0 must be >= 1'),
    (['--step=7'], 'no checkpoint for step 7'),
])
def test_cli_bad_input(run, args, expected):
  workdir, _ = run
  if not args[0].startswith('--workdir'):
    args = [f'--workdir={workdir}', *args]
  proc = _cli(*args)
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and expected in last, proc.stderr[-2000:]


def test_flop_count_charges_work_done_once_a_batch_once(make_config):
  """A VampPrior encodes its pseudo-inputs once a call: the count of 20 examples in one batch is XLA's
  count of that one call, not 20 times the count of a call on one example (which charges the fixed work
  to every example)."""
  config = make_config(**{'model.prior': 'vampprior', 'model.prior_components': 50})
  setup = setup_lib.make_setup(config, data.load(config))
  params = setup.initial_state().params
  x = setup.dataset.test.images

  def call_gflop(n):
    fn = evaluation.Evaluator(setup.model, n, 4, 4, setup.mesh)._batch_fn  # pylint: disable=protected-access
    cost = fn.lower(params, x[:n], np.zeros(n, np.int32), np.arange(n, dtype=np.int32),
                    jax.random.key(0)).compile().cost_analysis()
    return (cost[0] if isinstance(cost, (list, tuple)) else cost)['flops'] / 1e9

  counted = evaluation.Evaluator(setup.model, 20, 8, 4, setup.mesh).gflop(params, x[0], 20)
  assert counted == pytest.approx(2 * call_gflop(20), rel=0.05)  # two chunks of 4 samples
  assert 2 * 20 * call_gflop(1) > 1.5 * counted


def test_a_short_runs_ema_is_judged_near_its_final_parameters(tmp_path):
  """92 steps at optim.ema_decay=0.999: a fixed decay would leave 0.999^92 = 91% of the initialization in the
  EMA (an ELBO hundreds of nats off); the ramped decay averages the last few steps instead."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(**{'optim.ema_decay': 0.999})
  ema = train.train_and_evaluate(config, tmp_path)
  final = evaluate_lib.evaluate_run(tmp_path, config.eval.num_importance_samples, parameters='final', with_measures=False)
  assert ema['parameters'] == 'ema' and final['parameters'] == 'final'
  assert ema['elbo_nats'] != final['elbo_nats']  # two different sets of parameters ...
  assert abs(ema['elbo_nats'] - final['elbo_nats']) < 3.0, (ema['elbo_nats'], final['elbo_nats'])  # ... near each other
  assert abs(ema['nll_nats'] - final['nll_nats']) < 3.0


@pytest.mark.parametrize('value', [-1.0, float('nan'), float('inf')])
def test_a_bad_memory_budget_is_a_one_line_config_error(make_config, value):
  with pytest.raises(errors.ConfigError, match=r'^eval\.memory_budget_gb=\S+ must be a number of GB >= 0') as e:
    config_lib.validate(make_config(**{'eval.memory_budget_gb': value}))
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('value', [0.0, None, 2.5])
def test_a_memory_budget_is_set_or_read_off_the_machine(make_config, value):
  config_lib.validate(make_config(**{'eval.memory_budget_gb': value}))
  budget, source = evaluation.memory_budget(value)
  if value:
    assert budget == 2.5e9 and source == 'eval.memory_budget_gb=2.5'
  else:  # half of the device's memory; the CPU reports none: half of the host's
    assert budget > 0 and ('of the device' if parallel.device_memory_bytes() else 'of the host') in source


def test_best_validation_picks_the_kept_checkpoint_with_the_highest_elbo(tmp_path):
  from vae_jax.runs import evaluate as evaluate_runs  # pylint: disable=g-import-not-at-top
  for step in (100, 300, 400):
    (tmp_path / 'checkpoints' / str(step)).mkdir(parents=True)
  lines = [{'step': 100, 'validation/elbo_nats': -90.0}, {'step': 200, 'validation/elbo_nats': -80.0},  # 200 not kept
           {'step': 300, 'validation/elbo_nats': -85.0}, {'step': 300, 'train/loss': 1.0},
           {'step': 400, 'validation/elbo_nats': -86.0}]
  (tmp_path / 'metrics.jsonl').write_text('\n'.join(json.dumps(r) for r in lines) + '\n{"step": 5')  # a cut line
  assert evaluate_runs.best_validation_step(tmp_path) == 300
  (tmp_path / 'metrics.jsonl').write_text(json.dumps({'step': 200, 'validation/elbo_nats': -1.0}))
  with pytest.raises(errors.RunNotFound, match='no kept checkpoint .* has a validation ELBO'):
    evaluate_runs.best_validation_step(tmp_path)
