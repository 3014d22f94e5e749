"""`digits`: scikit-learn's bundled 8x8 digits (1,797 images, values 0..16), no download.

The last 300 rows are the test split, the rest train.
"""

import importlib.util
import pathlib

import numpy as np

from vae_jax import errors
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib

NUM_TEST = 300


def table_path() -> pathlib.Path:
  """scikit-learn's bundled digits table, found without importing scikit-learn: that import costs
  about 2 s, paid by every process that trains on digits (most of the test suite's subprocesses)."""
  found = importlib.util.find_spec('sklearn')
  if found is None or not found.submodule_search_locations:
    raise errors.DataError('the digits dataset needs scikit-learn: pip install scikit-learn')
  return pathlib.Path(found.submodule_search_locations[0]) / 'datasets' / 'data' / 'digits.csv.gz'


def load(config) -> sources.Loaded:
  del config
  # The rows of scikit-learn's load_digits: 64 pixel values in 0..16, then the label.
  table = np.loadtxt(table_path(), delimiter=',', dtype=np.float64)
  images = table[:, :-1].reshape(-1, 8, 8).astype(np.uint8)[..., None]  # codes k of the values k / 16
  labels = table[:, -1].astype(np.int32)
  return sources.Loaded((images[:-NUM_TEST], labels[:-NUM_TEST]), (images[-NUM_TEST:], labels[-NUM_TEST:]),
                        'scikit-learn load_digits', spec_lib.ImageSpec(8, 8, 1, levels=17))


DIGITS = sources.Source('digits', load, num_classes=10)
