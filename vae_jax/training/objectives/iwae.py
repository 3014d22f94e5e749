"""`iwae`: the negative importance-weighted bound (Burda et al. 2016), in nats per example."""

import math

import jax
import jax.numpy as jnp

from vae_jax import errors
from vae_jax.evaluation import estimators
from vae_jax.training.objectives import base
from vae_jax.training.objectives import elbo


def iwae_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight, num_samples: int,
                   labels: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """Negative importance-weighted bound with k = num_samples.

    L_k = E[log (1/k) sum_i w_i],  log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),  z_i ~ q(z|x)

  Differentiated through the reparameterized samples, which gives the IWAE
  gradient: each sample's gradient weighted by its normalized weight. k = 1 is
  the ELBO with a one-sample KL. `kl_weight` scales log p(z) - log q(z|x)
  inside each weight, so warm-up works as for the ELBO.
  """
  ctx = model.apply({'params': params}, x, labels, method=model.infer)
  t = estimators.terms_of_samples(model, params, x, ctx, keys, jnp.arange(num_samples))
  log_w = t['log_px_z'] + kl_weight * t['log_ratio']
  bound = jax.nn.logsumexp(log_w, axis=0) - math.log(num_samples)
  loss = -jnp.mean(bound)
  recon, kl_groups = jnp.mean(t['log_px_z'], axis=0), jnp.mean(t['kl'], axis=0)
  kl = jnp.sum(kl_groups, axis=-1)
  return loss, {'loss': loss, 'iwae_bound_nats': jnp.mean(bound), 'elbo_nats': jnp.mean(recon - kl),
                'recon_nats': jnp.mean(recon), 'kl_nats': jnp.mean(kl), **elbo.kl_metrics(kl_groups)}


class Iwae(base.Objective):
  """The IWAE bound with k = model.num_importance_samples."""

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if m.free_bits > 0:
      raise errors.ConfigError(
          f'model.free_bits={m.free_bits} applies to the ELBO, but this config trains the importance-weighted '
          f'bound (model.kind={m.kind}, model.num_importance_samples={m.num_importance_samples}); set '
          'model.free_bits=0 or train on the ELBO')

  def loss(self, model, params, batch, keys, kl_weight):
    return iwae_objective(model, params, batch['x'], keys, kl_weight, self.config.model.num_importance_samples,
                          batch.get('label'))
