"""Decoder likelihoods p(x|z): a head module that turns decoder outputs into the
distribution's parameters, and pure functions of those parameters.

Log-probabilities are summed over every pixel and channel: one number per
example, in nats.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def _sum_per_example(values: jax.Array) -> jax.Array:
  return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


class Bernoulli(nn.Module):
  """p(x|z) = prod Bernoulli(x_i; sigmoid(logit_i)). Parameters: the logits."""

  @nn.compact
  def __call__(self, outputs: jax.Array) -> jax.Array:
    return outputs

  @staticmethod
  def log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    # x*l - softplus(l) = log sigmoid(l) for x=1 and log sigmoid(-l) for x=0, with one softplus.
    return _sum_per_example(x * logits - jax.nn.softplus(logits))

  @staticmethod
  def mean(logits: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(logits)

  @staticmethod
  def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(jnp.float32)


class Gaussian(nn.Module):
  """p(x|z) = prod N(x_i; mean_i, std^2), mean_i = sigmoid(output_i) in [0, 1].

  The scale is fixed, or one learned scalar shared by all pixels (as in
  sigma-VAE): a per-pixel learned variance collapses on constant background.
  Parameters: (mean, log_std), log_std broadcast to the mean's shape.
  """
  std: float = 0.1
  learn_std: bool = False

  @nn.compact
  def __call__(self, outputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    mean = jax.nn.sigmoid(outputs)
    if self.learn_std:
      log_std = self.param('log_std', nn.initializers.constant(math.log(self.std)), ())
    else:
      log_std = jnp.asarray(math.log(self.std), jnp.float32)
    return mean, jnp.broadcast_to(log_std, mean.shape)

  @staticmethod
  def log_prob(params: tuple[jax.Array, jax.Array], x: jax.Array) -> jax.Array:
    mean, log_std = params
    z = (x - mean) * jnp.exp(-log_std)
    return _sum_per_example(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi))

  @staticmethod
  def mean(params: tuple[jax.Array, jax.Array]) -> jax.Array:
    return params[0]

  @staticmethod
  def sample(key: jax.Array, params: tuple[jax.Array, jax.Array]) -> jax.Array:
    mean, log_std = params
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def make(config) -> nn.Module:
  """The likelihood head named by `config.model.likelihood`."""
  if config.model.likelihood == 'bernoulli':
    return Bernoulli()
  return Gaussian(std=config.model.gaussian_std,
                  learn_std=config.model.gaussian_variance == 'learned')


def bits_per_dim(nll_nats: float, num_dims: int, likelihood: str) -> float:
  """Converts -log p(x) in nats per example to bits per dimension.

  Bernoulli: a discrete probability, so nats / (D ln 2). Gaussian on [0, 1]
  data: a density, reported on the 8-bit scale by adding D ln 256 (the usual
  convention for continuous models of 8-bit images).
  """
  if likelihood == 'gaussian':
    nll_nats = nll_nats + num_dims * math.log(256.0)
  return nll_nats / (num_dims * math.log(2.0))
