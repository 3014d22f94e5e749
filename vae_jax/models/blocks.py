"""Network blocks shared by the model kinds: dense and convolutional encoders and
decoders, and the residual blocks of the hierarchical models.

Blocks compute in `dtype` (float32 or bfloat16); the models cast what they
return to float32, so likelihoods and KLs are always reduced in float32.
"""

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import errors
from vae_jax.models import convolution

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


def _dense_stack(h: jax.Array, hidden_sizes: Sequence[int], out_dim: int, activation: str, dtype) -> jax.Array:
  """Dense layers dense_0.. of `hidden_sizes`, then a linear layer `out`, in the calling module's scope
  (so every MLP-shaped module keeps the same parameter names)."""
  act = ACTIVATIONS[activation]
  for i, width in enumerate(hidden_sizes):
    h = act(nn.Dense(_units(width, activation), dtype=dtype, name=f'dense_{i}')(h))
  return nn.Dense(out_dim, dtype=dtype, name='out')(h)


def _with(h: jax.Array, cond: jax.Array | None) -> jax.Array:
  """h with the condition vector (a conditional model's one-hot label) appended, when there is one."""
  return h if cond is None else jnp.concatenate([h, cond.astype(h.dtype)], axis=-1)


def image_dims(spec, what: str, instead: str = 'use model.encoder=mlp', halvings: int = 0) -> tuple[int, int, int]:
  """(H, W, C) of an image spec (`vae_jax.data.ExampleSpec`); for other examples, a ConfigError saying that
  `what` (the convolutional part asked for) needs images, and what to do `instead`. A network that halves
  the image `halvings` times refuses images smaller than 2^halvings a side: its deepest layers would see
  padding only."""
  if spec.kind != 'image':
    raise errors.ConfigError(f'{what} convolves images; this data holds {spec.describe()}: {instead}')
  height, width, channels = (int(d) for d in spec.shape)
  side = 2 ** halvings
  if min(height, width) < side:
    raise errors.ConfigError(f'{what} halves the image {halvings} times (model.hidden_sizes), which needs images of '
                             f'at least {side}x{side}; these are {height}x{width}: set data.image_size to at least '
                             f'{side},{side} or give model.hidden_sizes fewer entries')
  return height, width, channels


def _conv_down(h: jax.Array, channels: Sequence[int], activation: str, dtype) -> jax.Array:
  """Stride-2 3x3 convolutions conv_0.. of `channels`, in the calling module's scope."""
  act = ACTIVATIONS[activation]
  for i, c in enumerate(channels):
    h = act(convolution.Conv(_units(c, activation), (3, 3), strides=2, dtype=dtype, name=f'conv_{i}')(h))
  return h


def _conv_up(h: jax.Array, channels: Sequence[int], image_shape: Sequence[int], activation: str, dtype) -> jax.Array:
  """Stride-2 3x3 transposed convolutions deconv_0.. of reversed `channels`, then a 3x3 convolution `out`
  to the image's channels, cropped to its size; in the calling module's scope."""
  act = ACTIVATIONS[activation]
  height, width, out_channels = image_shape
  for i, c in enumerate(reversed(channels)):
    deconv = convolution.ConvTranspose(_units(c, activation), (3, 3), strides=2, dtype=dtype, name=f'deconv_{i}')
    h = act(deconv(h))
  h = convolution.Conv(out_channels, (3, 3), dtype=dtype, name='out')(h)
  return h[:, :height, :width, :]


class MLPEncoder(nn.Module):
  """Flattens the image (appending `cond`, if any) and maps it through dense layers to `out_dim` features."""
  hidden_sizes: Sequence[int]
  out_dim: int
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    return _dense_stack(_with(x.reshape(x.shape[0], -1), cond), self.hidden_sizes, self.out_dim, self.activation,
                        self.dtype)


class MLPDecoder(nn.Module):
  """Maps a latent through dense layers to `out_shape` outputs an example (one per pixel and channel of an
  image, or per entry of a vector, times what the likelihood head reads of each)."""
  hidden_sizes: Sequence[int]
  out_shape: Sequence[int]
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = _dense_stack(z, self.hidden_sizes, math.prod(self.out_shape), self.activation, self.dtype)
    return h.reshape(z.shape[0], *self.out_shape)


class ConvEncoder(nn.Module):
  """One stride-2 3x3 convolution per entry of `channels`, then a dense layer (which also reads `cond`)."""
  channels: Sequence[int]
  out_dim: int
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    h = _conv_down(x, self.channels, self.activation, self.dtype)
    return nn.Dense(self.out_dim, dtype=self.dtype, name='out')(_with(h.reshape(h.shape[0], -1), cond))


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
    height, width, _ = self.image_shape
    n = len(self.channels)
    h0, w0 = -(-height // 2**n), -(-width // 2**n)
    top = self.channels[-1]
    h = act(nn.Dense(_units(h0 * w0 * top, self.activation), dtype=self.dtype, name='in')(z))
    return _conv_up(h.reshape(z.shape[0], h0, w0, top), self.channels, self.image_shape, self.activation,
                    self.dtype)


class ConvGridEncoder(nn.Module):
  """Stride-2 3x3 convolutions, one per entry of `channels`, then a 1x1 convolution: a grid of vectors."""
  channels: Sequence[int]
  out_channels: int
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = _conv_down(x, self.channels, self.activation, self.dtype)
    return convolution.Conv(self.out_channels, (1, 1), dtype=self.dtype, name='out')(h)


class ConvGridDecoder(nn.Module):
  """From a grid of vectors back to the image: a 3x3 convolution, stride-2 transposed convolutions
  mirroring ConvGridEncoder, a 3x3 output convolution, cropped to the image size."""
  channels: Sequence[int]
  image_shape: Sequence[int]
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    h = act(convolution.Conv(_units(self.channels[-1], self.activation), (3, 3), dtype=self.dtype, name='in')(z))
    return _conv_up(h, self.channels, self.image_shape, self.activation, self.dtype)


def one_hot_entries(x: jax.Array, categories: Sequence[int]) -> jax.Array:
  """Rows x (n, D) with each entry j of categories[j] > 0 (a code) read as its one-hot vector of categories[j]
  entries, and the others as they are: (n, D - #coded + sum(categories))."""
  parts = [x[:, j:j + 1] if not k else jax.nn.one_hot(jnp.round(x[:, j]).astype(jnp.int32), k, dtype=x.dtype)
           for j, k in enumerate(categories)]
  return jnp.concatenate(parts, axis=-1)


class OneHotInputs(nn.Module):
  """`inner`, an encoder, reading a vector's categorical entries one-hot (`one_hot_entries`): a code is a
  label, and a network reading it as a number would take category 3 for halfway between 2 and 4."""
  inner: nn.Module
  categories: tuple[int, ...]

  def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    return self.inner(one_hot_entries(x, self.categories), cond)


def reading(encoder: nn.Module, categories: Sequence[int]) -> nn.Module:
  """`encoder` reading the entries with categories (the spec's `one_hot`) one-hot; itself when there are none."""
  return OneHotInputs(encoder, tuple(int(k) for k in categories)) if any(categories) else encoder


ENCODERS = {'mlp': MLPEncoder, 'conv': ConvEncoder}
DECODERS = {'mlp': MLPDecoder, 'conv': ConvDecoder}


class MLP(nn.Module):
  """Dense layers of `hidden_sizes` with `activation`, then a linear layer of `out_dim` units."""
  hidden_sizes: Sequence[int]
  out_dim: int
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    return _dense_stack(h, self.hidden_sizes, self.out_dim, self.activation, self.dtype)


class ResBlock(nn.Module):
  """VDVAE's bottleneck residual block: x + c1x1(a(c3x3(a(c3x3(a(c1x1(a(x)))))))), width/4 inside.

  Its last layer starts at `out_scale` times the usual init, so a deep stack
  starts close to the identity (VDVAE scales it by 1/sqrt(depth)).
  """
  width: int
  out_width: int | None = None
  residual: bool = True
  out_scale: float = 1.0
  activation: str = 'gelu'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    mid = max(self.width // 4, 1)
    out = self.out_width or x.shape[-1]
    init = (nn.initializers.variance_scaling(self.out_scale**2, 'fan_in', 'truncated_normal') if self.out_scale
            else nn.initializers.zeros_init())
    h = convolution.Conv(mid, (1, 1), dtype=self.dtype, name='in')(act(x))
    h = convolution.Conv(mid, (3, 3), dtype=self.dtype, name='mid_0')(act(h))
    h = convolution.Conv(mid, (3, 3), dtype=self.dtype, name='mid_1')(act(h))
    h = convolution.Conv(out, (1, 1), dtype=self.dtype, kernel_init=init, name='out')(act(h))
    return x + h if self.residual else h
