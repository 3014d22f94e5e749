"""`mnist` and `fashion_mnist` from IDX files (the MNIST format), else through TFDS.

Looked for, in order: `data.idx_dir` (asked for explicitly: never passed over
silently), for fashion_mnist Debian's dataset-fashion-mnist package, then
TFDS (`vae_jax.data.sources.tfds`), whose error names every place looked in.
"""

import gzip
import os
import pathlib

import numpy as np

from vae_jax import errors
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib
from vae_jax.data.sources import tfds as tfds_source

DEBIAN_FASHION_MNIST = pathlib.Path('/usr/share/datasets/fashion-mnist')
_IDX_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


def read_idx(path: os.PathLike) -> np.ndarray:
  """Reads one IDX file (gzipped or not) into a uint8 array of its stored shape."""
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'rb') as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise errors.DataError(f'{path} is not an unsigned-byte IDX file (bad magic number)')
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim))
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)):
    raise errors.DataError(f'{path} holds {data.size} bytes of data, but its header says {shape}')
  return data.reshape(shape)


def _find_idx(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
  for name in (stem + '.gz', stem):
    if (directory / name).is_file():
      return directory / name
  return None


def _has_idx(directory: pathlib.Path) -> bool:
  return all(_find_idx(directory, stem) for pair in _IDX_FILES.values() for stem in pair)


def load_idx_dir(directory: os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train'|'test': (uint8 images (N, H, W, 1), int32 labels)} from MNIST-format files."""
  directory = pathlib.Path(directory)
  out = {}
  for split, (images_stem, labels_stem) in _IDX_FILES.items():
    images_path, labels_path = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
    if images_path is None or labels_path is None:
      raise errors.DataError(f'{directory} has no {images_stem}[.gz] and {labels_stem}[.gz]')
    images, labels = read_idx(images_path), read_idx(labels_path)
    out[split] = (images[..., None], labels.astype(np.int32))
  return out


def _default_dirs(name: str) -> list[pathlib.Path]:
  """Where `name`'s IDX files are looked for when data.idx_dir is not set (read when loading, so a test can
  point DEBIAN_FASHION_MNIST elsewhere)."""
  return [DEBIAN_FASHION_MNIST] if name == 'fashion_mnist' else []


def load(name: str, config) -> sources.Loaded:
  dirs = ([pathlib.Path(config.data.idx_dir)] if config.data.idx_dir else []) + _default_dirs(name)
  for d in dirs:
    if _has_idx(d):
      splits = load_idx_dir(d)
      return sources.Loaded(splits['train'], splits['test'], f'IDX files in {d}',
                            spec_lib.ImageSpec.of_shape(splits['train'][0].shape[1:]))
  if config.data.idx_dir:  # asked for explicitly: never fall back silently
    raise errors.DataError(f'data.idx_dir={config.data.idx_dir!r} has no MNIST-format IDX files '
                           '(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], '
                           't10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])')
  return tfds_source.load_images(name, config, [str(d) for d in dirs])


MNIST = sources.Source('mnist', lambda config: load('mnist', config), num_classes=10)
FASHION_MNIST = sources.Source('fashion_mnist', lambda config: load('fashion_mnist', config), num_classes=10)
