"""Datasets in three splits: train, validation (held out of the end of train) and test.

A dataset comes from a source (`SOURCES`, one module each under
`vae_jax.data.sources`, or `tfds:NAME`): IDX files for mnist /
fashion_mnist, scikit-learn's digits, dSprites rendered from its factors
(`dsprites`), any TFDS image dataset, a .npy/.npz
file or arrays from a notebook (`array`), a folder of images
(`image_folder`), the rows of a table (`table`). The source says what one example is (`spec`: an image, a
vector, a token sequence) and whether it has labels. Registering a Source in
`SOURCES` makes its name a valid data.name for configs, sweeps and `load_run`.

Examples are kept as stored (`Split.examples`): images as uint8 codes, a
quarter of float32's memory on the host and on the device; `spec.decode`
turns them into the model's float32 input, in the train step and wherever a
split is read (`Split.decoded()`, `Split.images`). Memory-mapped data stay on
disk (`rows`). Every load checks what it read (`checks`) and fingerprints it,
so a run is never resumed on other data.

Data made from known factors (`dsprites`) carry them: `Dataset.factors` (names,
sizes, images rendered by factor value) and each split's (N, K) factor indices
(`Split.factors`), kept row for row through every hold-out.

Binarization for the Bernoulli likelihood:
  - dynamic: train stays grey and is resampled on device for every batch;
  - static: train is binarized once, with `seed`.
  In both cases validation and test are binarized once with
  `eval.binarization_seed`, so every evaluation sees the same binary examples.
"""

import collections.abc
import dataclasses

from absl import logging
import numpy as np

from vae_jax import errors
from vae_jax.data import checks
from vae_jax.data.factors import Factors
from vae_jax.data import rows as rows_lib
from vae_jax.data.sources import Loaded
from vae_jax.data.sources import Source
from vae_jax.data.sources import array
from vae_jax.data.sources import digits
from vae_jax.data.sources import dsprites
from vae_jax.data.sources import idx
from vae_jax.data.sources import image_folder
from vae_jax.data.sources import table
from vae_jax.data.sources import text
from vae_jax.data.sources import tfds
from vae_jax.data.spec import Column
from vae_jax.data.spec import ExampleSpec
from vae_jax.data.spec import ImageSpec
from vae_jax.data.spec import SequenceSpec
from vae_jax.data.spec import VectorSpec

__all__ = ['Column', 'Dataset', 'ExampleSpec', 'Factors', 'ImageSpec', 'Loaded', 'NUM_CLASSES', 'SOURCES',
           'SequenceSpec', 'Source', 'Split', 'VectorSpec', 'binarize', 'find', 'load']

SOURCES: dict[str, Source] = {s.name: s for s in (idx.MNIST, idx.FASHION_MNIST, tfds.CIFAR10, digits.DIGITS,
                                                  dsprites.DSPRITES, array.ARRAY, image_folder.IMAGE_FOLDER,
                                                  table.TABLE, text.TEXT, text.FORTUNES, text.WORDS)}
NOTEBOOK_SOURCE = 'arrays passed to train_and_evaluate'


def find(name: str) -> Source:
  """The source of data.name `name`: a registered one, or tfds:NAME; else a ConfigError listing them."""
  if name in SOURCES:
    return SOURCES[name]
  if name.startswith(tfds.PREFIX) and len(name) > len(tfds.PREFIX):
    return tfds.named(name[len(tfds.PREFIX):])
  raise errors.ConfigError(f'data.name={name!r} is not allowed; use one of {", ".join(SOURCES)}, or tfds:NAME for '
                           'a TFDS dataset')


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
  examples: np.ndarray          # (N, *spec.shape) as stored: uint8 codes for images (any array-like, `rows`)
  labels: np.ndarray | None     # int32 (N,), or None for a source without labels
  spec: ExampleSpec | None = None  # what decodes the examples (None: they are the model's input already)
  factors: np.ndarray | None = None  # int32 (N, K) factor indices of each example (`Dataset.factors`), or None

  def decoded(self) -> np.ndarray:
    """The examples as the model reads them (float32 for images), in memory."""
    x = np.asarray(self.examples)
    return x if self.spec is None else self.spec.decode(x)

  @property
  def images(self) -> np.ndarray:
    """The decoded examples, by the name image code and notebooks know them by."""
    return self.decoded()


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  train: Split
  validation: Split
  test: Split
  source: str          # where the data came from, for the logs
  spec: ExampleSpec    # what one example is
  fingerprint: str = ''  # of the data as the source gave them (`rows.fingerprint`): a run records it
  factors: Factors | None = None  # the factors the data were made from (names, sizes, render), or None

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of an image dataset (AttributeError for other examples)."""
    if self.spec.kind != 'image':
      raise AttributeError(f'{self.name} holds {self.spec.describe()}, not images: it has no image_shape')
    return tuple(self.spec.shape)

  @property
  def has_labels(self) -> bool:
    return self.train.labels is not None


def binarize(examples: np.ndarray, seed: int) -> np.ndarray:
  """One Bernoulli draw per entry with the entry's value (in [0, 1]) as probability."""
  rng = np.random.default_rng(seed)
  return (rng.random(examples.shape, dtype=np.float32) < examples).astype(np.float32)


_BINARIZE_CHUNK_ROWS = 8192


def _binarized(examples, spec: ExampleSpec, seed: int) -> np.ndarray:
  """`binarize` of the decoded examples, stored as they were: uint8 codes 0 and levels - 1, or floats 0 and 1.
  Drawn chunk by chunk from one generator (the same numbers as one draw of the whole), so a memory-mapped
  split is never held as float32 whole."""
  rng = np.random.default_rng(seed)
  out = np.empty(examples.shape, np.uint8 if examples.dtype == np.uint8 else np.float32)
  for start in range(0, len(examples), _BINARIZE_CHUNK_ROWS):
    values = spec.decode(np.asarray(examples[start:start + _BINARIZE_CHUNK_ROWS]))
    drawn = rng.random(values.shape, dtype=np.float32) < values
    out[start:start + len(values)] = drawn * (spec.levels - 1) if out.dtype == np.uint8 else drawn
  return out


def _checked(loaded: Loaded, name: str) -> Loaded:
  """The source's arrays in stored form, checked: images by `checks.images`, labels by `checks.labels`,
  other examples finite and of the spec's shape."""
  spec, splits, indices = loaded.spec, {}, {}
  for split, pair, factors in (('train', loaded.train, loaded.train_factors),
                               ('test', loaded.test, loaded.test_factors)):
    if pair is None:
      continue
    x, y = pair
    where = f'{name} ({split} split)'
    if spec.kind == 'image':
      x = checks.images(x, where)
    else:
      x = np.asarray(x).astype(spec.dtype)
      if x.dtype.kind == 'f' and not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0][:2]
        raise errors.DataError(f'{where} has a non-finite value at row {row}, entry {col}; remove or repair it')
    if tuple(x.shape[1:]) != tuple(spec.shape):
      raise errors.DataError(f'{name} gave {split} examples of shape {tuple(x.shape[1:])}, but its spec says '
                             f'{spec.describe()}')
    splits[split] = (x, checks.labels(y, len(x), f'{where} labels'))
    indices[split] = _checked_factors(loaded.factors, factors, len(x), where)
  return dataclasses.replace(loaded, train=splits['train'], test=splits.get('test'),
                             train_factors=indices['train'], test_factors=indices.get('test'))


def _checked_factors(factors: Factors | None, indices, num_examples: int, where: str) -> np.ndarray | None:
  """int32 (N, K) factor indices of a split's examples, given with the source's `Factors`, or None."""
  if factors is None:
    if indices is not None:
      raise errors.DataError(f'{where} has factor indices but no Factors to name them; give both or neither')
    return None
  if indices is None or len(indices) != num_examples:
    raise errors.DataError(f'{where} has {num_examples} examples but {"no" if indices is None else len(indices)} '
                           'rows of factor indices; give one row per example')
  try:
    return factors.check(indices, where)
  except ValueError as e:
    raise errors.DataError(str(e)) from None


def _resized(loaded: Loaded, size) -> Loaded:
  """Images brought to data.image_size (H, W) by resizing and centre-cropping, for sources that do not."""
  if loaded.spec.kind != 'image' or size is None or tuple(loaded.spec.shape[:2]) == tuple(size):
    return loaded
  if loaded.factors is not None:
    raise errors.ConfigError(f'data.image_size={tuple(size)} would resize the stored images but not those its factors '
                             f'render ({tuple(loaded.spec.shape[:2])}); unset it (dsprites: set data.dsprites_size)')
  fit = lambda x: np.stack([image_folder.fit(np.asarray(im), size) for im in x]) if len(x) else x
  pairs = [None if p is None else (fit(np.asarray(p[0])), p[1]) for p in (loaded.train, loaded.test)]
  shape = pairs[0][0].shape[1:]
  return dataclasses.replace(loaded, train=pairs[0], test=pairs[1],
                             spec=ImageSpec.of_shape(shape, levels=loaded.spec.levels))


def load(config, arrays=None) -> Dataset:
  """Loads `config.data.name` (or, given `arrays`, those: see `sources.array.named`), checks it, holds
  out what it needs, binarizes it and checks it against the config."""
  name = config.data.name
  if arrays is not None:
    loaded = array.from_arrays(array.named(arrays), NOTEBOOK_SOURCE)
  else:
    loaded = find(name).load(config)
  loaded = _resized(_checked(loaded, name), config.data.image_size)  # resizing gives checked uint8 of its spec
  spec = loaded.spec
  fingerprint = loaded.fingerprint or rows_lib.fingerprint(*loaded.train, *(loaded.test or (None, None)))
  (train_x, train_y), train_f = loaded.train, loaded.train_factors
  things = f'{spec.kind}s'
  pick = lambda a, rows: None if a is None else a[rows]  # labels or factor indices, where there are any
  num_val, num_train = config.data.num_validation, config.data.num_train
  cut = lambda x, y, f, rows: (rows_lib.take(x, rows), pick(y, rows), pick(f, rows))

  def check_sizes(available):
    if num_val >= available:
      raise errors.DataError(f'data.num_validation={num_val} leaves no training {things}: {name} has '
                             f'{available} in its train split')
    if num_train is not None and num_train > available - num_val:
      raise errors.DataError(f'data.num_train={num_train} is more than the {available - num_val} training '
                             f'{things} of {name} (after data.num_validation={num_val}); use at most '
                             f'{available - num_val}')

  if loaded.test is None:
    # Test, validation and a data.num_train subset are all drawn by one permutation of the split seed: a
    # source's rows may come in a systematic order (dsprites: factor order), so no part is taken from an end.
    n = len(train_x)
    num_test = int(round(config.data.test_fraction * n))
    if not 0 < num_test < n:
      raise errors.DataError(f'{name} has {n} {things} and no test split; data.test_fraction='
                             f'{config.data.test_fraction} holds out {num_test}: give more data or another fraction')
    check_sizes(n - num_test)
    order = np.random.default_rng(config.data.split_seed).permutation(n)
    logging.info('%s has no test split: holding out %d of its %d %s as the test split (data.test_fraction=%g, '
                 'data.split_seed=%d)', name, num_test, n, things, config.data.test_fraction, config.data.split_seed)
    rest = order[num_test + num_val:]
    parts = (order[:num_test], order[num_test:num_test + num_val], rest if num_train is None else rest[:num_train])
    (test_x, test_y, test_f), (val_x, val_y, val_f), (train_x, train_y, train_f) = (
        cut(train_x, train_y, train_f, np.sort(rows)) for rows in parts)
  else:
    (test_x, test_y), test_f = loaded.test, loaded.test_factors
    check_sizes(len(train_x))
    split_at = len(train_x) - num_val
    val_x, val_y, val_f = cut(train_x, train_y, train_f, slice(split_at, None))
    train_x, train_y, train_f = cut(train_x, train_y, train_f, slice(None, split_at))
    if num_train is not None:
      train_x, train_y, train_f = cut(train_x, train_y, train_f, slice(None, num_train))
  if config.data.binarize != 'none':
    if spec.dtype != 'float32':
      raise errors.ConfigError(f'data.binarize={config.data.binarize!r} draws binary values from values in [0, 1]; '
                               f'{name} holds {spec.describe()} of {spec.dtype}: use data.binarize=none')
    seed = config.eval.binarization_seed
    val_x, test_x = _binarized(val_x, spec, seed), _binarized(test_x, spec, seed + 1)
    if config.data.binarize == 'static':
      train_x = _binarized(train_x, spec, config.seed)
  if config.batch_size > len(train_x):
    raise errors.DataError(f'batch_size={config.batch_size} is larger than the {len(train_x)} training '
                           f'{things} of {name}; use at most {len(train_x)}')
  split = lambda x, y, f: Split(x, y, spec, f)
  return Dataset(name=name, train=split(train_x, train_y, train_f), validation=split(val_x, val_y, val_f),
                 test=split(test_x, test_y, test_f), source=loaded.source, spec=spec, fingerprint=fingerprint,
                 factors=loaded.factors)
