"""Dispatch modes: the same steps whichever way they are dispatched, and 'auto' measures once per run."""

import itertools
import json

import jax
import numpy as np
import pytest

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax.runtime import dispatch
from vae_jax.training import feeds
from vae_jax.training import setup as setup_lib

from conftest import tiny_config


@pytest.fixture(scope='module')
def trained():
  """Parameters, metrics and an evaluation after 10 steps (two dispatches of 5) in every mode."""
  out = {}
  for mode in dispatch.MODES:
    config = tiny_config(dispatch=mode)
    setup = setup_lib.make_setup(config, data.load(config))
    feed, why = feeds.choose_feed(setup, setup.initial_state())
    assert feed.mode == mode and why == 'set by config.dispatch'
    state, metrics = setup.initial_state(), []
    for step, n in ((0, 5), (5, 5)):  # 5 steps: unrolled runs blocks of 2 and a remainder of 1
      state, m = feed.run(state, step, n)
      metrics.append(jax.device_get(m))
    evaluator = evaluation.Evaluator(setup.model, 100, 10, 4, setup.mesh, mode=mode)
    results = evaluator.evaluate(state.params, setup.dataset.test.images, jax.random.key(3), 'bernoulli')
    out[mode] = jax.device_get(state.params), metrics, results
  return out


@pytest.mark.parametrize('mode', ['unrolled', 'per_step'])
def test_every_mode_computes_the_same_steps(trained, mode):
  params, metrics, results = trained[mode]
  ref_params, ref_metrics, ref_results = trained['scan']
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params, ref_params)
  for got, want in zip(metrics, ref_metrics):
    assert got.keys() == want.keys()
    for k in want:
      assert got[k].shape == want[k].shape, k  # one entry per step, as lax.scan stacks them
      np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)
  assert results['nll_nats'] == pytest.approx(ref_results['nll_nats'], abs=1e-4)
  assert results['elbo_nats'] == pytest.approx(ref_results['elbo_nats'], abs=1e-4)


def test_choose_takes_the_fastest():
  mode, timings = dispatch.choose({'scan': 3.0, 'unrolled': 1.0, 'per_step': 2.0}.get)
  assert mode == 'unrolled' and timings == {'scan': 3.0, 'unrolled': 1.0, 'per_step': 2.0}


def test_timing_noise_cannot_flip_the_pick():
  """Modes within noise of each other (the MLP: all about 5 ms a step, +-8% from call to call) keep the
  default whatever the noise draws; a mode 30% faster is taken through the same noise."""
  rng = np.random.default_rng(0)
  for _ in range(200):
    noisy = lambda mode: 5e-3 * rng.uniform(0.92, 1.08)
    assert dispatch.choose(noisy)[0] == 'scan'
  for _ in range(200):
    noisy = lambda mode: (3.5e-3 if mode == 'per_step' else 5e-3) * rng.uniform(0.92, 1.08)
    assert dispatch.choose(noisy)[0] == 'per_step'
  # A burst of load during one round (here the first, 3x slower for whichever mode it hits) is not a mode's figure.
  calls = iter(range(9))
  mode, timings = dispatch.choose(lambda mode: 5e-3 * (3.0 if next(calls) == 1 else 1.0))
  assert mode == 'scan' and timings == {m: 5e-3 for m in dispatch.MODES}


def test_auto_measures_records_and_reuses(tmp_path, monkeypatch):
  config = tiny_config(dispatch='auto')
  setup = setup_lib.make_setup(config, data.load(config))
  state = setup.initial_state()
  feed, why = feeds.choose_feed(setup, state, tmp_path, steps_left=dispatch.MIN_STEPS_TO_MEASURE - 1)
  assert feed.mode == 'scan' and 'too few to be worth measuring' in why  # a short run is not measured
  assert not (tmp_path / feeds.DISPATCH_FILE).exists()
  feed, why = feeds.choose_feed(setup, state, tmp_path, steps_left=dispatch.MIN_STEPS_TO_MEASURE)
  record = json.loads((tmp_path / feeds.DISPATCH_FILE).read_text())
  assert feed.mode == record['mode'] and set(record['seconds_per_step']) == set(dispatch.MODES)
  timed = record['seconds_per_step']
  fastest = min(timed, key=timed.get)
  assert record['mode'] == (fastest if timed['scan'] >= 1.15 * timed[fastest] else 'scan')
  assert why.startswith('chosen by measurement: scan ') and 'images/s' in why
  # The measurement runs on a copy: the state passed in is untouched.
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params),
               jax.device_get(setup.initial_state().params))
  # A resumed run takes the recorded mode without measuring again, even one that was not the fastest ...
  record['mode'] = other = next(m for m in dispatch.MODES if m != record['mode'])
  (tmp_path / feeds.DISPATCH_FILE).write_text(json.dumps(record))
  feed, why = feeds.choose_feed(setup, state, tmp_path)
  assert feed.mode == other and why.startswith('measured at the start of this run')
  # ... unless it was measured on another kind of machine (timings faked here: they were tested above).
  record['machine']['device_count'] += 1
  (tmp_path / feeds.DISPATCH_FILE).write_text(json.dumps(record))
  fake = itertools.cycle([3.0, 2.0, 1.0])  # seconds per step of scan, unrolled, per_step: the order of each round
  monkeypatch.setattr(dispatch, 'seconds_per_step', lambda run_steps, n, warm_up: next(fake))
  feed, why = feeds.choose_feed(setup, state, tmp_path)
  assert why.startswith('chosen by measurement') and feed.mode == 'per_step'
  assert json.loads((tmp_path / feeds.DISPATCH_FILE).read_text())['machine']['device_count'] == jax.device_count()


def test_unknown_mode_is_refused():
  with pytest.raises(errors.ConfigError, match="dispatch='fused' is not allowed; use one of auto, scan"):
    config_lib.validate(tiny_config(dispatch='fused'))
