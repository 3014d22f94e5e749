"""`vqvae`: the VQ-VAE's objective, its codebook statistics and its two stages.

The loss is the ELBO of the point-mass posterior, -log p(x|z_q) - log p(c),
plus the kind's commitment term (`aux_loss` of its terms). After every update
of the first stage, the codebook's EMAs and per-code counts follow the batch
(`VQVAE.update_state`). Stage 2 trains the PixelCNN prior over the codes on
the frozen autoencoder for model.code_prior_epochs, with an optimizer of its own.
"""

import jax.numpy as jnp

from vae_jax.models import vqvae
from vae_jax.training import stages as stages_lib
from vae_jax.training.objectives import elbo


class VectorQuantized(elbo.Elbo):
  """The ELBO plus the commitment, with the codebook's use among the metrics."""

  def loss(self, model, params, batch, keys, kl_weight):
    t = model.apply({'params': params}, batch['x'], keys, batch.get('label'))
    loss, metrics = elbo.elbo_loss(model, t, kl_weight, self.config.model.free_bits)
    aux = jnp.mean(t['aux_loss'])
    loss = loss + aux
    perplexity, used = vqvae.codebook_use(t['code_usage'])
    return loss, dict(metrics, loss=loss, codebook_perplexity=perplexity, codes_used=used, aux_loss=aux)

  def stages(self):
    first = stages_lib.Stage('autoencoder', self.config.num_epochs, lambda path: path[0] != 'prior')
    if self.config.model.code_prior_epochs <= 0:
      return (first,)
    return (first, stages_lib.Stage('prior', self.config.model.code_prior_epochs, lambda path: path[0] == 'prior',
                                    after_update=False))

  def after_update(self, model, params, batch, key):
    return model.apply({'params': params}, batch['x'], batch.get('label'), key, method=model.update_state)
