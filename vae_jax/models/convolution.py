"""2-D convolutions that are fast on XLA:CPU, as drop-in replacements for flax's.

XLA:CPU lowers convolutions to Eigen kernels that are slow where PyTorch's
oneDNN kernels are fast, and slowest for what VAE decoders use most: a stride-2
3x3 transposed convolution from 14x14x64 to 28x28x32 takes about 200 ms forward
and backward at batch 128 on 2 cores, while a matrix multiplication holding the
same arithmetic takes 12 ms (BENCHMARKS.md). On the CPU these modules therefore
compute a convolution as one matrix multiplication plus shifted slices of
either its input (im2col) or its output (col2im), whichever moves fewer
values. Autodiff turns slices into pads and matmuls into matmuls, so the
backward pass is fast too. Elsewhere (GPU, TPU) they call lax's convolution,
which cuDNN and the TPU compiler do well.

`Conv` and `ConvTranspose` hold the parameters of `flax.linen.Conv` and
`flax.linen.ConvTranspose` (`kernel` in HWIO layout, `bias`), initialized from
the same random stream, and compute the same functions with 'SAME' padding, so
checkpoints written with either load in the other.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

IMPLS = ('auto', 'matmul', 'lax')
_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def resolve_impl(impl: str) -> str:
  """'auto' is 'matmul' on the CPU backend and 'lax' on accelerators."""
  if impl not in IMPLS:
    raise ValueError(f'convolution impl={impl!r}; use one of {", ".join(IMPLS)}')
  if impl == 'auto':
    return 'matmul' if jax.default_backend() == 'cpu' else 'lax'
  return impl


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int, int]:
  """Output size and (low, high) padding of lax's 'SAME' for one spatial axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return out, total // 2, total - total // 2


def _shift(a: jax.Array, dh: int, dw: int, oh: int, ow: int) -> jax.Array:
  """a[:, q + dh, r + dw] for q < oh, r < ow, zero outside a (one lax.pad; negative pads crop)."""
  config = [(0, 0, 0), (-dh, oh - a.shape[1] + dh, 0), (-dw, ow - a.shape[2] + dw, 0)] + [(0, 0, 0)] * (a.ndim - 3)
  return jax.lax.pad(a, jnp.zeros((), a.dtype), config)


Groups = tuple[tuple[tuple[int, int, int], ...], ...]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def shifted_sums(products: jax.Array, groups: Groups, out_hw: tuple[int, int]) -> jax.Array:
  """out[:, :, :, g] = sum over (t, dh, dw) in groups[g] of products[:, q + dh, r + dw, t].

  products: (B, H, W, taps, C); returns (B, oh, ow, len(groups), C). This is
  col2im: summing each tap's shifted share of a matmul's output. Its gradient
  is written by hand because autodiff would pad every tap's cotangent to the
  full (B, H, W, taps, C) shape and add them up (about 10x slower on XLA:CPU);
  the cotangent of tap t is one shifted copy of its group's output cotangent.
  """
  oh, ow = out_hw
  zeros = jnp.zeros((products.shape[0], oh, ow, products.shape[-1]), products.dtype)
  return jnp.stack([sum((_shift(products[:, :, :, t], dh, dw, oh, ow) for t, dh, dw in group), zeros)
                    for group in groups], axis=3)


def _shifted_sums_fwd(products, groups, out_hw):
  return shifted_sums(products, groups, out_hw), jax.ShapeDtypeStruct(products.shape, products.dtype)


def _shifted_sums_bwd(groups, out_hw, like, cotangent):
  del out_hw
  _, height, width, num_taps, channels = like.shape
  parts = [[] for _ in range(num_taps)]
  for g, group in enumerate(groups):
    for t, dh, dw in group:
      parts[t].append(_shift(cotangent[:, :, :, g], -dh, -dw, height, width))
  zeros = jnp.zeros((cotangent.shape[0], height, width, channels), like.dtype)
  return (jnp.stack([sum(p, zeros) for p in parts], axis=3),)


shifted_sums.defvjp(_shifted_sums_fwd, _shifted_sums_bwd)


def _tap_products(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """x[b, i, j] @ kernel[ti, tj] for every pixel and tap: (B, H, W, kh * kw, Co), one matmul."""
  kh, kw, ci, co = kernel.shape
  products = x @ jnp.transpose(kernel, (2, 0, 1, 3)).reshape(ci, kh * kw * co)
  return products.reshape(*x.shape[:3], kh * kw, co)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """Cross-correlation with lax's 'SAME' padding, as a matmul. x: NHWC, kernel: HWIO.

  im2col gathers the kh*kw shifted (and strided) views of x side by side and
  multiplies once; col2im multiplies every input pixel by every tap first and
  sums the shifted results. col2im copies kh*kw*Co values per pixel instead of
  kh*kw*Ci, so it wins for stride 1 with fewer output than input channels (an
  image head: 32 -> 1); with stride > 1 it would multiply pixels no output uses.
  """
  kh, kw, ci, co = kernel.shape
  _, height, width, _ = x.shape
  oh, ph, _ = _same_padding(height, kh, stride)
  ow, pw, _ = _same_padding(width, kw, stride)
  if stride == 1 and co < ci:
    group = tuple((i * kw + j, i - ph, j - pw) for i in range(kh) for j in range(kw))
    return shifted_sums(_tap_products(x, kernel), (group,), (oh, ow))[:, :, :, 0]
  span_h, span_w = stride * (oh - 1) + 1, stride * (ow - 1) + 1
  columns = [_shift(x, i - ph, j - pw, span_h, span_w)[:, ::stride, ::stride]
             for i in range(kh) for j in range(kw)]
  columns = jnp.concatenate(columns, axis=-1) if len(columns) > 1 else columns[0]
  return columns @ kernel.reshape(kh * kw * ci, co)


def _transpose_padding(k: int, stride: int) -> int:
  """The low padding lax.conv_transpose applies to the dilated input for 'SAME'."""
  return k - 1 if stride > k - 1 else -(-(k + stride - 2) // 2)


def conv_transpose2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """lax.conv_transpose(x, kernel, (stride, stride), 'SAME') as one matmul (col2im).

  That transposed convolution adds x[i] @ kernel[t] to output o = stride*i + p - t
  (p from `_transpose_padding`). Output phase a (o = stride*q + a) thus takes
  the taps t with t = p - a (mod stride), each from input q + (a + t - p) / stride.
  Every input pixel is multiplied by every tap once, which is exactly the
  layer's arithmetic; the phases are summed from shifted slices and interleaved.
  """
  kh, kw, _, co = kernel.shape
  batch, height, width, _ = x.shape
  ph, pw = _transpose_padding(kh, stride), _transpose_padding(kw, stride)

  def taps(a, k, p):  # (tap, input offset) pairs of output phase a along one axis
    return [(t, (a + t - p) // stride) for t in range(k) if (a + t - p) % stride == 0]

  groups = tuple(tuple((ti * kw + tj, di, dj) for ti, di in taps(a, kh, ph) for tj, dj in taps(b, kw, pw))
                 for a in range(stride) for b in range(stride))
  phases = shifted_sums(_tap_products(x, kernel), groups, (height, width))  # (B, H, W, s*s, Co)
  phases = phases.reshape(batch, height, width, stride, stride, co)
  return jnp.transpose(phases, (0, 1, 3, 2, 4, 5)).reshape(batch, height * stride, width * stride, co)


class _Convolution(nn.Module):
  """The parameters and dtype handling of flax's convolutions; subclasses say what to compute."""
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: int = 1
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  impl: str = 'auto'
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  def compute(self, x: jax.Array, kernel: jax.Array, impl: str) -> jax.Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = self.compute(x, kernel, resolve_impl(self.impl))
    return y if bias is None else y + bias


class Conv(_Convolution):
  """flax.linen.Conv with 'SAME' padding and a square stride, fast on CPU (module docstring)."""

  def compute(self, x, kernel, impl):
    if impl == 'matmul':
      return conv2d(x, kernel, self.strides)
    return jax.lax.conv_general_dilated(x, kernel, (self.strides,) * 2, 'SAME', dimension_numbers=_DIMENSIONS)


class ConvTranspose(_Convolution):
  """flax.linen.ConvTranspose with 'SAME' padding and a square stride, fast on CPU."""
  strides: int = 2

  def compute(self, x, kernel, impl):
    if impl == 'matmul':
      return conv_transpose2d(x, kernel, self.strides)
    return jax.lax.conv_transpose(x, kernel, (self.strides,) * 2, 'SAME', dimension_numbers=_DIMENSIONS)
