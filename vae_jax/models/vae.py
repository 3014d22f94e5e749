"""`vae` and `iwae`: one latent group, a Gaussian q(z|x) (optionally with a flow), any prior.

q(z|x) = N(mean(x), diag exp(log_var(x))), pushed through `model.posterior_flow`
when one is set; p(z) is `model.prior`; p(x|z) the decoder with `model.likelihood`.
`iwae` is the same model trained on the importance-weighted bound.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import data
from vae_jax.models import blocks
from vae_jax.models import flows
from vae_jax.models import gaussian
from vae_jax.models import kind
from vae_jax.models import likelihoods
from vae_jax.models import priors


def build_parts(config, spec: data.ExampleSpec, encoder_outputs: int):
  """The encoder, decoder and likelihood head of a one-group model for examples of `spec` (decoder sized for
  the head). The MLP blocks take any example; the convolutional ones images only. The encoder reads the
  categorical columns of a table one-hot (`spec.one_hot`, `blocks.reading`)."""
  m = config.model
  if m.encoder == 'conv':
    blocks.image_dims(spec, 'model.encoder=conv', halvings=len(m.hidden_sizes))
  sizes = tuple(int(h) for h in m.hidden_sizes)
  dtype = jnp.dtype(m.dtype)
  likelihood, out_shape = likelihoods.for_spec(config, spec)
  encoder = blocks.reading(blocks.ENCODERS[m.encoder](sizes, encoder_outputs, m.activation, dtype), spec.one_hot)
  decoder = blocks.DECODERS[m.encoder](tuple(reversed(sizes)) if m.encoder == 'mlp' else sizes,
                                       out_shape, m.activation, dtype)
  return encoder, decoder, likelihood


class VAE(kind.Kind):
  """Gaussian encoder (+ optional flow), prior `prior`, decoder p(x|z). The interface is `models.kind.Kind`.

  The conditioning hook `condition(labels)` gives None here, so labels are
  ignored; a conditional kind (`cvae`) returns a one-hot vector that the
  encoder, the prior and the decoder all read.
  """
  encoder: nn.Module
  decoder: nn.Module
  likelihood: nn.Module
  latent_dim: int
  prior: nn.Module = priors.StandardNormal()
  flow: nn.Module | None = None

  @classmethod
  def check_config(cls, config) -> None:
    priors.check_unconditional(config)

  @classmethod
  def build(cls, config, spec: data.ExampleSpec) -> 'VAE':
    latent = config.model.latent_dim
    encoder, decoder, likelihood = build_parts(config, spec, 2 * latent + flows.context_dim(config))
    return cls(encoder=encoder, decoder=decoder, likelihood=likelihood, latent_dim=latent,
               prior=priors.make(config, spec.shape, latent), flow=flows.make(config))

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return (self.latent_dim,)

  @property
  def closed_form_kl(self) -> bool:
    return self.prior.closed_form_kl and self.flow is None

  @property
  def kl_note(self) -> str | None:
    return None if self.closed_form_kl else priors.SINGLE_SAMPLE_KL_NOTE

  def condition(self, labels: jax.Array | None, n: int | None = None) -> jax.Array | None:
    """What the networks are conditioned on: nothing for an unconditional kind."""
    del labels, n
    return None

  def infer(self, x: jax.Array, labels: jax.Array | None = None) -> dict:
    """The encoder's output (mean, log-variance and, with a flow, its context, side by side) and the condition."""
    cond = self.condition(labels)
    return {'h': self.encoder(x, cond).astype(jnp.float32), 'cond': cond}

  def _split(self, h: jax.Array):
    n = self.latent_dim
    return h[:, :n], h[:, n:2 * n], h[:, 2 * n:]

  def _gaussian_q(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Gaussian part of q(z|u): what the VampPrior's components are."""
    mean, log_var, _ = self._split(self.infer(u)['h'])
    return mean, log_var

  def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """The mean and log-variance of the Gaussian q(z|x) (before any flow), each (batch, latent_dim)."""
    mean, log_var, _ = self._split(self.infer(x, labels)['h'])
    return mean, log_var

  def _decode(self, z: jax.Array, cond: jax.Array | None):
    h = z if cond is None else jnp.concatenate([z, cond.astype(z.dtype)], axis=-1)
    return self.likelihood(self.decoder(h).astype(jnp.float32))

  def decode(self, z: jax.Array, labels: jax.Array | None = None):
    """The parameters of p(x|z), always computed in float32."""
    return self._decode(z, self.condition(labels, z.shape[0]))

  def log_px_given_z(self, z: jax.Array, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """log p(x|z) per example, in nats."""
    return type(self.likelihood).log_prob(self.decode(z, labels), x)

  def _posterior_sample(self, ctx: dict, keys: jax.Array):
    """z ~ q(z|x) from one key per example, with log q(z|x)."""
    mean, log_var, context = self._split(ctx['h'])
    z, log_q = gaussian.draw(keys, mean, log_var)
    if self.flow is not None:
      z, log_det = self.flow(z, context)
      log_q = log_q - log_det
    return z, log_q, mean, log_var

  def terms(self, x: jax.Array, ctx: dict, keys: jax.Array) -> dict[str, jax.Array]:
    z, log_q, mean, log_var = self._posterior_sample(ctx, keys)
    cond = ctx['cond']
    log_p = self.prior.log_prob(z, self._gaussian_q, cond)
    out = {'log_px_z': type(self.likelihood).log_prob(self._decode(z, cond), x), 'log_ratio': log_p - log_q}
    if self.closed_form_kl:
      out['kl_per_dim'] = self.prior.kl_per_dim(mean, log_var, cond)
      out['kl'] = jnp.sum(out['kl_per_dim'], axis=-1, keepdims=True)
    else:
      out['kl'] = (log_q - log_p)[:, None]
    return out

  def code_terms(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
    """`terms` of one z ~ q(z|x) per example, with that z and q's mean and log-variance: what objectives that
    penalize the aggregate posterior q(z) over a batch read (the disentangling kinds)."""
    ctx = self.infer(x, labels)
    z, _, mean, log_var = self._posterior_sample(ctx, keys)  # the z that `terms` draws from the same keys
    return self.terms(x, ctx, keys), z, mean, log_var

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels: jax.Array | None = None):
    (t,) = priors.group_temperatures(temperature, 1)
    cond = self.condition(labels, n)
    return self._decode(self.prior.sample(key, n, self.latent_dim, t, self._gaussian_q, cond), cond)

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
    ctx = self.infer(x, labels)
    z, _, _, _ = self._posterior_sample(ctx, keys)
    return self._decode(z, ctx['cond'])

  @property
  def coding_obstacle(self) -> str | None:
    if not self.stochastic:
      return 'this model has no prior and no posterior, so there are no bits to get back'
    if self.conditional:
      return 'this model codes x given its class label y, which the file would have to carry as well'
    if self.flow is not None:
      return 'q(z|x) goes through a posterior flow, so it is not the diagonal Gaussian that the coder discretizes'
    return self.likelihood.coding_obstacle

  def latent_gaussians(self, x: jax.Array | None, z: jax.Array, labels: jax.Array | None = None):
    """[(prior log_weights, means, log_vars, q mean, q log_var)] for the one group (priors.as_mixture);
    q's are None when x is None."""
    n = z.shape[0]  # one group: z has nothing above it to condition on
    cond = self.condition(labels, n)
    prior = priors.as_mixture(self.prior, n, self.latent_dim, self._gaussian_q, cond)
    return [prior + ((None, None) if x is None else self.encode(x, labels))]


class IWAE(VAE):
  """The VAE's model, trained on the importance-weighted bound with model.num_importance_samples."""
  objective = 'iwae'
