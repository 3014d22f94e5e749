"""Dataset-level evaluation: the ELBO, its terms and the importance-sampled NLL.

Every number is a mean over examples, in nats per example, with the sign
convention of `objectives`: elbo_nats <= 0 is a lower bound on log p(x), and
nll_nats >= 0 estimates -log p(x).

Batches are sharded over every device. Example i of the evaluated array draws
its samples from fold_in(key, i), so the numbers do not depend on the batch
size, the sample chunk or the number of devices.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import likelihoods
from vae_jax import objectives
from vae_jax import parallel


class Evaluator:
  """Jit-compiled per-batch evaluation for one model on one mesh."""

  def __init__(self, model, batch_size: int, num_samples: int, chunk: int, mesh=None):
    self.model = model
    self.mesh = mesh or parallel.make_mesh()
    self.batch_size = batch_size
    self.num_samples = num_samples

    def stochastic(params, x, indices, key):
      keys = objectives.per_example_keys(key, indices)
      return objectives.importance_sampled_terms(model, params, x, keys, num_samples, chunk)

    def deterministic(params, x, indices, key):
      del indices, key
      z, _ = model.apply({'params': params}, x, method=model.encode)
      return {'recon': model.apply({'params': params}, z, x, method=model.log_px_given_z)}

    replicated = parallel.replicated(self.mesh)
    self._batch_fn = jax.jit(stochastic if model.stochastic else deterministic, out_shardings=replicated)

  def per_example(self, params, images: np.ndarray, key: jax.Array) -> dict[str, np.ndarray]:
    """Per-example terms (log_px, elbo, recon, kl; recon only for the autoencoder)."""
    n, num_devices = len(images), self.mesh.devices.size
    batch_size = min(self.batch_size, n)  # no padding a small split up to a large batch
    batch_size = -(-batch_size // num_devices) * num_devices  # ... but to a multiple of the devices
    sharding = parallel.sharded(self.mesh)
    parts = []
    for start in range(0, n, batch_size):
      x = images[start:start + batch_size]
      real = len(x)
      if real < batch_size:
        x = np.concatenate([x, np.zeros((batch_size - real, *x.shape[1:]), x.dtype)])
      indices = np.arange(start, start + batch_size, dtype=np.int32)
      out = self._batch_fn(params, parallel.to_global(x, sharding), parallel.to_global(indices, sharding), key)
      parts.append({k: np.asarray(v)[:real] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  def evaluate(self, params, images: np.ndarray, key: jax.Array, likelihood: str) -> dict[str, float]:
    """Means over `images`, under the keys of eval.json."""
    terms = self.per_example(params, images, key)
    num_dims = math.prod(images.shape[1:])
    out = {'recon_nats': float(np.mean(terms['recon'])), 'num_examples': len(images)}
    if 'log_px' in terms:
      nll = -terms['log_px'].astype(np.float64)
      out.update(
          elbo_nats=float(np.mean(terms['elbo'])),
          nll_nats=float(np.mean(nll)),
          nll_stderr_nats=float(np.std(nll, ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0,
          kl_nats=float(np.mean(terms['kl'])),
          bits_per_dim=likelihoods.bits_per_dim(float(np.mean(nll)), num_dims, likelihood),
          num_importance_samples=self.num_samples,
      )
    else:  # the autoencoder has no likelihood of x: say so instead of inventing one
      out.update(elbo_nats=None, nll_nats=None, nll_stderr_nats=None, kl_nats=None, bits_per_dim=None,
                 num_importance_samples=None)
    return out
