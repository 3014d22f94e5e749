"""Images and labels as users give them, checked and brought to the stored form, or refused in one line.

Images are (N, H, W) or (N, H, W, C) arrays of uint8 (0-255, kept as they
are) or of floats in [0, 1]: floats that are all k / 255 become uint8 codes,
other floats stay float32 (an 8-bit likelihood then reads them rounded to
k / 255). Anything else, NaN or inf, values outside [0, 1], other dtypes, or
labels that do not match the images, is a `DataError` naming where.
"""

import numpy as np

from vae_jax import errors

_CHUNK_ROWS = 4096


def _chunks(x):
  for start in range(0, len(x), _CHUNK_ROWS):
    yield start, np.asarray(x[start:start + _CHUNK_ROWS])


def images(x, where: str):
  """`x` as stored images (N, H, W, C): uint8 codes where it can be, else float32. Memory-mapped uint8 data
  stay mapped; floats are read in chunks."""
  shape = tuple(x.shape)
  if len(shape) not in (3, 4) or not all(shape[1:]):
    raise errors.DataError(f'{where} has shape {shape}; images are (N, H, W) or (N, H, W, C) arrays')
  if len(shape) == 4 and shape[3] not in (1, 3, 4):
    raise errors.DataError(f'{where} has {shape[3]} channels (shape {shape}); images have 1, 3 or 4 channels '
                           '(channels last)')
  if len(shape) == 3:
    x = x[..., None]
  dtype = np.dtype(x.dtype)
  if dtype == np.uint8:
    return x
  if dtype.kind != 'f':
    raise errors.DataError(f'{where} holds {dtype} images; give uint8 (0-255) or floats in [0, 1]')
  codes, exact = np.empty(x.shape, np.uint8), True
  for start, chunk in _chunks(x):
    bad = ~np.isfinite(chunk)
    if bad.any():
      at = np.argwhere(bad)[0]
      raise errors.DataError(f'{where} has a non-finite value ({chunk[tuple(at)]}) at image {start + at[0]}; '
                             'remove or repair it')
    out = (chunk < 0) | (chunk > 1)
    if out.any():
      at = np.argwhere(out)[0]
      raise errors.DataError(f'{where} has the value {chunk[tuple(at)]:g} at image {start + at[0]}, outside [0, 1]; '
                             'float images are in [0, 1] (divide 8-bit values by 255, or give uint8)')
    scaled = chunk.astype(np.float64) * 255.0
    rounded = np.round(scaled)
    exact = exact and bool(np.all(np.abs(scaled - rounded) < 1e-4))
    codes[start:start + len(chunk)] = rounded.astype(np.uint8)
  return codes if exact else np.asarray(x, np.float32)


def labels(y, num_examples: int, where: str) -> np.ndarray | None:
  """int32 class labels (N,) in 0..K-1, or None."""
  if y is None:
    return None
  y = np.asarray(y)
  if y.ndim != 1 or len(y) != num_examples:
    raise errors.DataError(f'{where} has {len(y) if y.ndim else 0} labels of shape {y.shape} for {num_examples} '
                           'examples; give one integer label per example')
  if y.dtype.kind not in 'iub' or (len(y) and y.min() < 0):
    raise errors.DataError(f'{where} are {y.dtype} values{"" if y.dtype.kind not in "iub" else " below 0"}; labels '
                           'are class indices 0, 1, ..., K-1')
  return y.astype(np.int32)
