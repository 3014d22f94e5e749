"""Any TFDS image dataset, `tfds:NAME` (and `cifar10`, the fallback of the IDX sources), and the TFDS text
sets of `text.TFDS_TEXT` (yelp_polarity_reviews, imdb_reviews, lm1b) as token sequences: through
tensorflow-datasets, which downloads once and needs TensorFlow (CPU; `pip install -e ".[tfds]"`).

The train and test splits are read (a dataset without a test split has
data.test_fraction held out); its 'image' feature becomes uint8 images and
its 'label' feature, when it has one, the labels. data.image_size resizes and
centre-crops (celeb_a defaults to 64 x 64, the usual VAE setting); the
images are resized batch by batch as they are read, so a large dataset is
never held at full size. binarized_mnist is the fixed binarization of the
IWAE and VampPrior papers: its images are binary (levels 2), to be trained
with data.binarize=none.

dsprites and shapes3d hold every combination of known factors once
(`FACTOR_FEATURES`): their factor indices come with them, in the original
factor order, and the disentanglement metrics draw images by factor value
from the loaded set. Only their train split exists; data.test_fraction holds
out the test images.
"""

import numpy as np

from vae_jax import errors
from vae_jax.data import factors as factors_lib
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib
from vae_jax.data.sources import image_folder
from vae_jax.data.sources import text

PREFIX = 'tfds:'
# What some datasets need besides their name: the image size of the usual setting, or their levels.
DEFAULTS = {'celeb_a': {'image_size': (64, 64)}, 'binarized_mnist': {'levels': 2}, 'dsprites': {'levels': 2}}
# Datasets of every combination of known factors: (factor name, TFDS class-label feature), in the original
# order. dsprites' names are the procedural source's (`sources.dsprites.NAMES`).
FACTOR_FEATURES = {
    'dsprites': (('shape', 'label_shape'), ('scale', 'label_scale'), ('orientation', 'label_orientation'),
                 ('position_x', 'label_x_position'), ('position_y', 'label_y_position')),
    'shapes3d': (('floor_hue', 'label_floor_hue'), ('wall_hue', 'label_wall_hue'),
                 ('object_hue', 'label_object_hue'), ('scale', 'label_scale'), ('shape', 'label_shape'),
                 ('orientation', 'label_orientation')),
}
_BATCH = 1024


def _tfds():
  """tensorflow_datasets, with TensorFlow kept off every accelerator."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def read_split(name: str, split: str, data_dir: str | None, image_size) -> tuple[np.ndarray, np.ndarray | None] | None:
  """(uint8 images, int32 labels or None) of one split, or None when the dataset has no such split."""
  tfds = _tfds()
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare()
  if split not in builder.info.splits:
    return None
  has_label = 'label' in builder.info.features
  images, labels = [], []
  for batch in tfds.as_numpy(builder.as_dataset(split=split, batch_size=_BATCH)):
    x = np.asarray(batch['image'], np.uint8)
    if image_size is not None:
      x = np.stack([image_folder.fit(im, image_size) for im in x])
    images.append(x)
    if has_label:
      labels.append(np.asarray(batch['label'], np.int32))
  return np.concatenate(images), (np.concatenate(labels) if has_label else None)


def read_texts(name: str, split: str, data_dir: str | None, feature: str) -> list[str] | None:
  """The `feature` texts of one split of a TFDS text dataset (UTF-8 decoded), or None without such a split;
  DataError naming the example whose bytes are not UTF-8."""
  tfds = _tfds()
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare()
  if split not in builder.info.splits:
    return None
  texts = []
  for i, example in enumerate(tfds.as_numpy(builder.as_dataset(split=split))):
    value = example[feature]
    try:
      texts.append(value.decode('utf-8') if isinstance(value, bytes) else str(value))
    except UnicodeDecodeError:
      raise errors.DataError(f'TFDS {name} ({split} split), example {i}: its {feature!r} is not UTF-8') from None
  return texts


def load_texts(name: str, config) -> sources.Loaded:
  """A TFDS text dataset's train and test texts as token sequences (`text.from_texts`)."""
  try:
    train = read_texts(name, 'train', config.data.tfds_data_dir, text.TFDS_TEXT[name])
    test = read_texts(name, 'test', config.data.tfds_data_dir, text.TFDS_TEXT[name])
  except errors.UserError:
    raise
  except ImportError as e:
    raise errors.DataError(f'TFDS text dataset {name!r} needs TensorFlow to be read ({e.name or e} is missing; '
                           '`pip install -e ".[tfds]"`)') from None
  except Exception as e:  # pylint: disable=broad-except
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise errors.DataError(f'dataset {name!r} could not be loaded (TFDS in {config.data.tfds_data_dir or "~/tensorflow_datasets"} '
                           f'said: {type(e).__name__}: {first_line}). Run once with internet so TFDS can '
                           'download it, or save its texts one a line and use data.name=text') from None
  if not train:
    raise errors.DataError(f'TFDS dataset {name!r} has no train texts; vae_jax trains on its train split')
  return text.from_texts(train, config, f'TFDS {name}', 'word', test=test)


def read_factors(name: str, data_dir: str | None, features) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
  """(uint8 images, int32 (N, K) indices of the class-label `features`, each feature's number of values) of
  the train split of a dataset made from known factors."""
  tfds = _tfds()
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare()
  sizes = tuple(int(builder.info.features[f].num_classes) for f in features)
  images, indices = [], []
  for batch in tfds.as_numpy(builder.as_dataset(split='train', batch_size=_BATCH)):
    images.append(np.asarray(batch['image'], np.uint8))
    indices.append(np.stack([np.asarray(batch[f], np.int32) for f in features], axis=1))
  return np.concatenate(images), np.concatenate(indices), sizes


def with_factors(name: str, images: np.ndarray, indices: np.ndarray, sizes) -> tuple[factors_lib.Factors, np.ndarray]:
  """The `Factors` of a set holding every combination of its factors once, drawn from `images` by value, and
  its checked indices; DataError when a combination is missing or repeated (the metrics could not draw it)."""
  names = tuple(n for n, _ in FACTOR_FEATURES[name])
  factors_of = factors_lib.Factors(names, tuple(sizes), lambda idx: idx)
  indices = factors_of.check(indices, f'tfds:{name}')
  flat = factors_of.flat(indices)
  row_of = np.full(factors_of.num_combinations, -1, np.int64)
  row_of[flat] = np.arange(len(flat))
  if len(flat) != factors_of.num_combinations or np.any(row_of < 0):
    raise errors.DataError(f'tfds:{name} has {len(flat):,} images for {factors_of.num_combinations:,} combinations '
                           f'of its factors ({", ".join(names)}), not each once: the disentanglement metrics '
                           'draw images by factor value; rebuild its TFDS copy (delete it and download again)')
  render = lambda idx: images[row_of[factors_of.flat(factors_of.check(idx, f'tfds:{name}'))]]
  return factors_lib.Factors(names, tuple(sizes), render), indices


def load_numpy(name: str, data_dir: str | None, image_size=None):
  """(train, test) of `name` as (images, labels) pairs; test is None without a test split."""
  return read_split(name, 'train', data_dir, image_size), read_split(name, 'test', data_dir, image_size)


def load_images(name: str, config, looked: list[str]) -> sources.Loaded:
  """Loads through TFDS; any failure becomes one DataError saying where we looked and what to do."""
  if name in ('mnist', 'fashion_mnist'):
    hint = ('To run offline, install Debian\'s dataset-fashion-mnist (fashion_mnist) or pass '
            '--config.data.idx_dir=DIR with MNIST-format IDX files')
  else:
    hint = (f'Run once with internet and `pip install -e ".[tfds]"` so TFDS can download {name} into '
            f'{config.data.tfds_data_dir or "~/tensorflow_datasets"} (or point data.tfds_data_dir at a copy), '
            'or save the images as a .npz and use data.name=array')
  where = '; '.join(looked + [f'TFDS in {config.data.tfds_data_dir or "~/tensorflow_datasets"}'])
  defaults = DEFAULTS.get(name, {})
  image_size = config.data.image_size or defaults.get('image_size')
  try:
    if name in FACTOR_FEATURES:
      images, indices, sizes = read_factors(name, config.data.tfds_data_dir, [f for _, f in FACTOR_FEATURES[name]])
      train, test = (images, None), None
    else:
      train, test = load_numpy(name, config.data.tfds_data_dir, image_size)
  except ImportError as e:
    raise errors.DataError(
        f'dataset {name!r} not found (looked in: {where}), and TFDS cannot download it without '
        f'TensorFlow ({e.name or e} is missing; `pip install -e ".[tfds]"`). {hint}.') from None
  except Exception as e:  # pylint: disable=broad-except
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise errors.DataError(f'dataset {name!r} could not be loaded (looked in: {where}; TFDS said: '
                           f'{type(e).__name__}: {first_line}). {hint}.') from None
  if train is None:
    raise errors.DataError(f'TFDS dataset {name!r} has no train split; vae_jax trains on its train split')
  spec = spec_lib.ImageSpec.of_shape(train[0].shape[1:], levels=defaults.get('levels', 256))
  if name not in FACTOR_FEATURES:
    return sources.Loaded(train, test, f'TFDS {name}', spec)
  factors, indices = with_factors(name, images, indices, sizes)
  return sources.Loaded(train, None, f'TFDS {name}', spec, factors=factors, train_factors=indices)


def named(name: str) -> sources.Source:
  """The source of data.name='tfds:NAME': its images, or, for the text sets of `text.TFDS_TEXT`, its texts as
  token sequences (with the text options)."""
  if name in text.TFDS_TEXT:
    return sources.Source(PREFIX + name, lambda config: load_texts(name, config), options=text.OPTIONS,
                          check_config=text.check_config)
  return sources.Source(PREFIX + name, lambda config: load_images(name, config, []),
                        has_factors=name in FACTOR_FEATURES)


CIFAR10 = sources.Source('cifar10', lambda config: load_images('cifar10', config, []), num_classes=10)
