"""`vae` and `iwae`: one latent group, a Gaussian q(z|x) (optionally with a flow), any prior.

q(z|x) = N(mean(x), diag exp(log_var(x))), pushed through `model.posterior_flow`
when one is set; p(z) is `model.prior`; p(x|z) the decoder with `model.likelihood`.
`iwae` is the same model trained on the importance-weighted bound.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import likelihoods
from vae_jax.models import blocks
from vae_jax.models import flows
from vae_jax.models import gaussian
from vae_jax.models import priors


def build_parts(config, image_shape: Sequence[int], encoder_outputs: int):
  """The encoder, decoder and likelihood head of a one-group model (decoder sized for the head)."""
  m = config.model
  height, width, channels = (int(d) for d in image_shape)
  sizes = tuple(int(h) for h in m.hidden_sizes)
  dtype = jnp.dtype(m.dtype)
  likelihood = likelihoods.make(config, channels)
  out_shape = (height, width, likelihood.output_channels(channels))
  encoder = blocks.ENCODERS[m.encoder](sizes, encoder_outputs, m.activation, dtype)
  decoder = blocks.DECODERS[m.encoder](tuple(reversed(sizes)) if m.encoder == 'mlp' else sizes,
                                       out_shape, m.activation, dtype)
  return encoder, decoder, likelihood


class VAE(nn.Module):
  """Gaussian encoder (+ optional flow), prior `prior`, decoder p(x|z). The interface is in `vae_jax.models`."""
  encoder: nn.Module
  decoder: nn.Module
  likelihood: nn.Module
  latent_dim: int
  prior: nn.Module = priors.StandardNormal()
  flow: nn.Module | None = None

  stochastic = True
  objective = 'elbo'

  @classmethod
  def check_config(cls, config) -> None:
    del config

  @classmethod
  def build(cls, config, image_shape: Sequence[int]) -> 'VAE':
    latent = config.model.latent_dim
    encoder, decoder, likelihood = build_parts(config, image_shape, 2 * latent + flows.context_dim(config))
    return cls(encoder=encoder, decoder=decoder, likelihood=likelihood, latent_dim=latent,
               prior=priors.make(config, image_shape, latent), flow=flows.make(config))

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return (self.latent_dim,)

  @property
  def closed_form_kl(self) -> bool:
    return self.prior.closed_form_kl and self.flow is None

  def infer(self, x: jax.Array) -> jax.Array:
    """The encoder's output: mean, log-variance and (with a flow) its context, side by side."""
    return self.encoder(x).astype(jnp.float32)

  def _split(self, h: jax.Array):
    n = self.latent_dim
    return h[:, :n], h[:, n:2 * n], h[:, 2 * n:]

  def _gaussian_q(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Gaussian part of q(z|u): what the VampPrior's components are."""
    mean, log_var, _ = self._split(self.infer(u))
    return mean, log_var

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The mean and log-variance of the Gaussian q(z|x) (before any flow), each (batch, latent_dim)."""
    mean, log_var, _ = self._split(self.infer(x))
    return mean, log_var

  def decode(self, z: jax.Array):
    """The parameters of p(x|z), always computed in float32."""
    return self.likelihood(self.decoder(z).astype(jnp.float32))

  def log_px_given_z(self, z: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x|z) per example, in nats."""
    return type(self.likelihood).log_prob(self.decode(z), x)

  def _posterior_sample(self, ctx: jax.Array, keys: jax.Array):
    """z ~ q(z|x) from one key per example, with log q(z|x)."""
    mean, log_var, context = self._split(ctx)
    eps = gaussian.per_example_normal(keys, mean.shape[1:])
    z = mean + jnp.exp(0.5 * log_var) * eps
    log_q = -0.5 * jnp.sum(gaussian.LOG_2PI + log_var + eps**2, axis=-1)
    if self.flow is not None:
      z, log_det = self.flow(z, context)
      log_q = log_q - log_det
    return z, log_q, mean, log_var

  def terms(self, x: jax.Array, ctx: jax.Array, keys: jax.Array) -> dict[str, jax.Array]:
    z, log_q, mean, log_var = self._posterior_sample(ctx, keys)
    log_p = self.prior.log_prob(z, self._gaussian_q)
    out = {'log_px_z': self.log_px_given_z(z, x), 'log_ratio': log_p - log_q}
    if self.closed_form_kl:
      out['kl'] = gaussian.kl_standard_normal(mean, log_var)[:, None]
      out['kl_per_dim'] = gaussian.kl_standard_normal_per_dim(mean, log_var)
    else:
      out['kl'] = (log_q - log_p)[:, None]
    return out

  def sample(self, key: jax.Array, n: int, temperature=1.0):
    (t,) = priors.group_temperatures(temperature, 1)
    return self.decode(self.prior.sample(key, n, self.latent_dim, t, self._gaussian_q))

  def reconstruct(self, x: jax.Array, keys: jax.Array):
    z, _, _, _ = self._posterior_sample(self.infer(x), keys)
    return self.decode(z)

  def __call__(self, x: jax.Array, keys: jax.Array) -> dict[str, jax.Array]:
    return self.terms(x, self.infer(x), keys)


class IWAE(VAE):
  """The VAE's model, trained on the importance-weighted bound with model.num_importance_samples."""
  objective = 'iwae'
