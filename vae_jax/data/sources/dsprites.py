"""`dsprites`: dSprites (Matthey et al. 2017) rendered here, procedurally, with no download.

Every combination of five factors, once each, in the original file's order (the last factor varies fastest):

  shape        3   square, ellipse, heart
  scale        6   linspace(0.5, 1, 6)
  orientation  40  linspace(0, 2 pi, 40) (0 and 2 pi both, as in the original)
  position x   32  linspace(0, 1, 32)
  position y   32  linspace(0, 1, 32)

64 x 64 x 1 binary images, 737,280 of them. The original's first factor, color, has one value (white): it is
left out, so the rows are in the same order and `Factors` has the five factors disentanglement_lib scores.

The geometry is this module's own (the original renderer is not published), in units of the image side: a
pixel is on when its centre lies in the shape; the shape's half-extent is `HALF_EXTENT` * scale, its centre
`MARGIN` + (1 - 2 `MARGIN`) * position (x to the right, y down, so it never leaves the image), and it is turned
by the orientation clockwise on screen. Only elementwise float64 +, -, *, / are used (no BLAS, no fused
multiply-add, no pow) and the rotations' cos and sin, the one libm call, are rounded to 12 decimals, so the same
factors give the same image on any machine (the tests pin the bytes of the tiny sets).

data.variant (disentanglement_lib's `ColorDSprites` and `NoisyDSprites`, 64 x 64 x 3, 8-bit):
  binary  the images above (levels=2)
  color   the sprite in a colour with each channel uniform in [0.5, 1] (codes 128..255), on black
  noisy   the white sprite on a background of uniform noise, each pixel and channel 0..255
disentanglement_lib draws the colour and noise anew at each draw; here they are a hash of the image's row, so
each image is fixed and the dataset is one dataset.

Tests and quick runs use tiny sprites: data.dsprites_size (the image side) and data.dsprites_factor_sizes (five
counts, each at most the published one: the same ranges, fewer values).

Nothing is held in memory: the images are rendered when rows are read (`Rendered`), so the 3 GB of the binary
set (9 GB in colour) are never allocated unless a feed asks for all of it. Measured on one core (2026-12-02):
a batch of 64 random rows in 3 ms (binary) or 5 ms (color, noisy); all 737,280 images in 37 s (binary), 105 s
(color) or 94 s (noisy), read 8,192 rows at a time in under 0.6 GB.
"""

import dataclasses
import math

import numpy as np

from vae_jax import errors
from vae_jax.data import factors as factors_lib
from vae_jax.data import rows as rows_lib
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib

NAMES = ('shape', 'scale', 'orientation', 'position_x', 'position_y')
SIZES = (3, 6, 40, 32, 32)
SHAPES = ('square', 'ellipse', 'heart')
SIZE = 64
VARIANTS = ('binary', 'color', 'noisy')
HALF_EXTENT = 0.15      # of the image side, at scale 1: a square of 0.3 (19.2 pixels of 64)
MARGIN = 0.25           # centres run over [MARGIN, 1 - MARGIN]: a turned square (0.212 from its centre) stays in
ELLIPSE_AXES = (1.0, 0.5)  # semi-axes along and across the orientation, in half-extents
_HEART_SCALE = 1.15     # the heart curve (x^2 + y^2 - 1)^3 = x^2 y^3 spans about 2.3 x 2.2: brought into [-1, 1]
_HEART_SHIFT = 0.118    # and centred vertically
_VERSION = 1            # of the rendering: part of the fingerprint, so a run is never resumed on other images
_CHUNK = 1024           # images rendered at a time (float64 grids of _CHUNK x H x W)
_COLOR_STREAM, _NOISE_STREAM = 0x636F6C6F72, 0x6E6F697365


@dataclasses.dataclass(frozen=True)
class Sprites:
  """What is rendered: the image side, the factor counts and the variant."""
  size: int = SIZE
  sizes: tuple[int, ...] = SIZES
  variant: str = 'binary'

  @property
  def channels(self) -> int:
    return 1 if self.variant == 'binary' else 3

  @property
  def spec(self) -> spec_lib.ImageSpec:
    return spec_lib.ImageSpec(self.size, self.size, self.channels, levels=2 if self.variant == 'binary' else 256)

  def values(self) -> tuple[np.ndarray, ...]:
    """The value of each index of each factor: shape (an index into SHAPES), scale, orientation, x, y."""
    shape, scale, orientation, x, y = self.sizes
    return (np.arange(shape), np.linspace(0.5, 1, scale), np.linspace(0, 2 * np.pi, orientation),
            np.linspace(0, 1, x), np.linspace(0, 1, y))

  def describe(self) -> str:
    return f'dsprites v{_VERSION} {self.variant} {self.size}x{self.size} factors {self.sizes}'

  def factors(self) -> factors_lib.Factors:
    return factors_lib.Factors(NAMES, tuple(self.sizes), self.render)

  def render(self, indices) -> np.ndarray:
    """uint8 (n, size, size, channels): the stored images of factor indices (n, 5), in chunks."""
    factors = self.factors()
    indices = factors.check(indices, 'dsprites render')
    out = np.empty((len(indices), self.size, self.size, self.channels), np.uint8)
    for start in range(0, len(indices), _CHUNK):
      part = indices[start:start + _CHUNK]
      mask = self._masks(part)
      out[start:start + len(part)] = self._painted(mask, factors.flat(part))
    return out

  def _masks(self, indices: np.ndarray, window: bool = True) -> np.ndarray:
    """bool (n, size, size): which pixel centres lie in each sprite. Only a window around each centre is
    tested (`window`), that holds every pixel the sprite can reach: a fifth of the image, five times faster."""
    n, size = len(indices), self.size
    shape_of, scale, theta, cx, cy = (v[indices[:, k]] for k, v in enumerate(self.values()))
    cx, cy = ((MARGIN + (1 - 2 * MARGIN) * c) * size for c in (cx, cy))  # the centre, in pixels
    reach = math.sqrt(2) * HALF_EXTENT * size  # the farthest any shape reaches from its centre, at scale 1
    w = min(size, math.ceil(2 * reach) + 2) if window else size
    windowed = w < size
    if windowed:
      left = np.floor(cx - reach - 0.5).astype(np.int64)[:, None] + np.arange(w)  # (n, w) pixel columns
      top = np.floor(cy - reach - 0.5).astype(np.int64)[:, None] + np.arange(w)   # (n, w) pixel rows
    else:
      left = top = np.broadcast_to(np.arange(size), (n, size))
    half = (HALF_EXTENT * scale * size)[:, None, None]
    dx = (left + 0.5 - cx[:, None])[:, None, :]
    dy = (top + 0.5 - cy[:, None])[:, :, None]
    cos, sin = (np.round(f(theta), 12)[:, None, None] for f in (np.cos, np.sin))
    u = (cos * dx + sin * dy) / half   # the pixel in the sprite's own frame, turned back by the orientation
    v = (cos * dy - sin * dx) / half
    inside = np.zeros((n, w, w), bool)
    for k, test in enumerate((_square, _ellipse, _heart)):
      rows = np.flatnonzero(shape_of == k)
      if len(rows):
        inside[rows] = test(u[rows], v[rows])
    if not windowed:
      return inside
    pad = w  # the window may hang over the image's edge: paint on a padded canvas, then crop
    canvas = np.zeros((n, size + 2 * pad, size + 2 * pad), bool)
    canvas[np.arange(n)[:, None, None], top[:, :, None] + pad, left[:, None, :] + pad] = inside
    return canvas[:, pad:pad + size, pad:pad + size]

  def _painted(self, mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The stored uint8 images of the variant, from the masks and the images' rows (what seeds colour and noise)."""
    if self.variant == 'binary':
      return mask[..., None].astype(np.uint8)
    if self.variant == 'color':
      color = (128 + (_hash(rows[:, None] * 3 + np.arange(3), _COLOR_STREAM) >> np.uint64(57))).astype(np.uint8)
      return mask[..., None].astype(np.uint8) * color[:, None, None, :]  # channels 128..255 on the sprite
    words = -(-self.size * self.size * 3 // 8)  # 8 noise bytes a hash, little-endian whatever the machine
    noise = _hash(rows[:, None] * words + np.arange(words), _NOISE_STREAM).astype('<u8').view(np.uint8)
    noise = noise[:, :self.size * self.size * 3].reshape(mask.shape + (3,))  # 0..255
    return np.where(mask[..., None], np.uint8(255), noise)


def _square(u, v):
  return np.maximum(np.abs(u), np.abs(v)) <= 1


def _ellipse(u, v):
  a, b = u / ELLIPSE_AXES[0], v / ELLIPSE_AXES[1]
  return a * a + b * b <= 1


def _heart(u, v):
  x, y = _HEART_SCALE * u, _HEART_SHIFT - _HEART_SCALE * v  # y up, lobes at the top
  x2, y2 = x * x, y * y
  r = x2 + y2 - 1
  return r * r * r - x2 * y2 * y <= 0  # products, not `**` (a libm pow may round differently elsewhere)


def _hash(keys, stream: int) -> np.ndarray:
  """uint64 splitmix64 of int keys in a stream: the same bits on any machine, no generator state."""
  x = np.asarray(keys).astype(np.uint64) ^ np.uint64(stream)
  with np.errstate(over='ignore'):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


class Rendered:
  """Every image of `sprites` in row order, rendered when read: the array-like `vae_jax.data.rows` takes
  (len, shape, dtype, x[rows] -> ndarray, np.asarray(x)), with a `fingerprint` that needs no rendering."""

  def __init__(self, sprites: Sprites):
    self.sprites = sprites
    self._factors = sprites.factors()

  def __len__(self) -> int:
    return self._factors.num_combinations

  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self), *self.sprites.spec.shape)

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(np.uint8)

  @property
  def nbytes(self) -> int:
    return math.prod(self.shape)

  def fingerprint(self) -> str:
    return self.sprites.describe()

  def __getitem__(self, rows):
    if isinstance(rows, (int, np.integer)):
      return self[np.asarray([rows])][0]
    if isinstance(rows, slice):
      rows = np.arange(len(self))[rows]
    rows = np.asarray(rows)
    if rows.dtype == bool:
      rows = np.flatnonzero(rows)
    rows = np.where(rows < 0, rows + len(self), rows).astype(np.int64)
    if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= len(self))):
      raise IndexError(f'rows of shape {rows.shape} outside the {len(self)} images of {self.sprites.describe()}')
    return self.sprites.render(self._factors.unflat(rows))

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self[np.arange(len(self))]
    return out if dtype is None else out.astype(dtype)


def sprites_of(config) -> Sprites:
  """The Sprites data.variant, data.dsprites_size and data.dsprites_factor_sizes ask for (checked)."""
  check_config(config)
  sizes = tuple(int(s) for s in config.data.dsprites_factor_sizes) or SIZES
  return Sprites(int(config.data.dsprites_size), sizes, config.data.variant)


def check_config(config) -> None:
  """ConfigError for a data.variant, data.dsprites_size or data.dsprites_factor_sizes dsprites cannot render."""
  d = config.data
  if d.variant not in VARIANTS:
    raise errors.ConfigError(f'data.variant={d.variant!r} is not a dsprites variant; use one of {", ".join(VARIANTS)}')
  if not (isinstance(d.dsprites_size, int) and d.dsprites_size >= 4):
    raise errors.ConfigError(f'data.dsprites_size={d.dsprites_size} must be an integer >= 4 (the image side; '
                             f'{SIZE} as published)')
  sizes = tuple(d.dsprites_factor_sizes)
  if sizes and (len(sizes) != len(SIZES) or not all(isinstance(s, int) and 1 <= s <= m for s, m in zip(sizes, SIZES))):
    raise errors.ConfigError(f'data.dsprites_factor_sizes={sizes} must be empty (the published {SIZES}) or five '
                             f'counts of {", ".join(NAMES)}, each from 1 to its published count')


def load(config) -> sources.Loaded:
  sprites = sprites_of(config)
  images = Rendered(sprites)
  factors = sprites.factors()
  return sources.Loaded((images, None), None, f'procedural {sprites.describe()}', sprites.spec,
                        fingerprint=rows_lib.fingerprint_text(sprites.describe()), factors=factors,
                        train_factors=factors.unflat(np.arange(len(images))))


DSPRITES = sources.Source('dsprites', load, options=('variant', 'dsprites_size', 'dsprites_factor_sizes'),
                           check_config=check_config, has_factors=True)
