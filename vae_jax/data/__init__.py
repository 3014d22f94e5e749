"""Datasets as in-memory arrays in three splits: train, validation (held out of the end of train) and test.

A dataset comes from a source (`SOURCES`, one module each under
`vae_jax.data.sources`): scikit-learn's digits, IDX files for mnist /
fashion_mnist (or Debian's dataset-fashion-mnist), tensorflow-datasets. The
source says what one example is (`spec`: an image, a vector, a token
sequence) and whether it has labels; examples of a float spec are float32 in
[0, 1] here (uint8 is read as k / 255). Registering a Source in `SOURCES`
makes its name a valid data.name for configs, sweeps and `load_run`.

Binarization for the Bernoulli likelihood:
  - dynamic: train stays grey and is resampled on device for every batch;
  - static: train is binarized once, with `seed`.
  In both cases validation and test are binarized once with
  `eval.binarization_seed`, so every evaluation sees the same binary examples.
"""

import collections.abc
import dataclasses

import numpy as np

from vae_jax import errors
from vae_jax.data.sources import Loaded
from vae_jax.data.sources import Source
from vae_jax.data.sources import digits
from vae_jax.data.sources import idx
from vae_jax.data.sources import tfds
from vae_jax.data.spec import Column
from vae_jax.data.spec import ExampleSpec
from vae_jax.data.spec import ImageSpec
from vae_jax.data.spec import SequenceSpec
from vae_jax.data.spec import VectorSpec

__all__ = ['Column', 'Dataset', 'ExampleSpec', 'ImageSpec', 'Loaded', 'NUM_CLASSES', 'SOURCES', 'SequenceSpec',
           'Source', 'Split', 'VectorSpec', 'binarize', 'load']

SOURCES: dict[str, Source] = {s.name: s for s in (idx.MNIST, idx.FASHION_MNIST, tfds.CIFAR10, digits.DIGITS)}


class _NumClasses(collections.abc.Mapping):
  """{name: number of classes} of the labelled sources, read from SOURCES when asked, so a source
  registered later counts too (for conditional models, known without loading the data)."""

  def __getitem__(self, name: str) -> int:
    source = SOURCES.get(name)
    if source is None or source.num_classes is None:
      raise KeyError(name)
    return source.num_classes

  def __iter__(self):
    return (name for name, source in SOURCES.items() if source.num_classes is not None)

  def __len__(self) -> int:
    return sum(1 for _ in self)


NUM_CLASSES: collections.abc.Mapping[str, int] = _NumClasses()


@dataclasses.dataclass(frozen=True)
class Split:
  examples: np.ndarray          # (N, *spec.shape); float32 in [0, 1] for float specs, binary where binarized
  labels: np.ndarray | None     # int32 (N,), or None for a source without labels

  @property
  def images(self) -> np.ndarray:
    """The examples, by the name image code and notebooks know them by."""
    return self.examples


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  train: Split
  validation: Split
  test: Split
  source: str          # where the data came from, for the logs
  spec: ExampleSpec    # what one example is

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of an image dataset (AttributeError for other examples)."""
    if self.spec.kind != 'image':
      raise AttributeError(f'{self.name} holds {self.spec.describe()}, not images: it has no image_shape')
    return tuple(self.spec.shape)

  @property
  def has_labels(self) -> bool:
    return self.train.labels is not None


def _to_unit_float(examples: np.ndarray) -> np.ndarray:
  if examples.dtype == np.uint8:
    return examples.astype(np.float32) / 255.0
  return examples.astype(np.float32)


def binarize(examples: np.ndarray, seed: int) -> np.ndarray:
  """One Bernoulli draw per entry with the entry's value (in [0, 1]) as probability."""
  rng = np.random.default_rng(seed)
  return (rng.random(examples.shape, dtype=np.float32) < examples).astype(np.float32)


def _split(examples: np.ndarray, labels: np.ndarray | None, rows: slice) -> Split:
  return Split(examples[rows], None if labels is None else labels[rows])


def load(config) -> Dataset:
  """Loads `config.data.name` and splits, binarizes and checks it against the config."""
  name = config.data.name
  if name not in SOURCES:
    raise errors.ConfigError(f'data.name={name!r} is not allowed; use one of {", ".join(SOURCES)}')
  loaded = SOURCES[name].load(config)
  spec = loaded.spec
  (train_x, train_y), (test_x, test_y) = loaded.train, loaded.test
  if spec.dtype == 'float32':
    train_x, test_x = _to_unit_float(train_x), _to_unit_float(test_x)
  else:
    train_x, test_x = train_x.astype(spec.dtype), test_x.astype(spec.dtype)
  for split, x in (('train', train_x), ('test', test_x)):
    if tuple(x.shape[1:]) != tuple(spec.shape):
      raise errors.DataError(f'{name} gave {split} examples of shape {tuple(x.shape[1:])}, but its spec says '
                             f'{spec.describe()}')
  things = f'{spec.kind}s'
  num_val = config.data.num_validation
  if num_val >= len(train_x):
    raise errors.DataError(f'data.num_validation={num_val} leaves no training {things}: {name} has '
                           f'{len(train_x)} in its train split')
  split_at = len(train_x) - num_val
  train = _split(train_x, train_y, slice(None, split_at))
  val = _split(train_x, train_y, slice(split_at, None))
  test = Split(test_x, test_y)
  if config.data.binarize != 'none':
    if spec.dtype != 'float32':
      raise errors.ConfigError(f'data.binarize={config.data.binarize!r} draws binary values from values in [0, 1]; '
                               f'{name} holds {spec.describe()} of {spec.dtype}: use data.binarize=none')
    seed = config.eval.binarization_seed
    val = Split(binarize(val.examples, seed), val.labels)
    test = Split(binarize(test.examples, seed + 1), test.labels)
    if config.data.binarize == 'static':
      train = Split(binarize(train.examples, config.seed), train.labels)
  if config.batch_size > len(train.examples):
    raise errors.DataError(f'batch_size={config.batch_size} is larger than the {len(train.examples)} training '
                           f'{things} of {name}; use at most {len(train.examples)}')
  return Dataset(name=name, train=train, validation=val, test=test, source=loaded.source, spec=spec)
