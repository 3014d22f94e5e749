"""The disentangling kinds: the VAE's model, trained on an objective that shapes the aggregate posterior q(z).

  annealed_vae  Burgess et al. 2018: gamma * |KL - C|, the capacity C raised linearly
  beta_tcvae    Chen et al. 2018: the KL split into index-code MI, total correlation and dimension-wise KL,
                the total correlation weighted by model.tc_weight
  dip_vae       Kumar et al. 2018: the ELBO plus penalties on the covariance of q(z) (DIP-VAE-I / -II)
  factor_vae    Kim & Mnih 2018: the ELBO plus tc_weight times a discriminator's estimate of the total
                correlation, the discriminator trained by its own optimizer (optim.discriminator)

Each is the VAE (same networks, prior, `terms`), so its ELBO, importance-sampled
NLL, active units, probe and kNN are measured as for every kind; only the
training objective differs (vae_jax/training/objectives/disentangling.py).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import errors
from vae_jax.models import vae


class AnnealedVAE(vae.VAE):
  """Burgess et al.'s capacity-annealed VAE."""
  objective = 'annealed_vae'
  options = {'capacity_max_nats': 25.0, 'capacity_steps': 100_000, 'gamma': 1000.0}

  @classmethod
  def check_config(cls, config) -> None:
    super().check_config(config)
    m = config.model
    if m.capacity_max_nats < 0 or m.capacity_steps < 1 or m.gamma <= 0:
      raise errors.ConfigError(f'model.kind=annealed_vae needs model.capacity_max_nats >= 0 (got '
                               f'{m.capacity_max_nats}), model.capacity_steps >= 1 (got {m.capacity_steps}) and '
                               f'model.gamma > 0 (got {m.gamma})')


class BetaTCVAE(vae.VAE):
  """Chen et al.'s beta-TCVAE.

  Its total-correlation estimate is over the batch: example j's loss reads
  the other examples' posteriors, so the rule that example j's draws and
  terms come from keys[j] alone holds for `terms` (and every evaluation) but
  not for the training loss, which depends on the batch it is in.
  """
  objective = 'beta_tcvae'
  options = {'tc_weight': 6.0, 'tc_estimator': 'mss'}

  @classmethod
  def check_config(cls, config) -> None:
    super().check_config(config)
    m = config.model
    if m.tc_weight < 0:
      raise errors.ConfigError(f'model.tc_weight={m.tc_weight} must be >= 0 (1 is the plain VAE\'s decomposition)')
    if m.prior != 'standard_normal' or m.posterior_flow != 'none':
      raise errors.ConfigError('model.kind=beta_tcvae decomposes the KL to a standard normal prior of a Gaussian '
                               'q(z|x): use model.prior=standard_normal and model.posterior_flow=none')
    if m.tc_estimator not in ('mws', 'mss'):
      raise errors.ConfigError(f'model.tc_estimator={m.tc_estimator!r} is not allowed; use mws (minibatch-weighted '
                               'sampling) or mss (minibatch-stratified sampling)')


class FactorVAE(vae.VAE):
  """Kim & Mnih's FactorVAE. Its discriminator (parameters discriminator_*) tells codes z ~ q(z|x) from the
  same batch's codes with each dimension permuted across the batch (samples of prod_d q(z_d)); its log odds
  are the total-correlation estimate. Like beta_tcvae's, that estimate reads the whole batch."""
  objective = 'factor_vae'
  options = {'tc_weight': 6.0, 'discriminator_sizes': (1000, 1000, 1000, 1000, 1000, 1000)}

  @classmethod
  def check_config(cls, config) -> None:
    super().check_config(config)
    m, d = config.model, config.optim.discriminator
    if m.tc_weight < 0:
      raise errors.ConfigError(f'model.tc_weight={m.tc_weight} must be >= 0')
    if not m.discriminator_sizes or any(int(s) < 1 for s in m.discriminator_sizes):
      raise errors.ConfigError(f'model.discriminator_sizes={tuple(m.discriminator_sizes)} must be a non-empty list '
                               'of positive widths')
    if d.learning_rate <= 0 or not (0 <= d.b1 < 1 and 0 <= d.b2 < 1):
      raise errors.ConfigError(f'optim.discriminator needs learning_rate > 0 (got {d.learning_rate}) and b1, b2 '
                               f'in [0, 1) (got {d.b1}, {d.b2})')

  @nn.compact
  def discriminate(self, z: jax.Array) -> jax.Array:
    """Logits (n, 2): column 0 'a code of q(z)', column 1 'a code of prod_d q(z_d)'."""
    h = z
    for i, width in enumerate(self.discriminator_sizes):
      h = nn.leaky_relu(nn.Dense(int(width), name=f'discriminator_{i}')(h), 0.2)
    return nn.Dense(2, name='discriminator_out')(h)

  discriminator_sizes: tuple[int, ...] = (1000,) * 6

  @classmethod
  def build(cls, config, spec):
    model = super().build(config, spec)
    return model.clone(discriminator_sizes=tuple(int(s) for s in config.model.discriminator_sizes))

  def __call__(self, x, keys, labels=None):
    self.discriminate(jnp.zeros((1, self.latent_dim)))  # the discriminator's parameters exist from init on
    return super().__call__(x, keys, labels)


class DIPVAE(vae.VAE):
  """Kumar et al.'s DIP-VAE: the ELBO plus lambda_od * sum of squared off-diagonal entries and lambda_d * sum
  of squared (diagonal - 1) of a covariance of q(z): of the posterior means (i), or of q(z) itself (ii)."""
  objective = 'dip_vae'
  options = {'dip_type': 'i', 'dip_lambda_od': 10.0, 'dip_lambda_d': 100.0}

  @classmethod
  def check_config(cls, config) -> None:
    super().check_config(config)
    m = config.model
    if m.dip_type not in ('i', 'ii'):
      raise errors.ConfigError(f'model.dip_type={m.dip_type!r} is not allowed; use i or ii')
    if m.dip_lambda_od < 0 or m.dip_lambda_d < 0:
      raise errors.ConfigError(f'model.dip_lambda_od={m.dip_lambda_od} and model.dip_lambda_d={m.dip_lambda_d} '
                               'must be >= 0')
