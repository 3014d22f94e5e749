"""Decoder likelihoods p(x|z): a head module that turns decoder outputs into the
distribution's parameters, and pure functions of those parameters.

Every head says how many decoder output channels it needs per image
(`output_channels`), and whether it is a density on [0, 1] (`discrete =
False`, reported on the 8-bit scale) or a probability of the data's values
(`discrete = True`: bits/dim are then exact). Log-probabilities are summed
over every pixel and channel: one number per example, in nats.

The 8-bit heads read images in [0, 1] as the 256 values k / 255 (the data's
`binarize=none` form) and give each its probability.

The table head (`Table`, model.likelihood=table) models the rows of a table
(`vae_jax.data.VectorSpec`) column by column, each by its type, as a density
in the data's own units.

For entropy coding (`vae_jax.coding.bitsback`) a discrete head also names its
alphabet: `num_symbols` values per pixel and channel, `to_symbols(x)` and
`from_symbols(s)` between images and symbol indices, and
`symbol_probs(params)` -> (n, H, W, C, num_symbols), the probability of every
value of every pixel and channel, which are independent given z. A head that
cannot give them says why in `coding_obstacle` (None when it can).

An autoregressive head (`autoregressive` true: the Bernoulli or the logistic
mixture with `context` > 0) makes each pixel depend on the pixels before it
in raster order as well as on z. Its log_prob still takes one parallel pass
over x (the earlier pixels are known); its mean and samples, and its coding,
go pixel by pixel, through `pixel_symbol_probs(params, canvas, i)`: pixel i's
probabilities (n, C, num_symbols) given `canvas` (`to_canvas` of the symbols,
of which only those before i are read).
"""

import math
from typing import Callable, NamedTuple

from flax import struct
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import errors


def _sum_per_example(values: jax.Array) -> jax.Array:
  return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


def interval_masses(t: jax.Array, upper_tail: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """A distribution's mass between consecutive standardized edges t (..., m+1), (..., m), with one
  `upper_tail` (P(T > s) for s >= 0) an edge. Each edge's CDF is kept as its tail beyond the edge,
  signed, plus a step of 1 past 0, so no mass is lost to cancellation in either tail. (The coders
  spend most of their time here: two CDFs a bin, each on its safe side, cost four times as much.)"""
  tail = upper_tail(jnp.abs(t))
  past_zero = t > 0
  cdf_less_step = jnp.where(past_zero, -tail, tail)  # CDF(t) - [t > 0], for a distribution symmetric about 0
  step = past_zero.astype(t.dtype)
  return (cdf_less_step[..., 1:] - cdf_less_step[..., :-1]) + (step[..., 1:] - step[..., :-1])


class Bernoulli(nn.Module):
  """p(x|z) = prod Bernoulli(x_i; sigmoid(logit_i)). Parameters: the logits (n, H, W, C).

  With `context` = r > 0 the pixels are no longer independent given z: each
  pixel's logit moves by sum_j a_j x_j over its causal neighbours x_j
  (`context_offsets(r)`, read as -1 or 1, and 0 outside the image), with
  coefficients a_j that the decoder gives per pixel and channel, as in the
  logistic mixture's context. z then carries the image's content and the
  neighbours what a dynamically binarized image adds to it locally.
  Parameters: (logits, context coefficients (n, H, W, C, m)).
  """
  context: int = 0
  discrete = True

  @property
  def autoregressive(self) -> bool:
    return self.context > 0

  def output_channels(self, channels: int) -> int:
    return channels * (1 + len(context_offsets(self.context)))

  @nn.compact
  def __call__(self, outputs: jax.Array):
    if not self.context:
      return outputs
    channels = outputs.shape[-1] // (1 + len(context_offsets(self.context)))
    return outputs[..., :channels], outputs[..., channels:].reshape(*outputs.shape[:-1], channels, -1)

  @staticmethod
  def _logits(params, x: jax.Array) -> jax.Array:
    """Every pixel's logit given its earlier neighbours in x (n, H, W, C) on [0, 1]."""
    if not isinstance(params, tuple):
      return params
    logits, context = params
    return logits + _context_shift(context, 2.0 * x - 1.0)

  @staticmethod
  def log_prob(params, x: jax.Array) -> jax.Array:
    logits = Bernoulli._logits(params, x)
    # x*l - softplus(l) = log sigmoid(l) for x=1 and log sigmoid(-l) for x=0, with one softplus.
    return _sum_per_example(x * logits - jax.nn.softplus(logits))

  @staticmethod
  def _pixel_logit(params, canvas: jax.Array, i) -> jax.Array:
    logits, context = params
    h, w = i // canvas.shape[2], i % canvas.shape[2]
    return _at(logits, h, w) + _pixel_shift(context, canvas, i)  # (n, C)

  @staticmethod
  def mean(params) -> jax.Array:
    """The pixel probabilities. With a context, pixel by pixel, each read with its earlier neighbours'
    probabilities in place of their values: a mean-field picture of the image, not E[x] exactly."""
    if not isinstance(params, tuple):
      return jax.nn.sigmoid(params)
    return _raster(params[0].shape, lambda key, canvas, i: jax.nn.sigmoid(Bernoulli._pixel_logit(params, canvas, i)))

  @staticmethod
  def sample(key: jax.Array, params) -> jax.Array:
    if not isinstance(params, tuple):
      return jax.random.bernoulli(key, jax.nn.sigmoid(params)).astype(jnp.float32)
    draw = lambda k, canvas, i: Bernoulli.sample(k, Bernoulli._pixel_logit(params, canvas, i))
    return _raster(params[0].shape, draw, key)

  num_symbols = 2
  coding_obstacle = None
  to_symbols = staticmethod(lambda x: jnp.asarray(x).astype(jnp.int32))
  from_symbols = staticmethod(lambda s: jnp.asarray(s).astype(jnp.float32))
  to_canvas = staticmethod(lambda symbols: 2.0 * symbols.astype(jnp.float32) - 1.0)

  @staticmethod
  def pixel_symbol_probs(params, canvas: jax.Array, i) -> jax.Array:
    """p(x_i | x_<i, z) of pixel i of every image, (n, C, 2); canvas: `to_canvas` of the images, of which
    only the pixels before i are read."""
    return Bernoulli.symbol_probs(Bernoulli._pixel_logit(params, canvas, i))

  @staticmethod
  def symbol_probs(logits) -> jax.Array:
    if isinstance(logits, tuple):
      raise ValueError('a context head\'s pixels depend on each other: use pixel_symbol_probs')
    return jnp.stack([jax.nn.sigmoid(-logits), jax.nn.sigmoid(logits)], axis=-1)


class Gaussian(nn.Module):
  """p(x|z) = prod N(x_i; mean_i, std^2), mean_i = sigmoid(output_i) in [0, 1].

  The scale is fixed, or one learned scalar shared by all pixels (as in
  sigma-VAE): a per-pixel learned variance collapses on constant background.
  Parameters: (mean, log_std), log_std broadcast to the mean's shape.
  """
  std: float = 0.1
  learn_std: bool = False
  discrete = False
  autoregressive = False

  @staticmethod
  def output_channels(channels: int) -> int:
    return channels

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

  num_symbols = None
  coding_obstacle = ('model.likelihood=gaussian is a density on [0, 1], not a probability of the pixel values; '
                     'lossless coding needs bernoulli, logistic_mixture or categorical')


_LEVELS = 255.0  # 8-bit: values k / 255, k = 0..255


def _to_levels(x: jax.Array) -> jax.Array:
  return jnp.clip(jnp.round(x * _LEVELS), 0, _LEVELS).astype(jnp.int32)


def context_offsets(radius: int) -> tuple[tuple[int, int], ...]:
  """(dy, dx) of the pixels before a pixel in raster order within `radius` rows and columns of it: the
  2r + 1 pixels of each of the r rows above, then the r to its left. In this order they are the first
  entries of the (r + 1) x (2r + 1) window whose bottom row's middle is the pixel."""
  return tuple((dy, dx) for dy in range(-radius, 1) for dx in range(-radius, radius + 1) if dy < 0 or dx < 0)


def _context_radius(num_neighbours: int) -> int:
  radius = 0
  while len(context_offsets(radius)) < num_neighbours:
    radius += 1
  return radius


def _neighbours(xs: jax.Array, radius: int) -> jax.Array:
  """The values of each pixel's causal neighbours, (n, H, W, C, m), from images xs (n, H, W, C) on [-1, 1];
  outside the image they are 0."""
  height, width = xs.shape[1:3]
  pad = jnp.pad(xs, ((0, 0), (radius, 0), (radius, radius), (0, 0)))
  return jnp.stack([pad[:, radius + dy:radius + dy + height, radius + dx:radius + dx + width]
                    for dy, dx in context_offsets(radius)], axis=-1)


def _at(a: jax.Array, h, w) -> jax.Array:
  """a[:, h, w] for traced h, w."""
  return jax.lax.dynamic_index_in_dim(jax.lax.dynamic_index_in_dim(a, h, 1, keepdims=False), w, 1, keepdims=False)


def _context_shift(context: jax.Array, xs: jax.Array) -> jax.Array:
  """sum_j a_j x_j for every pixel (n, H, W, C): coefficients (n, H, W, C, m) against the neighbours in xs
  (n, H, W, C) on [-1, 1]."""
  return jnp.sum(context * _neighbours(xs, _context_radius(context.shape[-1])), axis=-1)


def _pixel_shift(context: jax.Array, canvas: jax.Array, i) -> jax.Array:
  """sum_j a_j x_j of pixel i (raster order) of every image, (n, C), from `canvas` (n, H, W, C) on
  [-1, 1]; only its pixels before i are read, so the rest may hold anything."""
  width = canvas.shape[2]
  h, w = i // width, i % width
  radius = _context_radius(context.shape[-1])
  pad = jnp.pad(canvas, ((0, 0), (radius, 0), (radius, radius), (0, 0)))
  window = jax.lax.dynamic_slice(pad, (0, h, w, 0), (pad.shape[0], radius + 1, 2 * radius + 1, pad.shape[3]))
  # The window's first m entries in raster order are the pixel's neighbours before it (context_offsets).
  window = window.reshape(pad.shape[0], -1, pad.shape[3])[:, :context.shape[-1]]  # (n, m, C)
  return jnp.einsum('ncm,nmc->nc', _at(context, h, w), window, precision=jax.lax.Precision.HIGHEST)


def _raster(shape, pixel, key=None) -> jax.Array:
  """Images `shape` (n, H, W, C) on [0, 1] made in raster order: pixel i = pixel(key_i, canvas, i), (n, C)
  on [0, 1], from the canvas (on [-1, 1]) of the pixels made before it."""
  width = shape[2]

  def body(i, canvas):
    value = pixel(None if key is None else jax.random.fold_in(key, i), canvas, i)
    return jax.lax.dynamic_update_slice(canvas, (2.0 * value - 1.0)[:, None, None, :], (0, i // width, i % width, 0))

  return (jax.lax.fori_loop(0, shape[1] * width, body, jnp.zeros(shape, jnp.float32)) + 1.0) / 2.0


class LogisticMixture(nn.Module):
  """Discretized mixture of logistics (Salimans et al. 2017, PixelCNN++) over the 256 values of a pixel.

  Each pixel has K components shared by its channels; with 3 channels the
  means of green and blue depend linearly on the pixel's red (and green)
  value, as in PixelCNN++. Values live on [-1, 1] with bins of width 2/255;
  the end bins take the tails, so the 256 probabilities sum to 1.

  With `context` = r > 0 the pixels are no longer independent given z: every
  component's mean of a pixel moves by sum_j a_j x_j over its causal
  neighbours x_j (`context_offsets(r)`: the r rows above and the r pixels to
  the left, on [-1, 1]), with coefficients a_j that the decoder gives per
  pixel and channel, shared by the components. A VAE's decoder then models
  the image's global content and the neighbours its local noise, which a
  factorized p(x|z) pays for in full on 8-bit data (RESULTS.md). The
  channels of a pixel each read their own channel's neighbours.

  Parameters: (logits (..., K), means (..., K, C), log_scales (..., K, C),
  coefficients (..., K, 3) or None, context coefficients (n, H, W, C, m) or
  None).
  """
  num_components: int = 10
  channels: int = 1
  context: int = 0
  discrete = True

  @property
  def autoregressive(self) -> bool:
    return self.context > 0

  @staticmethod
  def _coupled(channels: int) -> bool:
    return channels == 3

  def output_channels(self, channels: int) -> int:
    mixture = self.num_components * (1 + 2 * channels + (3 if self._coupled(channels) else 0))
    return mixture + channels * len(context_offsets(self.context))

  @nn.compact
  def __call__(self, outputs: jax.Array):
    k, c = self.num_components, self.channels
    num_context = c * len(context_offsets(self.context))
    mixture_outputs = outputs[..., :outputs.shape[-1] - num_context]
    logits = mixture_outputs[..., :k]
    rest = mixture_outputs[..., k:].reshape(*outputs.shape[:-1], k, -1)
    means, log_scales = rest[..., :c], jnp.maximum(rest[..., c:2 * c], -7.0)
    coeffs = jnp.tanh(rest[..., 2 * c:2 * c + 3]) if self._coupled(c) else None
    context = None
    if num_context:
      context = outputs[..., outputs.shape[-1] - num_context:].reshape(*outputs.shape[:-1], c, -1)
    return logits, means, log_scales, coeffs, context

  @staticmethod
  def _with_context(params, xs: jax.Array):
    """The parameters with every mean moved by its pixel's neighbours in xs (n, H, W, C) on [-1, 1], and no
    context left: what p(x_i | x_<i, z) is, for every pixel at once."""
    logits, means, log_scales, coeffs, context = params
    if context is None:
      return params
    return logits, means + _context_shift(context, xs)[..., None, :], log_scales, coeffs, None

  @staticmethod
  def to_canvas(symbols: jax.Array) -> jax.Array:
    """Images of symbols (n, H, W, C) on the [-1, 1] scale the context reads."""
    return symbols.astype(jnp.float32) / _LEVELS * 2.0 - 1.0

  @staticmethod
  def _pixel(params, canvas: jax.Array, i):
    """p(x_i | x_<i, z) of pixel i (raster order) of every image, as parameters of shape (n, K, ...), from
    `canvas` (n, H, W, C) on [-1, 1]; only its pixels before i are read."""
    logits, means, log_scales, coeffs, context = params
    h, w = i // canvas.shape[2], i % canvas.shape[2]
    shift = _pixel_shift(context, canvas, i)
    return (_at(logits, h, w), _at(means, h, w) + shift[:, None, :], _at(log_scales, h, w),
            None if coeffs is None else _at(coeffs, h, w), None)

  @staticmethod
  def _pixel_by_pixel(params, step, key=None) -> jax.Array:
    """Images (n, H, W, C) on [0, 1] made in raster order, pixel i = step(key_i, p(x_i | x_<i, z)) for x_<i
    those already made."""
    shape = params[1].shape[:3] + params[1].shape[-1:]  # (n, H, W, C)
    return _raster(shape, lambda k, canvas, i: step(k, LogisticMixture._pixel(params, canvas, i)), key)

  @staticmethod
  def _coupled_means(means, coeffs, x):
    """Means of each channel given the pixel's earlier channels x (..., 1, C) on [-1, 1]."""
    if coeffs is None:
      return means
    m1 = means[..., 1] + coeffs[..., 0] * x[..., 0]
    m2 = means[..., 2] + coeffs[..., 1] * x[..., 0] + coeffs[..., 2] * x[..., 1]
    return jnp.stack([means[..., 0], m1, m2], axis=-1)

  @staticmethod
  def log_prob_per_pixel(params, x: jax.Array) -> jax.Array:
    """log p of each pixel (all its channels), (..., H, W).

    The bin of x on [-1, 1] is [x - 1/255, x + 1/255]; its probability under a
    logistic is F(plus) - F(minus) with F = sigmoid, the end bins taking the
    tails (F(minus) = 0 at x = -1, F(plus) = 1 at x = 1). Above the mean the
    difference is taken as F(-minus) - F(-plus) (1 - F(t) = F(-t)), so the two
    terms are never both near 1 and never cancel. Far in the tail (both terms
    below e^-15) F(t) = e^t to float precision and log p = hi + log(1 - e^(lo - hi)),
    exact where PixelCNN++'s density-at-the-centre fallback is off by nats for
    sharp components.
    """
    levels = _to_levels(x).astype(jnp.float32) / _LEVELS * 2.0 - 1.0
    logits, means, log_scales, coeffs, _ = LogisticMixture._with_context(params, levels)
    xs = levels[..., None, :]  # (..., 1, C)
    centered = xs - LogisticMixture._coupled_means(means, coeffs, xs)
    inv_s = jnp.exp(-log_scales)
    plus = jnp.where(xs > 0.999, jnp.inf, inv_s * (centered + 1.0 / _LEVELS))
    minus = jnp.where(xs < -0.999, -jnp.inf, inv_s * (centered - 1.0 / _LEVELS))
    upper = centered > 0
    hi, lo = jnp.where(upper, -minus, plus), jnp.where(upper, -plus, minus)  # P = F(hi) - F(lo), hi > lo
    direct = jnp.log(jnp.maximum(jax.nn.sigmoid(hi) - jax.nn.sigmoid(lo), 1e-30))
    tail = hi + jnp.log(-jnp.expm1(jnp.minimum(lo - hi, -1e-30)))
    log_probs = jnp.where(hi > -15.0, direct, tail)
    return jax.nn.logsumexp(jnp.sum(log_probs, axis=-1) + jax.nn.log_softmax(logits), axis=-1)

  @staticmethod
  def log_prob(params, x: jax.Array) -> jax.Array:
    return _sum_per_example(LogisticMixture.log_prob_per_pixel(params, x))

  @staticmethod
  def mean(params) -> jax.Array:
    """Sum_k pi_k E[x | k], channels coupled through the earlier channels' component means. With a context,
    pixel by pixel from its neighbours' means: the shift is linear in them, so this is the mean of the
    whole image wherever no component mean is clipped to [-1, 1]."""
    if params[4] is not None:
      return LogisticMixture._pixel_by_pixel(params, lambda key, pixel: LogisticMixture.mean(pixel))
    logits, means, _, coeffs, _ = params
    if coeffs is not None:
      m0 = means[..., 0]
      m1 = means[..., 1] + coeffs[..., 0] * m0
      means = jnp.stack([m0, m1, means[..., 2] + coeffs[..., 1] * m0 + coeffs[..., 2] * m1], axis=-1)
    mean = jnp.sum(jax.nn.softmax(logits)[..., None] * jnp.clip(means, -1.0, 1.0), axis=-2)
    return (mean + 1.0) / 2.0

  @staticmethod
  def sample(key: jax.Array, params) -> jax.Array:
    if params[4] is not None:
      return LogisticMixture._pixel_by_pixel(params, LogisticMixture.sample, key)
    logits, means, log_scales, coeffs, _ = params
    pick_key, noise_key = jax.random.split(key)
    k = jax.random.categorical(pick_key, logits)[..., None, None]
    take = lambda a: jnp.take_along_axis(a, k, axis=-2)[..., 0, :]
    mean, log_scale = take(means), take(log_scales)
    u = jax.random.uniform(noise_key, mean.shape, minval=1e-5, maxval=1.0 - 1e-5)
    noise = jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))
    if coeffs is None:
      x = jnp.clip(mean + noise, -1.0, 1.0)
    else:
      c = take(coeffs)
      x0 = jnp.clip(mean[..., 0] + noise[..., 0], -1.0, 1.0)
      x1 = jnp.clip(mean[..., 1] + c[..., 0] * x0 + noise[..., 1], -1.0, 1.0)
      x2 = jnp.clip(mean[..., 2] + c[..., 1] * x0 + c[..., 2] * x1 + noise[..., 2], -1.0, 1.0)
      x = jnp.stack([x0, x1, x2], axis=-1)
    return jnp.round((x + 1.0) / 2.0 * _LEVELS) / _LEVELS

  num_symbols = 256
  to_symbols = staticmethod(_to_levels)
  from_symbols = staticmethod(lambda s: jnp.asarray(s).astype(jnp.float32) / _LEVELS)

  @property
  def coding_obstacle(self) -> str | None:
    if self._coupled(self.channels):
      return ('a 3-channel logistic mixture couples the channels of a pixel; coding them one after another '
              'is not implemented')
    return None

  @staticmethod
  def pixel_symbol_probs(params, canvas: jax.Array, i) -> jax.Array:
    """p(x_i | x_<i, z) on the 256 values of pixel i of every image, (n, C, 256); canvas: `to_canvas` of
    the images, of which only the pixels before i are read."""
    return LogisticMixture.symbol_probs(LogisticMixture._pixel(params, canvas, i))

  @staticmethod
  def symbol_probs(params) -> jax.Array:
    """The mixture's mass on each of the 256 bins, from each component's CDF at the 255 inner bin edges.

    Each difference is taken on the side of the component's mean where the
    two CDF values are not both near 1, as in `log_prob_per_pixel`.
    """
    logits, means, log_scales, _, context = params
    if context is not None:
      raise ValueError('a context head\'s pixels depend on each other: use pixel_symbol_probs')
    edges = (jnp.arange(1, 256, dtype=jnp.float32) / _LEVELS * 2.0 - 1.0) - 1.0 / _LEVELS  # (255,)
    t = (edges - means[..., None]) * jnp.exp(-log_scales)[..., None]  # (..., K, C, 255)
    inf = jnp.full(t.shape[:-1] + (1,), jnp.inf)
    mass = interval_masses(jnp.concatenate([-inf, t, inf], axis=-1), lambda s: jax.nn.sigmoid(-s))
    # An einsum rather than a weighted sum over K: XLA:CPU runs the reduce several times slower.
    return jnp.einsum('...k,...kcb->...cb', jax.nn.softmax(logits), mass, precision=jax.lax.Precision.HIGHEST)


class Categorical(nn.Module):
  """p(x|z): an independent 256-way categorical per pixel and channel. Parameters: logits (..., C, 256)."""
  channels: int = 1
  discrete = True
  autoregressive = False

  @staticmethod
  def output_channels(channels: int) -> int:
    return 256 * channels

  @nn.compact
  def __call__(self, outputs: jax.Array) -> jax.Array:
    return outputs.reshape(*outputs.shape[:-1], self.channels, 256)

  @staticmethod
  def log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits)
    return _sum_per_example(jnp.take_along_axis(log_p, _to_levels(x)[..., None], axis=-1)[..., 0])

  @staticmethod
  def mean(logits: jax.Array) -> jax.Array:
    return jnp.sum(jax.nn.softmax(logits) * jnp.arange(256) / _LEVELS, axis=-1)

  @staticmethod
  def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    return jax.random.categorical(key, logits).astype(jnp.float32) / _LEVELS

  num_symbols = 256
  coding_obstacle = None
  to_symbols = staticmethod(_to_levels)
  from_symbols = staticmethod(lambda s: jnp.asarray(s).astype(jnp.float32) / _LEVELS)
  symbol_probs = staticmethod(jax.nn.softmax)


class TableLayout(NamedTuple):
  """Where a table's columns sit in a row (static: a jit traces one program per table): the entries of the
  continuous, binary and categorical columns; each continuous column's log std (the standardization's
  log-Jacobian) and atoms (standardized, as stored); each categorical column's number of categories."""
  continuous: tuple[int, ...]
  binary: tuple[int, ...]
  categorical: tuple[int, ...]
  log_stds: tuple[float, ...]
  atoms: tuple[tuple[float, ...], ...]
  categories: tuple[int, ...]
  width: int

  def atom_array(self) -> np.ndarray:
    """float32 (Dc, most atoms): each continuous column's atoms, NaN beyond its own."""
    most = max((len(a) for a in self.atoms), default=0)
    out = np.full((len(self.atoms), most), np.nan, np.float32)
    for j, a in enumerate(self.atoms):
      out[j, :len(a)] = a
    return out


@struct.dataclass
class TableParams:
  """p(x|z) of n rows of a table. Continuous columns (n, Dc, K): mixture logits, means and log scales of K
  Gaussians on the standardized value; (n, Dc, 1 + most atoms): logits of "not an atom" and of each atom;
  binary (n, Db): logits; categorical (n, Dk, most categories): logits. Logits a column does not have are
  MASKED."""
  weights: jax.Array
  means: jax.Array
  log_scales: jax.Array
  atom_logits: jax.Array
  binary: jax.Array
  categorical: jax.Array
  layout: TableLayout = struct.field(pytree_node=False)


MASKED = -1e9  # the logit of a category a column does not have: probability exactly 0 after the softmax
MIN_LOG_SCALE = -5.0  # of a continuous column's Gaussians, in standardized units: a density stays bounded
ATOM_TOLERANCE = 1e-5  # a stored value this close to an atom (relative, standardized) is the atom


def _groups(outputs: jax.Array, start: int, sizes) -> jax.Array:
  """Groups of consecutive outputs from `start`, one of each size, side by side: (n, groups, most), the
  entries past a group's size MASKED."""
  sizes = np.asarray(sizes, np.int64).reshape(-1)
  most = max(int(sizes.max(initial=0)), 1)
  offsets = start + np.cumsum(sizes) - sizes
  valid = np.arange(most)[None, :] < sizes[:, None]
  index = np.where(valid, offsets[:, None] + np.arange(most)[None, :], 0)
  return jnp.where(valid, outputs[:, index], MASKED)


class Table(nn.Module):
  """p(x|z) of the rows of a table (`vae_jax.data.VectorSpec`), column by column given z.

  continuous   a mixture of `components` Gaussians on the standardized value, with means, scales and weights
               per row (1: one Gaussian with its own scale per row); a column with atoms (values that many
               rows take, `Column.atoms`) first chooses between them and the mixture, so a zero-inflated
               column gets its zeros exactly, not a spike around them;
  binary       Bernoulli;
  categorical  a softmax over the column's categories (the row holds its code).
  log_prob is in the data's own units: a density on a continuous column's values (the standardization's
  log-Jacobian, log std, taken off), a probability at its atoms and for the other columns. The mean is the
  expected value of continuous columns, the probability of binary ones and the most probable code of
  categorical ones; samples are rows in the stored form (`VectorSpec.to_frame` reads them).
  """
  columns: tuple
  components: int = 1
  discrete = False
  autoregressive = False

  @property
  def layout(self) -> TableLayout:
    where = lambda kind: tuple(j for j, c in enumerate(self.columns) if c.type == kind)
    continuous, categorical = where('continuous'), where('categorical')
    column = [self.columns[j] for j in continuous]
    return TableLayout(continuous, where('binary'), categorical,
                       tuple(math.log(c.std) if c.std else 0.0 for c in column),
                       tuple(tuple(float(v) for v in c.encode(c.atoms).astype(np.float32)) if c.atoms else ()
                             for c in column),
                       tuple(self.columns[j].num_categories for j in categorical), len(self.columns))

  def _per_continuous(self) -> int:
    return 2 if self.components == 1 else 3 * self.components  # mean and log scale (and weight) a component

  @staticmethod
  def _atom_sizes(layout: TableLayout) -> tuple[int, ...]:
    return tuple(len(a) + 1 if a else 0 for a in layout.atoms)  # "not an atom" and each atom

  def output_channels(self, channels: int) -> int:
    """Decoder outputs a row: what its continuous, binary and categorical columns read (`channels`, the
    row's entries, is the spec's and the same)."""
    del channels
    layout = self.layout
    return (len(layout.continuous) * self._per_continuous() + sum(self._atom_sizes(layout)) + len(layout.binary)
            + sum(layout.categories))

  @nn.compact
  def __call__(self, outputs: jax.Array) -> TableParams:
    layout, k = self.layout, self.components
    n, num_continuous = outputs.shape[0], len(layout.continuous)
    end = num_continuous * self._per_continuous()
    continuous = outputs[:, :end].reshape(n, num_continuous, -1)
    weights = jnp.zeros((n, num_continuous, 1)) if k == 1 else continuous[..., 2 * k:]
    log_scales = jnp.maximum(continuous[..., k:2 * k], MIN_LOG_SCALE)
    atom_sizes = self._atom_sizes(layout)
    atom_logits = _groups(outputs, end, atom_sizes)
    if not all(atom_sizes):  # a column without atoms: "not an atom" for sure
      first = (np.arange(atom_logits.shape[-1]) == 0)[None, :] & (np.asarray(atom_sizes) == 0)[:, None]
      atom_logits = jnp.where(first, 0.0, atom_logits)
    end += sum(atom_sizes)
    binary = outputs[:, end:end + len(layout.binary)]
    categorical = _groups(outputs, end + len(layout.binary), layout.categories)
    return TableParams(weights, continuous[..., :k], log_scales, atom_logits, binary, categorical, layout)

  @staticmethod
  def log_prob_per_column(params: TableParams, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """log p of each entry of rows x (n, D) in the stored form, in the data's own units: (continuous (n, Dc):
    densities of the values, probabilities at atoms; binary (n, Db); categorical (n, Dk))."""
    layout = params.layout
    values = x[:, np.asarray(layout.continuous, np.int64)]
    t = (values[..., None] - params.means) * jnp.exp(-params.log_scales)
    normal = -0.5 * t**2 - params.log_scales - 0.5 * math.log(2 * math.pi)
    density = jax.nn.logsumexp(jax.nn.log_softmax(params.weights) + normal, axis=-1)
    atom_log_probs = jax.nn.log_softmax(params.atom_logits)
    atoms = layout.atom_array()
    hit = jnp.abs(values[..., None] - atoms) <= ATOM_TOLERANCE * np.maximum(1.0, np.abs(atoms))  # NaN: never
    at_atom = jnp.sum(jnp.where(hit, atom_log_probs[..., 1:], 0.0), axis=-1)
    off_atoms = atom_log_probs[..., 0] + density - np.asarray(layout.log_stds, np.float32)
    continuous = jnp.where(jnp.any(hit, axis=-1), at_atom, off_atoms)
    bits = x[:, np.asarray(layout.binary, np.int64)]
    binary = bits * params.binary - jax.nn.softplus(params.binary)
    codes = jnp.round(x[:, np.asarray(layout.categorical, np.int64)]).astype(jnp.int32)
    categorical = jnp.take_along_axis(jax.nn.log_softmax(params.categorical), codes[..., None], axis=-1)[..., 0]
    return continuous, binary, categorical

  @staticmethod
  def log_prob(params: TableParams, x: jax.Array) -> jax.Array:
    """log p(x|z) of each row, in nats, in the data's own units."""
    return sum(jnp.sum(p, axis=-1) for p in Table.log_prob_per_column(params, x))

  @staticmethod
  def _rows(params: TableParams, continuous, binary, categorical) -> jax.Array:
    layout = params.layout
    rows = jnp.zeros((params.binary.shape[0], layout.width), jnp.float32)
    for entries, values in ((layout.continuous, continuous), (layout.binary, binary),
                            (layout.categorical, categorical)):
      rows = rows.at[:, np.asarray(entries, np.int64)].set(values.astype(jnp.float32))
    return rows

  @staticmethod
  def _atom_values(params: TableParams) -> np.ndarray:
    """(Dc, 1 + most atoms): 0 for "not an atom" (its logit decides), then each atom (0 past a column's own)."""
    atoms = np.nan_to_num(params.layout.atom_array())
    return np.concatenate([np.zeros((len(atoms), 1), np.float32), atoms], axis=1)

  @staticmethod
  def mean(params: TableParams) -> jax.Array:
    mixture = jnp.sum(jax.nn.softmax(params.weights) * params.means, axis=-1)
    share = jax.nn.softmax(params.atom_logits)
    continuous = share[..., 0] * mixture + jnp.sum(share * Table._atom_values(params), axis=-1)
    return Table._rows(params, continuous, jax.nn.sigmoid(params.binary), jnp.argmax(params.categorical, axis=-1))

  @staticmethod
  def sample(key: jax.Array, params: TableParams) -> jax.Array:
    pick_key, noise_key, atom_key, binary_key, categorical_key = jax.random.split(key, 5)
    pick = jax.random.categorical(pick_key, params.weights)[..., None]
    take = lambda a: jnp.take_along_axis(a, pick, axis=-1)[..., 0]
    noise = jax.random.normal(noise_key, pick.shape[:-1])
    mixture = take(params.means) + jnp.exp(take(params.log_scales)) * noise
    slot = jax.random.categorical(atom_key, params.atom_logits)
    atom = jnp.take_along_axis(jnp.broadcast_to(Table._atom_values(params), params.atom_logits.shape),
                               slot[..., None], axis=-1)[..., 0]
    continuous = jnp.where(slot == 0, mixture, atom)
    binary = jax.random.bernoulli(binary_key, jax.nn.sigmoid(params.binary))
    return Table._rows(params, continuous, binary, jax.random.categorical(categorical_key, params.categorical))

  num_symbols = None
  coding_obstacle = ('model.likelihood=table gives continuous columns a density, not a probability of their '
                     'values; lossless coding needs a discrete likelihood')


def _table(config, channels: int, spec) -> Table:
  """The table head for rows of `spec` (a VectorSpec: its columns' types and standardization)."""
  del channels
  if spec is None or spec.kind != 'vector':
    what = 'no example spec' if spec is None else spec.describe()
    raise errors.ConfigError(f'model.likelihood=table models the rows of a table; data.name={config.data.name!r} '
                             f'holds {what}: use a table (data.name=table) or another likelihood')
  return Table(tuple(spec.columns), config.model.table_components)


# Each head from (config, channels of an image, the example spec or None).
LIKELIHOODS: dict[str, Callable[..., nn.Module]] = {
    'bernoulli': lambda config, channels, spec: Bernoulli(config.model.pixel_context),
    'gaussian': lambda config, channels, spec: Gaussian(std=config.model.gaussian_std,
                                                        learn_std=config.model.gaussian_variance == 'learned'),
    'logistic_mixture': lambda config, channels, spec: LogisticMixture(config.model.logistic_components, channels,
                                                                       config.model.pixel_context),
    'categorical': lambda config, channels, spec: Categorical(channels),
    'table': _table,
}


# The heads that take `model.pixel_context`.
CONTEXT_LIKELIHOODS = ('bernoulli', 'logistic_mixture')


# The heads whose values are independent given z, entry by entry, so they model any example of floats in
# [0, 1] (a vector as well as an image) when they read no pixel context.
ELEMENTWISE_LIKELIHOODS = ('bernoulli', 'gaussian')

# The heads of vectors alone: they read the spec's columns.
VECTOR_LIKELIHOODS = ('table',)


def make(config, channels: int = 1, spec=None) -> nn.Module:
  """The likelihood head named by `config.model.likelihood`, for images of `channels` channels (a head that
  reads the example `spec`, the table's, needs it)."""
  return LIKELIHOODS[config.model.likelihood](config, channels, spec)


def for_spec(config, spec) -> tuple[nn.Module, tuple[int, ...]]:
  """The head for examples of `spec` (a `vae_jax.data.ExampleSpec`), and the shape of one example of the decoder
  output it reads: the example's shape with its last axis (an image's channels) widened to what the head needs.

  Examples other than images take the elementwise heads, and vectors the vector heads too: the others read
  pixel neighbourhoods or 8-bit channels."""
  channels = int(spec.shape[-1])
  m = config.model
  allowed = ELEMENTWISE_LIKELIHOODS + (VECTOR_LIKELIHOODS if spec.kind == 'vector' else ())
  if spec.kind != 'image' and (m.likelihood not in allowed or m.pixel_context):
    raise errors.ConfigError(f'model.likelihood={m.likelihood!r}'
                             f'{f" with model.pixel_context={m.pixel_context}" if m.pixel_context else ""} models '
                             f'images; data.name={config.data.name!r} holds {spec.describe()}: use '
                             f'{" or ".join(allowed)} with model.pixel_context=0')
  head = make(config, channels, spec)
  return head, (*(int(d) for d in spec.shape[:-1]), head.output_channels(channels))


def bits_per_dim(nll_nats: float, num_dims: int, likelihood: str, levels: int | None = 256) -> float:
  """Converts -log p(x) in nats per example to bits per dimension.

  Discrete likelihoods (Bernoulli, the 8-bit heads): a probability, so
  nats / (D ln 2). Gaussian: a density. On data of `levels` values a
  dimension (an image's, from its spec) it is reported on that discrete scale
  by adding D ln(levels): for 8-bit images D ln 256, the usual convention for
  continuous models of them. On continuous data (`levels` None: vectors) it
  is the density's own, which can be below zero.
  """
  if likelihood == 'gaussian' and levels:
    nll_nats = nll_nats + num_dims * math.log(float(levels))
  return nll_nats / (num_dims * math.log(2.0))
