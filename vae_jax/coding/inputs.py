"""The examples a coding command reads: a split of the run's dataset, or a .npy array."""

import numpy as np

from vae_jax import data
from vae_jax import errors


def read_images(path: str) -> np.ndarray:
  """The array in a .npy file; a DataError names the file if it cannot be read."""
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise errors.DataError(f'cannot read --images={path} as a .npy array: {e}') from None


def load_images(run, split: str | None, images: str | None) -> np.ndarray:
  """The run's `split` (as its evaluation reads it: binarized once where the run binarizes), or the array in
  the .npy file `images`; exactly one of them."""
  if (split is None) == (images is None):
    raise errors.ConfigError('give exactly one of --split and --images')
  if images is not None:
    return read_images(images)
  return getattr(data.load(run.config), split).decoded()
