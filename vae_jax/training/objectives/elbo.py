"""`elbo`: the negative (beta-weighted, optionally free-bits) ELBO, in nats per example.

Sign convention, used everywhere in vae_jax:
  recon = E_q[log p(x|z)]          (<= 0 for discrete data)
  kl    = sum over latent groups of KL(q || p) (>= 0)
  elbo  = recon - kl               (a lower bound on log p(x))
  loss  = -(recon - kl_weight * kl), averaged over the batch: what is minimized.
"""

import jax
import jax.numpy as jnp

from vae_jax.training.objectives import base


def kl_metrics(kl: jax.Array) -> dict[str, jax.Array]:
  """Batch means of the KL of each latent group (n, G), when there is more than one."""
  if kl.shape[-1] < 2:
    return {}
  return {f'kl_group_{g}_nats': jnp.mean(kl[:, g]) for g in range(kl.shape[-1])}


def elbo_loss(model, t: dict, kl_weight, free_bits: float = 0.0) -> tuple[jax.Array, dict]:
  """The loss and metrics of `terms` `t` of one posterior sample per example.

  With `free_bits` > 0 (nats per latent group), a group whose batch-mean KL
  is below it is charged `free_bits` instead (Kingma et al. 2016), so the
  optimizer gains nothing by collapsing it further. A model that is not
  stochastic (the autoencoder) is trained on -log p(x|z) alone. A kind's own
  per-example figures in nats (`NAME_nats` terms) are logged as batch means.
  """
  recon = t['log_px_z']
  own = {k: jnp.mean(v) for k, v in t.items() if k.endswith('_nats')}
  if not model.stochastic:
    loss = -jnp.mean(recon)
    return loss, {'loss': loss, 'recon_nats': jnp.mean(recon), **own}
  kl = jnp.sum(t['kl'], axis=-1)
  if free_bits > 0:
    loss = -jnp.mean(recon) + kl_weight * jnp.sum(jnp.maximum(jnp.mean(t['kl'], axis=0), free_bits))
  else:
    loss = -jnp.mean(recon - kl_weight * kl)
  return loss, {'loss': loss, 'elbo_nats': jnp.mean(recon - kl), 'recon_nats': jnp.mean(recon),
                'kl_nats': jnp.mean(kl), **kl_metrics(t['kl']), **own}


def elbo_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight, free_bits: float = 0.0,
                   labels: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """Negative (beta-weighted) ELBO with one reparameterized posterior sample per example (`elbo_loss`).

  `labels` (the class of each example) reach the model, which ignores them
  unless it is conditional.
  """
  return elbo_loss(model, model.apply({'params': params}, x, keys, labels), kl_weight, free_bits)


class Elbo(base.Objective):
  """The ELBO of model.beta, model.kl_warmup_epochs and model.free_bits."""

  def loss(self, model, params, batch, keys, kl_weight):
    return elbo_objective(model, params, batch['x'], keys, kl_weight, self.config.model.free_bits,
                          batch.get('label'))
