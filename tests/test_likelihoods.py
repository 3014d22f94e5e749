"""Likelihoods against scipy, and the bits/dim conversion."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import likelihoods


def test_bernoulli_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 4, 1)).astype(np.float32) * 3
  x = (rng.random((3, 4, 4, 1)) < 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = stats.bernoulli.logpmf(x, p).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(likelihoods.Bernoulli.log_prob(jnp.asarray(logits), jnp.asarray(x)), expected,
                             rtol=1e-5)


def test_bernoulli_log_prob_is_stable_for_large_logits():
  logits = jnp.array([[100.0, -100.0]])
  assert jnp.allclose(likelihoods.Bernoulli.log_prob(logits, jnp.array([[1.0, 0.0]])), 0.0, atol=1e-6)
  assert jnp.allclose(likelihoods.Bernoulli.log_prob(logits, jnp.array([[0.0, 0.0]])), -100.0, rtol=1e-5)


@pytest.mark.parametrize('learn_std', [False, True])
def test_gaussian_log_prob_matches_scipy(learn_std):
  rng = np.random.default_rng(1)
  outputs = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  x = rng.random((2, 3, 3, 2)).astype(np.float32)
  head = likelihoods.Gaussian(std=0.3, learn_std=learn_std)
  variables = head.init(jax.random.key(0), outputs)
  params = head.apply(variables, outputs)
  mean = 1 / (1 + np.exp(-outputs.astype(np.float64)))
  expected = stats.norm.logpdf(x, mean, 0.3).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(likelihoods.Gaussian.log_prob(params, jnp.asarray(x)), expected, rtol=1e-5)
  assert ('log_std' in variables.get('params', {})) == learn_std


def test_bits_per_dim():
  assert likelihoods.bits_per_dim(784 * math.log(2), 784, 'bernoulli') == pytest.approx(1.0)
  # A uniform density on [0, 1] is 8 bits per dimension on the 8-bit scale.
  assert likelihoods.bits_per_dim(0.0, 3072, 'gaussian') == pytest.approx(8.0)
