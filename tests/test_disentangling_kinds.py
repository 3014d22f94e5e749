"""The disentangling kinds' objectives against exact answers: the capacity schedule, the total-correlation
estimator's weights and decomposition, the DIP covariance penalty, and their config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax.training import setup as setup_lib
from vae_jax.training.objectives import disentangling


@pytest.mark.parametrize('n, big', [(2, 10), (5, 100), (64, 737_280)])
def test_stratified_weights_sum_to_one_and_weigh_the_example_itself_1_over_n(n, big):
  w = np.exp(np.asarray(disentangling.log_importance_weights(n, big, 'mss'), np.float64))
  np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.diag(w), 1.0 / big, rtol=1e-5)
  mws = np.exp(np.asarray(disentangling.log_importance_weights(n, big, 'mws'), np.float64))
  np.testing.assert_allclose(mws, 1.0 / (big * n), rtol=1e-5)


def test_log_q_pairs_is_the_gaussian_log_density():
  rng = np.random.default_rng(0)
  z, mean, log_var = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
  pairs = np.asarray(disentangling.log_q_pairs(z, mean, log_var))
  want = stats.norm.logpdf(z[:, None], mean[None], np.exp(0.5 * log_var)[None])
  np.testing.assert_allclose(pairs, want, rtol=1e-5, atol=1e-5)


def test_identical_posteriors_have_no_index_code_mi_and_no_total_correlation():
  """Every x with the same factorized q(z|x): q(z) is q(z|x), so MI and TC are 0 exactly (MSS weights sum to 1)."""
  rng = np.random.default_rng(1)
  n, d = 16, 5
  mean = np.tile(rng.normal(size=(1, d)), (n, 1)).astype(np.float32)
  log_var = np.tile(rng.normal(size=(1, d)) * 0.3, (n, 1)).astype(np.float32)
  z = (mean + np.exp(0.5 * log_var) * rng.normal(size=(n, d))).astype(np.float32)
  est = disentangling.total_correlation_terms(z, mean, log_var, num_train=n)
  np.testing.assert_allclose(est['log_qz'], est['log_qz_x'], atol=1e-4)
  np.testing.assert_allclose(est['log_qz'], est['log_prod_qzd'], atol=1e-4)


def test_a_correlated_aggregate_posterior_has_total_correlation():
  """Posterior means along the diagonal, narrow posteriors: q(z) is correlated, prod q(z_d) is not."""
  n = 64
  t = np.linspace(-2, 2, n, dtype=np.float32)[:, None]
  mean = np.concatenate([t, t], axis=1)
  log_var = np.full((n, 2), np.log(0.01), np.float32)
  est = disentangling.total_correlation_terms(mean, mean, log_var, num_train=n)
  assert float(np.mean(est['log_qz'] - est['log_prod_qzd'])) > 1.0


def test_dip_penalty_is_the_covariance_formula():
  rng = np.random.default_rng(2)
  mean = rng.normal(size=(50, 3)).astype(np.float32)
  log_var = rng.normal(size=(50, 3)).astype(np.float32)
  for dip_type in ('i', 'ii'):
    cov = np.cov(mean.astype(np.float64), rowvar=False, bias=True)
    if dip_type == 'ii':
      cov = cov + np.diag(np.exp(log_var.astype(np.float64)).mean(axis=0))
    off = cov - np.diag(np.diag(cov))
    want = 2.0 * np.sum(off ** 2) + 3.0 * np.sum((np.diag(cov) - 1) ** 2)
    got = float(disentangling.dip_penalty(jnp.asarray(mean), jnp.asarray(log_var), dip_type, 2.0, 3.0))
    assert got == pytest.approx(want, rel=1e-4)


def test_the_annealed_capacity_rises_linearly_then_holds(make_config):
  config = make_config(**{'model.kind': 'annealed_vae', 'model.capacity_max_nats': 20.0, 'model.capacity_steps': 10,
                          'model.gamma': 3.0})
  setup = setup_lib.make_setup(config, data.load(config))
  params = setup.initial_state().params
  n = config.batch_size
  x = jnp.asarray(setup.dataset.train.decoded()[:n] > 0.5, jnp.float32)
  keys = jax.random.split(jax.random.key(0), n)
  for step, capacity in ((0, 0.0), (5, 10.0), (10, 20.0), (50, 20.0)):
    loss, m = setup.objective.loss(setup.model, params, {'x': x, 'step': jnp.asarray(step)}, keys, 1.0)
    assert float(m['capacity_nats']) == pytest.approx(capacity)
    want = -float(m['recon_nats']) + 3.0 * abs(float(m['kl_nats']) - capacity)
    assert float(loss) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize('overrides, message', [
    ({'model.kind': 'annealed_vae', 'model.gamma': 0.0}, 'model.gamma > 0'),
    ({'model.kind': 'beta_tcvae', 'model.tc_weight': -1.0}, 'model.tc_weight=-1.0 must be >= 0'),
    ({'model.kind': 'beta_tcvae', 'model.prior': 'mog'}, 'use model.prior=standard_normal'),
    ({'model.kind': 'dip_vae', 'model.dip_type': 'iii'}, "model.dip_type='iii' is not allowed"),
])
def test_knobs_out_of_range_are_refused_at_config_time(make_config, overrides, message):
  with pytest.raises(errors.ConfigError, match=message):
    config_lib.validate(make_config(**overrides))


def test_permuted_dimensions_are_each_a_permutation_of_the_batch():
  z = jnp.arange(40, dtype=jnp.float32).reshape(10, 4)
  out = np.asarray(disentangling.permute_dims(jax.random.key(0), z))
  for d in range(4):
    assert sorted(out[:, d]) == sorted(np.asarray(z[:, d]))
  rows = {tuple(np.argsort(out[:, d])) for d in range(4)}
  assert len(rows) > 1  # the dimensions are shuffled apart


def test_the_factor_vae_discriminator_trains_on_its_own_optimizer(make_config):
  config = make_config(**{'model.kind': 'factor_vae', 'model.discriminator_sizes': (8,),
                          'optim.discriminator.learning_rate': 1e-5})
  setup = setup_lib.make_setup(config, data.load(config))
  state = setup.initial_state()
  assert set(state.opt_state.inner_states) == {'model', 'discriminator'}
  n = config.batch_size
  batch = {'x': jnp.asarray(setup.dataset.train.decoded()[:n]), 'label': jnp.asarray(setup.dataset.train.labels[:n])}
  after, metrics = jax.jit(setup.train_step)(state, batch, setup.train_key)
  assert int(metrics['skipped']) == 0 and 0 <= float(metrics['discriminator_accuracy']) <= 1
  moved = lambda name: np.max(np.abs(np.asarray(after.params[name]['kernel'] - state.params[name]['kernel'])))
  # Adam's first step moves each parameter by about its learning rate: 1e-5 for the discriminator, 1e-3 for the VAE.
  out_kernel = lambda s: np.asarray(s.params['decoder']['out']['kernel'])
  vae_moved = np.max(np.abs(out_kernel(after) - out_kernel(state)))
  assert 0 < moved('discriminator_0') <= 1.01e-5 and 5e-4 < vae_moved <= 1.01e-3
