"""The hierarchical VAE's top-down pass against a two-group model whose answers are known exactly.

z0 ~ N(0, 1), z1 | z0 ~ N(beta z0 + delta, s1^2), x | z ~ N(w0 z0 + w1 z1 + b, s^2 I).
Everything is jointly Gaussian, so log p(x), p(z0 | x) and p(z1 | x, z0) are
known in closed form; with one-dimensional groups the exact posterior lies in
the family of top-down diagonal Gaussians, and the real HVAE class (with a
linear block family and head) must then give log w = log p(x) for every sample.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from vae_jax import models
from vae_jax.evaluation import estimators
from vae_jax.models import flows
from vae_jax.models import hvae
from vae_jax.models import priors

D, S, S1, BETA, DELTA = 3, 0.4, 0.6, 1.5, 0.3
RNG = np.random.default_rng(0)
W = RNG.normal(size=(2, D))      # rows: w0, w1
B = RNG.normal(size=D)


def _joint():
  """Mean and covariance of (z0, z1, x): v = M eps + m with eps ~ N(0, I)."""
  m = np.zeros((2 + D, 2 + D))
  m[0, 0] = 1.0
  m[1, 0], m[1, 1] = BETA, S1
  m[2:, 0] = W[0] + BETA * W[1]
  m[2:, 1] = S1 * W[1]
  m[2:, 2:] = S * np.eye(D)
  mean = np.concatenate([[0.0, DELTA], W[1] * DELTA + B])
  return mean, m @ m.T


def _condition(mean, cov, target: int, given: list[int]):
  """The Gaussian of v[target] given v[given]: (weights on v[given], offset, variance)."""
  k = cov[np.ix_([target], given)] @ np.linalg.inv(cov[np.ix_(given, given)])
  return k[0], mean[target] - k[0] @ mean[given], float((cov[target, target] - k @ cov[np.ix_(given, [target])]).item())


class LinearNet(nn.Module):
  """A block family for hvae.HVAE whose posteriors are the exact p(z0|x) and p(z1|x, z0) (plus `shift`,
  standard deviations times `widen`), and, with `context`, hand their flows a context (x's first coordinate)."""
  shift: float = 0.0
  context: bool = False
  widen: float = 1.0

  def group_shapes(self):
    return [(1,), (1,)]

  def features(self, x):
    return x

  def initial(self, n):
    return jnp.zeros((n, 0))

  def prior(self, g, s):
    if g == 0:
      return None, None
    return (BETA * s[:, :1] + DELTA, jnp.full((s.shape[0], 1), 2 * math.log(S1))), None

  def posterior(self, g, s, x):
    mean, cov = _joint()
    xs = list(range(2, 2 + D))
    if g == 0:
      k, c, var = _condition(mean, cov, 0, xs)
      m = x @ k + c
    else:
      k, c, var = _condition(mean, cov, 1, [0] + xs)
      m = s[:, 0] * k[0] + x @ k[1:] + c
    log_var = jnp.full((x.shape[0], 1), math.log(var) + 2 * math.log(self.widen))
    return (m + self.shift)[:, None], log_var, (x[:, :1] if self.context else None)

  def update(self, g, s, z, extra):
    return jnp.concatenate([s, z], axis=-1)

  def out(self, s):
    return s


class LinearHead(nn.Module):
  """p(x|z0, z1) = N(w0 z0 + w1 z1 + b, S^2 I)."""
  def __call__(self, z):
    return z @ W + B

  @staticmethod
  def log_prob(mean, x):
    return jnp.sum(-0.5 * ((x - mean) / S)**2 - math.log(S) - 0.5 * math.log(2 * math.pi), axis=-1)


def _model_and_data(shift=0.0, n=6, rng=RNG):
  model = hvae.HVAE(net=LinearNet(shift), likelihood=LinearHead(), prior=priors.StandardNormal())
  mean, cov = _joint()
  x = rng.multivariate_normal(mean[2:], cov[2:, 2:], size=n).astype(np.float32)
  exact = stats.multivariate_normal(mean[2:], cov[2:, 2:]).logpdf(x)
  return model, jnp.asarray(x), exact


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def test_exact_posterior_makes_every_log_weight_log_px():
  model, x, exact = _model_and_data()
  t = estimators.terms_of_samples(model, {}, x, model.apply({}, x, method=model.infer), _keys(len(x)),
                                  jnp.arange(20))
  np.testing.assert_allclose(t['log_px_z'] + t['log_ratio'], np.broadcast_to(exact, (20, len(x))), atol=1e-4)
  # The top group's KL is the closed form of the exact posterior against N(0, 1).
  mean, cov = _joint()
  k, c, var = _condition(mean, cov, 0, list(range(2, 2 + D)))
  m0 = np.asarray(x) @ k + c
  np.testing.assert_allclose(t['kl'][0, :, 0], 0.5 * (var + m0**2 - 1 - math.log(var)), rtol=1e-5)


def test_importance_sampling_recovers_log_px_from_a_wrong_posterior():
  model, x, exact = _model_and_data(shift=0.15)  # about half a posterior standard deviation per group
  est = estimators.importance_sampled_terms(model, {}, x, _keys(len(x), 1), num_samples=4000, chunk=500)
  np.testing.assert_allclose(est['log_px'], exact, atol=0.04)
  assert np.all(np.asarray(est['elbo']) < exact)  # the shifted posterior leaves a visible gap
  # At the exact posterior the ELBO is tight: its one-sample terms average to log p(x).
  model = _model_and_data()[0]
  t = estimators.terms_of_samples(model, {}, x, model.apply({}, x, method=model.infer), _keys(len(x), 2),
                                  jnp.arange(4000))
  elbo = np.asarray(t['log_px_z'] - jnp.sum(t['kl'], axis=-1), np.float64)
  stderr = elbo.std(axis=0) / math.sqrt(len(elbo))
  assert np.all(np.abs(elbo.mean(axis=0) - exact) < 4 * stderr), (elbo.mean(axis=0), exact, stderr)


def test_importance_sampling_recovers_log_px_through_posterior_flows():
  """With an IAF on each group's posterior, q is no longer Gaussian: only a correct log-determinant
  in log q keeps the importance-sampled estimate on the exact log p(x)."""
  # Wider than the exact posterior before the flows (which start by shrinking z), so the weights stay light-tailed.
  model = hvae.HVAE(net=LinearNet(shift=0.1, context=True, widen=2.0), likelihood=LinearHead(),
                    prior=priors.StandardNormal(), flows=(flows.IAF(2, 8), flows.IAF(2, 8)))
  _, x, exact = _model_and_data(rng=np.random.default_rng(1))
  params = model.init(jax.random.key(0), x, _keys(len(x)))['params']
  leaves, tree = jax.tree.flatten(params)  # move the flows well away from their near-identity start
  params = jax.tree.unflatten(tree, [p + 0.1 * jax.random.normal(jax.random.key(i), p.shape)
                                     for i, p in enumerate(leaves)])
  t = model.apply({'params': params}, x, _keys(len(x)))
  np.testing.assert_allclose(jnp.sum(t['kl'], -1), -t['log_ratio'], rtol=1e-5)  # every KL a single-sample one
  est = estimators.importance_sampled_terms(model, params, x, _keys(len(x), 1), num_samples=4000,
                                            chunk=500)
  np.testing.assert_allclose(est['log_px'], exact, atol=0.05)
  assert np.all(np.asarray(est['elbo']) < exact - 0.05)  # a visible gap: the flows moved q


def test_per_group_closed_form_kl_matches_monte_carlo(make_config):
  """sum_g E[KL_g(z_<g)] = E[log q(z|x) - log p(z)] for the real dense HVAE at a random point."""
  config = make_config(**{'model.kind': 'hvae', 'model.hidden_sizes': (16,), 'model.latent_dim': 3})
  model = models.make(config, (4, 4, 1))
  params = models.init_params(model, (4, 4, 1), jax.random.key(0))
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), params)
  n = 20_000
  x = jnp.broadcast_to((jax.random.uniform(jax.random.key(2), (1, 4, 4, 1)) < 0.5).astype(jnp.float32),
                       (n, 4, 4, 1))
  t = model.apply({'params': params}, x, _keys(n, 3))
  closed = np.asarray(jnp.sum(t['kl'], axis=-1), np.float64)
  sampled = -np.asarray(t['log_ratio'], np.float64)
  tolerance = 4 * np.std(sampled - closed) / math.sqrt(n)
  assert abs(sampled.mean() - closed.mean()) < tolerance, (sampled.mean(), closed.mean(), tolerance)
  assert np.all(np.asarray(t['kl']) >= 0) and np.std(np.asarray(t['kl'])[:, 1]) > 0  # group 1's KL depends on z0
