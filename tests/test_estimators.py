"""The likelihood estimators against a model whose answers are known exactly.

Probabilistic PCA: z ~ N(0, I_L), x | z ~ N(W z + b, s^2 I_D). Then
p(x) = N(x; b, W W^T + s^2 I) and, with orthogonal columns in W, the exact
posterior is a diagonal Gaussian, so it lies in the VAE's family of q.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import evaluation
from vae_jax import models
from vae_jax.evaluation import estimators
from vae_jax.models import gaussian
from vae_jax.training import objectives

D, L, S = 6, 3, 0.5


class LinearGaussian(models.Kind):
  """pPCA decoder with a linear Gaussian encoder q(z|x) = N(A x + c, diag exp(log_var)), written
  against the model interface of vae_jax.models (one latent group, prior N(0, I))."""
  w: np.ndarray
  b: np.ndarray
  a: np.ndarray
  c: np.ndarray
  log_var: np.ndarray
  latent_dim = L
  group_sizes = (L,)

  def infer(self, x, labels=None):
    mean = x.reshape(x.shape[0], -1) @ self.a.T + self.c
    return mean, jnp.broadcast_to(self.log_var, mean.shape)

  def encode(self, x, labels=None):
    return self.infer(x)

  def decode(self, z):
    return z @ self.w.T + self.b

  def log_px_given_z(self, z, x):
    r = x.reshape(x.shape[0], -1) - self.decode(z)
    return jnp.sum(-0.5 * (r / S)**2 - math.log(S) - 0.5 * math.log(2 * math.pi), axis=-1)

  def terms(self, x, ctx, keys):
    mean, log_var = ctx
    z = mean + jnp.exp(0.5 * log_var) * gaussian.per_example_normal(keys, (L,))
    log_ratio = gaussian.standard_log_prob(z) - gaussian.log_prob(z, mean, log_var)
    return {'log_px_z': self.log_px_given_z(z, x), 'log_ratio': log_ratio,
            'kl': gaussian.kl_standard_normal(mean, log_var)[:, None],
            'kl_per_dim': gaussian.kl_standard_normal_per_dim(mean, log_var)}

  def __call__(self, x, keys, labels=None):
    return self.terms(x, self.infer(x), keys)


def log_weights(model, x, keys, num_samples):
  """log w of samples 0..num_samples-1 of every example, (num_samples, n)."""
  t = estimators.terms_of_samples(model, {}, x, model.apply({}, x, method=model.infer), keys,
                                  jnp.arange(num_samples))
  return t['log_px_z'] + t['log_ratio']


def _ppca(seed=0, mean_shift=0.0, var_scale=1.0, dead_dims=()):
  """The pPCA model, q = exact posterior (or shifted / rescaled), and log p(x) of some data."""
  rng = np.random.default_rng(seed)
  u, _ = np.linalg.qr(rng.normal(size=(D, L)))
  w = (u * np.array([2.0, 1.0, 0.5])).astype(np.float32)          # orthogonal columns
  b = rng.normal(size=D).astype(np.float32)
  m = np.diag(np.sum(w**2, axis=0) + S**2)                         # W^T W + s^2 I, diagonal
  a = np.linalg.solve(m, w.T).astype(np.float32)                    # posterior mean = A (x - b)
  log_var = np.log(S**2 / np.diag(m)).astype(np.float32)            # posterior variance s^2 M^-1
  a[list(dead_dims)] = 0.0
  model = LinearGaussian(w=w, b=b, a=a, c=(-a @ b + mean_shift).astype(np.float32),
                         log_var=(log_var + np.log(var_scale)).astype(np.float32))
  x = rng.multivariate_normal(b, w @ w.T + S**2 * np.eye(D), size=8).astype(np.float32)
  exact = stats.multivariate_normal(b, w @ w.T + S**2 * np.eye(D)).logpdf(x)
  return model, jnp.asarray(x), exact


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def test_exact_posterior_makes_every_importance_weight_exact():
  model, x, exact = _ppca()
  log_w = log_weights(model, x, _keys(8, 1), 5)
  np.testing.assert_allclose(log_w, np.broadcast_to(exact, (5, 8)), atol=2e-4)
  terms = estimators.importance_sampled_terms(model, {}, x, _keys(8), num_samples=7, chunk=3)
  np.testing.assert_allclose(terms['log_px'], exact, atol=2e-4)


def _closed_form_elbo(model, x):
  """E_q[log p(x|z)] (residual at the mean plus a trace term) minus the closed-form KL."""
  mean, log_var = model.apply({}, x, method=model.encode)
  r = np.asarray(x) - np.asarray(mean) @ model.w.T - model.b
  trace = np.sum(model.w**2 * np.exp(np.asarray(log_var))[:, None, :], axis=(1, 2))
  recon = -0.5 * D * math.log(2 * math.pi * S**2) - (np.sum(r**2, -1) + trace) / (2 * S**2)
  return recon - np.asarray(gaussian.kl_standard_normal(mean, log_var))


def test_exact_posterior_makes_the_elbo_exact():
  model, x, exact = _ppca()
  np.testing.assert_allclose(_closed_form_elbo(model, x), exact, atol=2e-4)


def test_wrong_posterior_importance_sampling_converges_from_below():
  model, x, exact = _ppca(mean_shift=0.3, var_scale=2.0)
  replicates = 400
  x0 = jnp.broadcast_to(x[:1], (replicates, D))  # one x, estimated `replicates` times independently
  errors = {}
  for k in (1, 10, 100, 1000):
    est = np.asarray(estimators.importance_sampled_terms(model, {}, x0, _keys(replicates, k), k, chunk=100)['log_px'])
    errors[k] = abs(est.mean() - exact[0])
    stderr = est.std(ddof=1) / math.sqrt(replicates)
    assert est.mean() < exact[0] + 2 * stderr, (k, est.mean(), exact[0])  # a lower bound in expectation
  assert errors[1] > 0.5  # the deliberately wrong q is visibly wrong with one sample
  assert errors[1] > errors[10] > errors[100] > errors[1000]
  assert errors[1000] < 0.01
  big = estimators.importance_sampled_terms(model, {}, x, _keys(8, 7), num_samples=5000, chunk=500)['log_px']
  np.testing.assert_allclose(big, exact, atol=0.05)


def test_iwae_bound_increases_with_k():
  model, x, exact = _ppca(mean_shift=0.7, var_scale=3.0)
  replicates = 2000
  x0 = jnp.broadcast_to(x[:1], (replicates, D))
  bounds = []
  for k in (1, 2, 5, 50):
    _, metrics = objectives.iwae_objective(model, {}, x0, _keys(replicates, k), 1.0, num_samples=k)
    bounds.append(float(metrics['iwae_bound_nats']))
  assert bounds == sorted(bounds) and bounds[-1] - bounds[0] > 0.5, bounds
  assert bounds[-1] < exact[0]


def test_iwae_with_one_sample_is_the_vae_elbo():
  model, x, _ = _ppca(mean_shift=0.3, var_scale=2.0)
  replicates = 20000
  x0 = jnp.broadcast_to(x[:1], (replicates, D))
  elbo = _closed_form_elbo(model, x[:1])[0]
  # The spread of one-sample log weights sets the Monte Carlo tolerance.
  log_w = log_weights(model, x0, _keys(replicates, 9), 1)
  tolerance = 4 * float(jnp.std(log_w)) / math.sqrt(replicates)
  iwae_loss, iwae = objectives.iwae_objective(model, {}, x0, _keys(replicates, 1), 1.0, num_samples=1)
  _, vae = objectives.elbo_objective(model, {}, x0, _keys(replicates, 2), 1.0)
  # The same bound: the one-sample IWAE estimates it with a sampled KL, the VAE with the closed form.
  assert float(iwae['iwae_bound_nats']) == pytest.approx(elbo, abs=tolerance)
  assert float(vae['elbo_nats']) == pytest.approx(elbo, abs=tolerance)
  assert float(iwae_loss) == pytest.approx(-float(iwae['iwae_bound_nats']))


def test_active_units_on_a_known_case():
  rng = np.random.default_rng(0)
  means = np.stack([rng.normal(size=1000), 0.2 * rng.normal(size=1000), 0.05 * rng.normal(size=1000),
                    np.full(1000, 3.0)], axis=1)   # variances 1, 0.04, 0.0025, 0
  assert evaluation.active_units(means) == 2
  assert evaluation.active_units(means, threshold=0.001) == 3


def test_evaluator_reports_active_units_and_per_dimension_kl():
  model, _, _ = _ppca(dead_dims=(1,))      # q(z_1|x) no longer depends on x
  rng = np.random.default_rng(3)
  x = rng.normal(size=(64, D)).astype(np.float32) * 2
  result = evaluation.Evaluator(model, 32, 4, 2).evaluate({}, x, jax.random.key(0), 'gaussian')
  assert result['active_units'] == 2
  assert len(result['kl_per_dim_nats']) == L
  assert sum(result['kl_per_dim_nats']) == pytest.approx(result['kl_nats'], rel=1e-5)


@pytest.mark.parametrize('mode', ['scan', 'unrolled'])
def test_a_call_over_the_memory_budget_is_made_smaller_with_the_same_results(mode, caplog):
  """The budget a third of what a whole-batch call takes by XLA's memory analysis: the batch shrinks, and every
  example's terms are those of the whole batch (its samples come from its index): bit for bit here, but XLA
  may round another batch shape otherwise (the MLP at 20 examples a call: 7e-7 in the posterior means). A
  budget no example fits also shrinks the chunk: the same samples, summed in another order."""
  caplog.set_level('INFO')
  model, _, _ = _ppca()
  x = np.random.default_rng(4).normal(size=(96, D)).astype(np.float32)
  whole = evaluation.Evaluator(model, 96, 8, 4, mode=mode, memory_budget_gb=1.0)
  expected = whole.per_example({}, x, jax.random.key(0))
  assert (whole.batch_size, whole.chunk) == (96, 4) and 0 < whole.call_bytes < 1e9

  budget = whole.call_bytes / 3
  smaller = evaluation.Evaluator(model, 96, 8, 4, mode=mode, progress=True, memory_budget_gb=budget / 1e9)
  got = smaller.per_example({}, x, jax.random.key(0))
  assert smaller.batch_size < 96 and smaller.chunk == 4 and smaller.call_bytes <= budget
  for k, v in expected.items():
    np.testing.assert_allclose(got[k], v, rtol=1e-6, atol=1e-6, err_msg=k)
  assert any('shrunk from 96 x 4' in r.getMessage() for r in caplog.records)
  assert any('evaluating with 8 importance samples: 96/96 examples' in r.getMessage() for r in caplog.records)

  none_fits = evaluation.Evaluator(model, 96, 8, 4, mode=mode, memory_budget_gb=1e-9)
  got = none_fits.per_example({}, x, jax.random.key(0))
  assert (none_fits.batch_size, none_fits.chunk) == (jax.device_count(), 1)
  for k, v in expected.items():
    np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-5, err_msg=k)
