"""Encoders, decoders and the models built from them.

Models are pure: randomness enters only through explicit key arguments.
Parameters are float32; `model.dtype=bfloat16` computes the layers in bf16
and casts the encoder's and decoder's outputs back to float32, so the
likelihood, the KL and the loss are always reduced in float32. Every
model exposes `encode`, `decode` and `log_px_given_z` as separate methods, so
a notebook can call one without the others:

  mean, log_var = model.apply(params, x, method=model.encode)
"""

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import convolution
from vae_jax import likelihoods

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'relu': nn.relu, 'tanh': nn.tanh, 'gelu': nn.gelu, 'elu': nn.elu, 'swish': nn.swish,
    'glu': nn.glu,
}


def _units(n: int, activation: str) -> int:
  """Width of the layer feeding `activation`: GLU gates half its inputs with the other half.

  Gated layers, h = a * sigmoid(b), are what the VampPrior and Exemplar VAE
  baselines use; `n` stays the width the next layer sees.
  """
  return 2 * n if activation == 'glu' else n


class MLPEncoder(nn.Module):
  """Flattens the image and maps it through dense layers to `out_dim` features."""
  hidden_sizes: Sequence[int]
  out_dim: int
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    h = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden_sizes):
      h = act(nn.Dense(_units(width, self.activation), dtype=self.dtype, name=f'dense_{i}')(h))
    return nn.Dense(self.out_dim, dtype=self.dtype, name='out')(h)


class MLPDecoder(nn.Module):
  """Maps a latent through dense layers to one output per pixel and channel."""
  hidden_sizes: Sequence[int]
  image_shape: Sequence[int]
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    h = z
    for i, width in enumerate(self.hidden_sizes):
      h = act(nn.Dense(_units(width, self.activation), dtype=self.dtype, name=f'dense_{i}')(h))
    h = nn.Dense(math.prod(self.image_shape), dtype=self.dtype, name='out')(h)
    return h.reshape(z.shape[0], *self.image_shape)


class ConvEncoder(nn.Module):
  """One stride-2 3x3 convolution per entry of `channels`, then a dense layer."""
  channels: Sequence[int]
  out_dim: int
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    h = x
    for i, c in enumerate(self.channels):
      conv = convolution.Conv(_units(c, self.activation), (3, 3), strides=2, dtype=self.dtype, name=f'conv_{i}')
      h = act(conv(h))
    return nn.Dense(self.out_dim, dtype=self.dtype, name='out')(h.reshape(h.shape[0], -1))


class ConvDecoder(nn.Module):
  """Mirrors ConvEncoder with stride-2 transposed convolutions.

  Starts at ceil(H / 2^n) x ceil(W / 2^n) and crops the result to the image
  size, so any image size works (28, 32, 8, ...).
  """
  channels: Sequence[int]
  image_shape: Sequence[int]
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    height, width, out_channels = self.image_shape
    n = len(self.channels)
    h0, w0 = -(-height // 2**n), -(-width // 2**n)
    top = self.channels[-1]
    h = act(nn.Dense(_units(h0 * w0 * top, self.activation), dtype=self.dtype, name='in')(z))
    h = h.reshape(z.shape[0], h0, w0, top)
    for i, c in enumerate(reversed(self.channels)):
      deconv = convolution.ConvTranspose(_units(c, self.activation), (3, 3), strides=2, dtype=self.dtype,
                                         name=f'deconv_{i}')
      h = act(deconv(h))
    h = convolution.Conv(out_channels, (3, 3), dtype=self.dtype, name='out')(h)
    return h[:, :height, :width, :]


ENCODERS = {'mlp': MLPEncoder, 'conv': ConvEncoder}
DECODERS = {'mlp': MLPDecoder, 'conv': ConvDecoder}


class VAE(nn.Module):
  """Gaussian encoder q(z|x) = N(mean, diag exp(log_var)), decoder p(x|z), prior N(0, I)."""
  encoder: nn.Module
  decoder: nn.Module
  likelihood: nn.Module
  latent_dim: int

  stochastic = True

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns the mean and log-variance of q(z|x), each (batch, latent_dim)."""
    h = self.encoder(x).astype(jnp.float32)
    return h[:, :self.latent_dim], h[:, self.latent_dim:]

  def decode(self, z: jax.Array):
    """Returns the parameters of p(x|z): logits for Bernoulli, (mean, log_std) for Gaussian."""
    return self.likelihood(self.decoder(z).astype(jnp.float32))  # the likelihood is always float32

  def log_px_given_z(self, z: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x|z) per example, in nats."""
    return type(self.likelihood).log_prob(self.decode(z), x)

  def __call__(self, x: jax.Array, key: jax.Array):
    mean, log_var = self.encode(x)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    return self.decode(z), mean, log_var


class Autoencoder(VAE):
  """The deterministic baseline: z = encoder(x), no sampling and no KL.

  `encode` returns (z, None): there is no variance to report.
  """
  stochastic = False

  def encode(self, x: jax.Array) -> tuple[jax.Array, None]:
    return self.encoder(x).astype(jnp.float32), None

  def __call__(self, x: jax.Array, key: jax.Array | None = None):
    z, _ = self.encode(x)
    return self.decode(z), z, None


MODELS = {'vae': VAE, 'iwae': VAE, 'ae': Autoencoder}  # IWAE: the VAE's model, another objective


def make(config, image_shape: Sequence[int]) -> VAE:
  """Builds the model named by `config.model.kind` for images of `image_shape` (H, W, C)."""
  m = config.model
  image_shape = tuple(int(d) for d in image_shape)
  model_cls = MODELS[m.kind]
  out_dim = m.latent_dim * (2 if model_cls.stochastic else 1)
  sizes = tuple(int(h) for h in m.hidden_sizes)
  dtype = jnp.dtype(m.dtype)
  encoder = ENCODERS[m.encoder](sizes, out_dim, m.activation, dtype)
  decoder = DECODERS[m.encoder](tuple(reversed(sizes)) if m.encoder == 'mlp' else sizes,
                                image_shape, m.activation, dtype)
  return model_cls(encoder=encoder, decoder=decoder, likelihood=likelihoods.make(config),
                   latent_dim=m.latent_dim)


def init_params(model: VAE, image_shape: Sequence[int], key: jax.Array):
  """Initial parameters, from a dummy batch of two images."""
  init_key, sample_key = jax.random.split(key)
  return model.init(init_key, jnp.zeros((2, *image_shape), jnp.float32), sample_key)['params']

