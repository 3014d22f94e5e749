"""`mutual_information`: I(x; z) under the model's encoder, by He et al. (2019)'s estimator.

  I(x; z) = E_x E_q(z|x) [log q(z|x)] - E_x E_q(z|x) [log q(z)],  q(z) = mean over x of q(z|x)

over the test split: one z ~ q(z|x_i) per example, and log q(z) as the log of
the mean density of z under every test example's q(z|x_j) (all N of them, not
a batch's, so the estimate is bounded by log N rather than log batch). The
posterior is the Gaussian `encode` gives (before any flow). He et al. use it
to watch posterior collapse: an encoder whose codes say nothing of x has I = 0
whatever its KL.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure
from vae_jax.models import gaussian

_STREAM = 11  # fold_in of the metrics key for the z draws
_ROWS = 256   # examples whose z are scored against every q(z|x_j) at once


def mutual_information(means: np.ndarray, log_vars: np.ndarray, key: jax.Array) -> float:
  """He et al.'s I(x; z) in nats from the Gaussian posteriors (N, d) of N examples, one z each from `key`."""
  n, d = means.shape
  means, log_vars = jnp.asarray(means, jnp.float32), jnp.asarray(log_vars, jnp.float32)
  eps = jax.random.normal(key, (n, d))
  z = means + jnp.exp(0.5 * log_vars) * eps
  neg_entropy = float(jnp.mean(-0.5 * jnp.sum(gaussian.LOG_2PI + 1.0 + log_vars, axis=-1)))

  @jax.jit
  def log_q_of(zs):  # (r, d) -> (r,): log (1/N) sum_j q(z | x_j)
    diff = (zs[:, None, :] - means[None]) ** 2 / jnp.exp(log_vars)[None]
    log_dens = -0.5 * jnp.sum(gaussian.LOG_2PI + log_vars[None] + diff, axis=-1)
    return jax.nn.logsumexp(log_dens, axis=1) - math.log(n)

  log_q = np.concatenate([np.asarray(log_q_of(z[i:i + _ROWS])) for i in range(0, n, _ROWS)])
  return neg_entropy - float(np.mean(log_q))


class MutualInformation(base.Metric):
  name = 'mutual_information'
  needs = frozenset({'samples'})
  figures = (Figure('mutual_information_nats', "I(x; z) under the encoder, He et al. (2019)'s estimator over the "
                    'test split', 'nats', True, label='MI (nats)'),)

  def applies(self, ctx: base.Context) -> str | None:
    reason = super().applies(ctx)
    if reason is None and not sum(ctx.model.group_sizes):
      return f'model.kind={ctx.config.model.kind} has no latent'
    return reason

  def compute(self, ctx: base.Context) -> dict:
    model, params, test = ctx.model, ctx.params, ctx.dataset.test
    encode = jax.jit(lambda x, y: model.apply({'params': params}, x, y, method=model.encode))
    means, log_vars = [], []
    for i in range(0, len(test.examples), 1000):
      x = jnp.asarray(test.spec.decode(np.asarray(test.examples[i:i + 1000])))
      y = None if test.labels is None else jnp.asarray(test.labels[i:i + 1000])
      m, v = encode(x, y)
      if v is None:
        return {'mutual_information_nats': None}
      means.append(np.asarray(m))
      log_vars.append(np.asarray(v))
    mi = mutual_information(np.concatenate(means), np.concatenate(log_vars), jax.random.fold_in(ctx.key, _STREAM))
    return {'mutual_information_nats': mi,
            'mutual_information_estimator': f"He et al. (2019), one z per test example, q(z) over all "
                                            f"{len(test.examples)} test examples"}
