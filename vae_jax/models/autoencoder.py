"""`ae`: the deterministic baseline, z = encoder(x), trained on log p(x|z) alone.

It has no prior and no posterior (`stochastic = False`): no KL, no ELBO, no
likelihood of x, no prior samples. Its `encode` returns (z, None).
"""

import jax
import jax.numpy as jnp

from vae_jax import data
from vae_jax import errors
from vae_jax.models import vae


class Autoencoder(vae.VAE):
  stochastic = False

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if m.prior != 'standard_normal' or m.posterior_flow != 'none':
      raise errors.ConfigError(f'model.kind=ae has no prior or posterior; model.prior={m.prior!r} and '
                               f'model.posterior_flow={m.posterior_flow!r} need model.kind=vae, iwae or hvae')

  @classmethod
  def build(cls, config, spec: data.ExampleSpec) -> 'Autoencoder':
    encoder, decoder, likelihood = vae.build_parts(config, spec, config.model.latent_dim)
    return cls(encoder=encoder, decoder=decoder, likelihood=likelihood, latent_dim=config.model.latent_dim)

  def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, None]:
    return self.infer(x, labels)['h'], None

  def terms(self, x: jax.Array, ctx: dict, keys: jax.Array) -> dict[str, jax.Array]:
    del keys
    return {'log_px_z': type(self.likelihood).log_prob(self._decode(ctx['h'], ctx['cond']), x),
            'kl': jnp.zeros((x.shape[0], 1), jnp.float32)}

  def sample(self, key, n, temperature=1.0, labels=None):
    raise ValueError('model.kind=ae has no prior to sample from')

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
    del keys
    ctx = self.infer(x, labels)
    return self._decode(ctx['h'], ctx['cond'])
