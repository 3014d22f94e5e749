"""An autoregressive prior over a grid of discrete codes: a small PixelCNN (van den Oord et al. 2016).

p(c) = prod_i p(c_i | c_<i) in raster order over an (h, w) grid of indices
in [0, K). The codes are embedded, then masked 3x3 convolutions see only the
positions before the one they predict: the first layer (mask A) not even
that position itself, the later ones (mask B, residual) up to it. Like the
original PixelCNN it has a blind spot (part of the rows above, to the upper
right, is out of reach); on a 7x7 grid of codes that costs little. The output
layer starts at zero, so the untrained prior is exactly uniform, log K per
code, which is what a VQ-VAE's first stage is scored with.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.models import convolution


def causal_mask(size: int, include_center: bool) -> np.ndarray:
  """(size, size, 1, 1) mask of the kernel taps before the centre in raster order (and it, with include_center)."""
  mask = np.zeros((size, size), np.float32)
  c = size // 2
  mask[:c, :] = 1.0
  mask[c, :c + int(include_center)] = 1.0
  return mask[:, :, None, None]


class MaskedConv(convolution.Conv):
  """A 'SAME' convolution whose kernel taps after the centre (and, without include_center, the centre)
  are zero: the project's convolution, fast on the CPU too."""
  include_center: bool = True

  def compute(self, x: jax.Array, kernel: jax.Array, impl: str) -> jax.Array:
    return super().compute(x, kernel * causal_mask(kernel.shape[0], self.include_center), impl)


class PixelCNN(nn.Module):
  """logits (n, h, w, K) of p(c_i | c_<i) for codes (n, h, w); `embedded` is the (n, h, w, C) input it reads."""
  num_codes: int
  channels: int = 64
  num_layers: int = 5
  conv_impl: str = 'auto'  # convolution.IMPLS; 'lax' where forward-mode autodiff is wanted

  def setup(self):
    self.embedding = nn.Embed(self.num_codes, self.channels, name='embed')
    impl = self.conv_impl
    self.first = MaskedConv(self.channels, (5, 5), include_center=False, impl=impl, name='in')
    self.layers = [MaskedConv(self.channels, (3, 3), impl=impl, name=f'res_{i}') for i in range(self.num_layers)]
    self.last = MaskedConv(self.num_codes, (1, 1), kernel_init=nn.initializers.zeros_init(), impl=impl, name='out')

  def embed(self, codes: jax.Array) -> jax.Array:
    return self.embedding(codes)

  def logits_from_embedding(self, h: jax.Array) -> jax.Array:
    h = self.first(h)
    for layer in self.layers:
      h = h + layer(nn.gelu(h))
    return self.last(nn.gelu(h))

  def __call__(self, codes: jax.Array) -> jax.Array:
    return self.logits_from_embedding(self.embed(codes))

  def log_prob(self, codes: jax.Array) -> jax.Array:
    """log p(codes) per example, in nats."""
    log_p = jax.nn.log_softmax(self(codes).astype(jnp.float32))
    picked = jnp.take_along_axis(log_p, codes[..., None], axis=-1)[..., 0]
    return jnp.sum(picked.reshape(codes.shape[0], -1), axis=-1)

  def sample(self, key: jax.Array, n: int, shape: tuple[int, int], temperature: float = 1.0) -> jax.Array:
    """n grids of codes, one position at a time in raster order (logits divided by the temperature;
    at temperature 0 the most likely code). One compiled loop, whatever the grid size."""
    h, w = shape

    def body(mdl, carry):
      i, codes = carry
      logits = jax.lax.dynamic_index_in_dim(mdl(codes).reshape(n, h * w, -1), i, axis=1, keepdims=False)
      logits = logits.astype(jnp.float32)
      pick = jax.random.categorical(jax.random.fold_in(key, i), logits / jnp.maximum(temperature, 1e-6))
      pick = jnp.where(temperature > 0, pick, jnp.argmax(logits, axis=-1))
      return i + 1, codes.reshape(n, h * w).at[:, i].set(pick).reshape(n, h, w)

    _, codes = nn.while_loop(lambda mdl, carry: carry[0] < h * w, body, self,
                             (jnp.zeros((), jnp.int32), jnp.zeros((n, h, w), jnp.int32)))
    return codes
