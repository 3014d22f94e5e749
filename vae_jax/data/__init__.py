"""Datasets as in-memory float32 arrays in [0, 1], shape (N, H, W, C), in three
splits: train, validation (held out of the end of train) and test.

Sources, tried in this order:
  - `digits`: scikit-learn's bundled 8x8 digits (no download);
  - IDX files (the MNIST format) for mnist / fashion_mnist from `data.idx_dir`,
    or for fashion_mnist from Debian's dataset-fashion-mnist package;
  - tensorflow-datasets, which downloads once and needs TensorFlow (CPU).

Binarization for the Bernoulli likelihood:
  - dynamic: train stays grey and is resampled on device for every batch;
  - static: train is binarized once, with `seed`.
  In both cases validation and test are binarized once with
  `eval.binarization_seed`, so every evaluation sees the same binary images.
"""

import dataclasses
import gzip
import os
import pathlib

import numpy as np

from vae_jax import errors

DEBIAN_FASHION_MNIST = pathlib.Path('/usr/share/datasets/fashion-mnist')
_IDX_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray   # float32 (N, H, W, C) in [0, 1]; binary where binarized
  labels: np.ndarray   # int32 (N,)


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  train: Split
  validation: Split
  test: Split
  source: str          # where the data came from, for the logs

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train.images.shape[1:])


# ---------------------------------------------------------------- IDX files


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


# ---------------------------------------------------------------- sources


def _digits_file() -> pathlib.Path:
  """scikit-learn's bundled digits table, found without importing scikit-learn: that import costs
  about 2 s, paid by every process that trains on digits (most of the test suite's subprocesses)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec('sklearn')
  if spec is None or not spec.submodule_search_locations:
    raise errors.DataError('the digits dataset needs scikit-learn: pip install scikit-learn')
  return pathlib.Path(spec.submodule_search_locations[0]) / 'datasets' / 'data' / 'digits.csv.gz'


def _digits(config):
  # The rows of scikit-learn's load_digits: 64 pixel values in 0..16, then the label.
  table = np.loadtxt(_digits_file(), delimiter=',', dtype=np.float64)
  images = (table[:, :-1].reshape(-1, 8, 8) / 16.0).astype(np.float32)[..., None]
  labels = table[:, -1].astype(np.int32)
  num_test = 300
  return ((images[:-num_test], labels[:-num_test]), (images[-num_test:], labels[-num_test:]),
          'scikit-learn load_digits')


def _tfds_load(name: str, data_dir: str | None):
  """(train, test) as numpy (images, labels) through TFDS, keeping TensorFlow off every accelerator."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.as_numpy(tfds.load(name, split=['train', 'test'], batch_size=-1, as_supervised=True,
                                 data_dir=data_dir))


def _tfds(name: str, config, looked: list[str]):
  """Loads through TFDS; any failure becomes one DataError saying where we looked and what to do."""
  if name in ('mnist', 'fashion_mnist'):
    hint = ('To run offline, install Debian\'s dataset-fashion-mnist (fashion_mnist) or pass '
            '--config.data.idx_dir=DIR with MNIST-format IDX files')
  else:
    hint = f'Run once with internet and `pip install -e ".[tfds]"` so TFDS can download {name}'
  where = '; '.join(looked + [f'TFDS in {config.data.tfds_data_dir or "~/tensorflow_datasets"}'])
  try:
    train, test = _tfds_load(name, config.data.tfds_data_dir)
  except ImportError as e:
    raise errors.DataError(
        f'dataset {name!r} not found (looked in: {where}), and TFDS cannot download it without '
        f'TensorFlow ({e.name or e} is missing; `pip install -e ".[tfds]"`). {hint}.') from None
  except Exception as e:  # pylint: disable=broad-except
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise errors.DataError(f'dataset {name!r} could not be loaded (looked in: {where}; TFDS said: '
                           f'{type(e).__name__}: {first_line}). {hint}.') from None
  return ((train[0], train[1].astype(np.int32)), (test[0], test[1].astype(np.int32)), f'TFDS {name}')


def _mnist_like(name: str, default_dirs: tuple[pathlib.Path, ...]):
  def load(config):
    dirs = ([pathlib.Path(config.data.idx_dir)] if config.data.idx_dir else []) + list(default_dirs)
    for d in dirs:
      if _has_idx(d):
        splits = load_idx_dir(d)
        return splits['train'], splits['test'], f'IDX files in {d}'
    if config.data.idx_dir:  # asked for explicitly: never fall back silently
      raise errors.DataError(f'data.idx_dir={config.data.idx_dir!r} has no MNIST-format IDX files '
                             '(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], '
                             't10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])')
    return _tfds(name, config, [str(d) for d in dirs])
  return load


def _cifar10(config):
  return _tfds('cifar10', config, [])


# Classes of each dataset's labels, for conditional models (known without loading the data).
NUM_CLASSES = {'mnist': 10, 'fashion_mnist': 10, 'cifar10': 10, 'digits': 10}

LOADERS = {
    'mnist': _mnist_like('mnist', ()),
    'fashion_mnist': _mnist_like('fashion_mnist', (DEBIAN_FASHION_MNIST,)),
    'cifar10': _cifar10,
    'digits': _digits,
}


# ---------------------------------------------------------------- public API


def _to_unit_float(images: np.ndarray) -> np.ndarray:
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  return images.astype(np.float32)


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
  """One Bernoulli draw per pixel with the pixel's intensity as probability."""
  rng = np.random.default_rng(seed)
  return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def load(config) -> Dataset:
  """Loads `config.data.name` and splits, binarizes and checks it against the config."""
  name = config.data.name
  if name not in LOADERS:
    raise errors.ConfigError(f'data.name={name!r} is not allowed; use one of {", ".join(LOADERS)}')
  (train_x, train_y), (test_x, test_y), source = LOADERS[name](config)
  train_x, test_x = _to_unit_float(train_x), _to_unit_float(test_x)
  num_val = config.data.num_validation
  if num_val >= len(train_x):
    raise errors.DataError(f'data.num_validation={num_val} leaves no training images: {name} has '
                           f'{len(train_x)} in its train split')
  split_at = len(train_x) - num_val
  train = Split(train_x[:split_at], train_y[:split_at])
  val = Split(train_x[split_at:], train_y[split_at:])
  test = Split(test_x, test_y)
  if config.data.binarize != 'none':
    seed = config.eval.binarization_seed
    val = Split(binarize(val.images, seed), val.labels)
    test = Split(binarize(test.images, seed + 1), test.labels)
    if config.data.binarize == 'static':
      train = Split(binarize(train.images, config.seed), train.labels)
  if config.batch_size > len(train.images):
    raise errors.DataError(f'batch_size={config.batch_size} is larger than the {len(train.images)} training '
                           f'images of {name}; use at most {len(train.images)}')
  return Dataset(name=name, train=train, validation=val, test=test, source=source)
