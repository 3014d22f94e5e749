"""The KL, the reparameterization gradient and the importance-sampled estimator,
each against an exact answer."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from vae_jax import models
from vae_jax.models import gaussian
from vae_jax.training import objectives


def test_kl_closed_form_matches_monte_carlo():
  mean = jnp.array([[0.5, -1.0, 2.0]])
  log_var = jnp.array([[0.3, -1.2, 0.7]])
  z = gaussian.reparameterize(jax.random.key(0), jnp.broadcast_to(mean, (400_000, 3)),
                                jnp.broadcast_to(log_var, (400_000, 3)))
  log_q = gaussian.log_prob(z, mean, log_var)
  log_p = gaussian.log_prob(z, jnp.zeros(3), jnp.zeros(3))
  monte_carlo = float(jnp.mean(log_q - log_p))
  closed = float(gaussian.kl_standard_normal(mean, log_var)[0])
  assert abs(monte_carlo - closed) < 0.02, (monte_carlo, closed)
  assert float(gaussian.kl_standard_normal(jnp.zeros((1, 5)), jnp.zeros((1, 5)))[0]) == 0.0


def test_diag_normal_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  z, mean, log_var = rng.normal(size=(3, 4, 5))
  expected = stats.multivariate_normal(mean[0], np.diag(np.exp(log_var[0]))).logpdf(z[0])
  got = gaussian.log_prob(jnp.asarray(z[:1]), jnp.asarray(mean[:1]), jnp.asarray(log_var[:1]))
  np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_reparameterization_gradient_is_unbiased():
  # E_q[z^2] = mean^2 + exp(log_var): d/dmean = 2 mean, d/dlog_var = exp(log_var).
  mean, log_var = 0.7, -0.4

  def expectation(m, lv):
    z = gaussian.reparameterize(jax.random.key(3), jnp.full((200_000, 1), m), jnp.full((200_000, 1), lv))
    return jnp.mean(z**2)

  d_mean, d_log_var = jax.grad(expectation, argnums=(0, 1))(mean, log_var)
  assert abs(float(d_mean) - 2 * mean) < 0.02
  assert abs(float(d_log_var) - math.exp(log_var)) < 0.02


def _z_independent_model(config):
  """A VAE whose q(z|x) is the prior and whose p(x|z) ignores z: log p(x) is known exactly."""
  model = models.make(config, (4, 4, 1))
  params = models.init_params(model, (4, 4, 1), jax.random.key(0))
  params = jax.tree.map(jnp.zeros_like, params)
  bias = jax.random.normal(jax.random.key(1), params['decoder']['out']['bias'].shape)
  params['decoder']['out']['bias'] = bias
  return model, params, bias


def test_importance_sampling_is_exact_when_every_weight_is_equal(make_config):
  config = make_config(**{'model.hidden_sizes': (8,), 'model.latent_dim': 3})
  model, params, bias = _z_independent_model(config)
  x = (jax.random.uniform(jax.random.key(2), (5, 4, 4, 1)) < 0.5).astype(jnp.float32)
  p = 1 / (1 + np.exp(-np.asarray(bias, np.float64)))
  exact = stats.bernoulli.logpmf(np.asarray(x).reshape(5, -1), p).sum(-1)
  # 10 samples in chunks of 4: the last chunk overhangs and must be masked out.
  keys = jax.random.split(jax.random.key(3), 5)
  terms = objectives.importance_sampled_terms(model, params, x, keys, num_samples=10, chunk=4)
  np.testing.assert_allclose(terms['log_px'], exact, rtol=1e-5)
  np.testing.assert_allclose(terms['elbo'], exact, rtol=1e-5)
  np.testing.assert_allclose(terms['kl'], 0.0, atol=1e-6)


def test_importance_sampling_bounds(make_config):
  config = make_config()
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = (jax.random.uniform(jax.random.key(1), (50, 8, 8, 1)) < 0.3).astype(jnp.float32)
  keys = jax.random.split(jax.random.key(2), 50)
  one = objectives.importance_sampled_terms(model, params, x, keys, num_samples=1)
  many = objectives.importance_sampled_terms(model, params, x, keys, num_samples=64, chunk=16)
  assert float(jnp.mean(many['log_px'])) > float(jnp.mean(many['elbo']))
  assert float(jnp.mean(many['log_px'])) > float(jnp.mean(one['log_px']))
  chex.assert_tree_all_finite(many)
  # Sample s of example j depends on (keys[j], s) only, not on how the samples are chunked.
  other_chunking = objectives.importance_sampled_terms(model, params, x, keys, num_samples=64, chunk=5)
  np.testing.assert_allclose(other_chunking['log_px'], many['log_px'], rtol=1e-5)


def test_vae_objective_terms(make_config):
  config = make_config()
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = jnp.ones((4, 8, 8, 1))
  loss, m = objectives.elbo_objective(model, params, x, jax.random.split(jax.random.key(1), 4), kl_weight=2.0)
  np.testing.assert_allclose(m['elbo_nats'], m['recon_nats'] - m['kl_nats'], rtol=1e-6)
  np.testing.assert_allclose(loss, -(m['recon_nats'] - 2.0 * m['kl_nats']), rtol=1e-6)


def test_free_bits_charge_a_group_at_least_its_allowance(make_config):
  config = make_config(**{'model.kind': 'hvae', 'model.hidden_sizes': (16,), 'model.latent_dim': 3})
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = (jax.random.uniform(jax.random.key(1), (6, 8, 8, 1)) < 0.3).astype(jnp.float32)
  keys = jax.random.split(jax.random.key(2), 6)
  _, plain = objectives.elbo_objective(model, params, x, keys, 1.0)
  kl_groups = [float(plain[f'kl_group_{g}_nats']) for g in range(2)]
  allowance = max(kl_groups) + 1.0  # above both groups' KL: each is charged the allowance
  loss, m = objectives.elbo_objective(model, params, x, keys, 1.0, free_bits=allowance)
  np.testing.assert_allclose(loss, -m['recon_nats'] + 2 * allowance, rtol=1e-6)
  np.testing.assert_allclose(m['elbo_nats'], plain['elbo_nats'], rtol=1e-6)  # the reported ELBO is unchanged
  # Below the allowance the gradient no longer pushes the KL: the encoder's output gets no KL gradient.
  grads = jax.grad(lambda p: objectives.elbo_objective(model, p, x, keys, 1.0, free_bits=allowance)[0])(params)
  grads_recon = jax.grad(lambda p: -jnp.mean(model.apply({'params': p}, x, keys)['log_px_z']))(params)
  chex.assert_trees_all_close(grads, grads_recon, rtol=1e-5, atol=1e-6)
