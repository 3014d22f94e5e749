"""The learned priors' log p(z) against scipy, and their samples against their own moments."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special
from scipy import stats

from vae_jax.models import priors


def _mixture_logpdf(z, means, log_vars, log_weights):
  per = np.stack([stats.multivariate_normal(m, np.diag(np.exp(v))).logpdf(z) for m, v in zip(means, log_vars)],
                 axis=-1)
  return special.logsumexp(per + log_weights, axis=-1)


def test_vampprior_is_the_mean_of_q_at_the_pseudo_inputs():
  k, shape, dim = 5, (3, 3, 1), 4
  prior = priors.VampPrior(k, shape)
  rng = np.random.default_rng(0)
  proj = rng.normal(size=(9, 2 * dim)).astype(np.float32)

  def posterior(u):  # a stand-in encoder: linear in the pseudo-input
    h = u.reshape(u.shape[0], -1) @ proj
    return h[:, :dim], 0.3 * h[:, dim:]

  z = jnp.asarray(rng.normal(size=(6, dim)).astype(np.float32))
  params = prior.init(jax.random.key(0), z, posterior)
  got = prior.apply(params, z, posterior, method=prior.log_prob)
  u = np.clip(np.asarray(params['params']['pseudo_inputs']), 0, 1)
  means, log_vars = posterior(jnp.asarray(u))
  expected = _mixture_logpdf(np.asarray(z), np.asarray(means), np.asarray(log_vars), np.full(k, -np.log(k)))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # The pseudo-inputs start in [0, 1] near 0.05, as in the paper.
  assert 0.0 < float(u.mean()) < 0.1 and float(u.min()) >= 0.0


def test_mixture_of_gaussians_log_prob_and_samples():
  k, dim = 3, 2
  prior = priors.MixtureOfGaussians(k, dim)
  params = prior.init(jax.random.key(1), jnp.zeros((1, dim)))
  p = params['params']
  p = {'means': p['means'], 'log_vars': jnp.log(jnp.array([[0.5, 0.2], [1.0, 0.3], [0.1, 2.0]])),
       'logits': jnp.array([0.0, 1.0, -0.5])}
  z = jax.random.normal(jax.random.key(2), (7, dim)) * 2
  got = prior.apply({'params': p}, z, method=prior.log_prob)
  expected = _mixture_logpdf(np.asarray(z), np.asarray(p['means']), np.asarray(p['log_vars']),
                             np.asarray(jax.nn.log_softmax(p['logits'])))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Samples have the mixture's mean; at temperature 0 they sit on the component means.
  draws = prior.apply({'params': p}, jax.random.key(3), 200_000, dim, method=prior.sample)
  weights = np.asarray(jax.nn.softmax(p['logits']))
  np.testing.assert_allclose(np.mean(np.asarray(draws), 0), weights @ np.asarray(p['means']), atol=0.02)
  cold = np.asarray(prior.apply({'params': p}, jax.random.key(3), 50, dim, 0.0, method=prior.sample))
  assert all(np.any(np.all(np.isclose(c, np.asarray(p['means'])), axis=1)) for c in cold)


def test_standard_normal_temperature_scales_the_draws():
  prior = priors.StandardNormal()
  a = prior.apply({}, jax.random.key(0), 1000, 3, 1.0, method=prior.sample)
  b = prior.apply({}, jax.random.key(0), 1000, 3, 0.5, method=prior.sample)
  np.testing.assert_allclose(b, 0.5 * a, rtol=1e-6)
