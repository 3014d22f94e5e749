"""Datasets through tensorflow-datasets, which downloads once and needs TensorFlow (CPU): cifar10 here,
and the fallback of the IDX sources (`idx`) when no IDX files are found."""

import numpy as np

from vae_jax import errors
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib


def load_numpy(name: str, data_dir: str | None):
  """(train, test) as numpy (images, labels) through TFDS, keeping TensorFlow off every accelerator."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.as_numpy(tfds.load(name, split=['train', 'test'], batch_size=-1, as_supervised=True,
                                 data_dir=data_dir))


def load_images(name: str, config, looked: list[str]) -> sources.Loaded:
  """Loads through TFDS; any failure becomes one DataError saying where we looked and what to do."""
  if name in ('mnist', 'fashion_mnist'):
    hint = ('To run offline, install Debian\'s dataset-fashion-mnist (fashion_mnist) or pass '
            '--config.data.idx_dir=DIR with MNIST-format IDX files')
  else:
    hint = f'Run once with internet and `pip install -e ".[tfds]"` so TFDS can download {name}'
  where = '; '.join(looked + [f'TFDS in {config.data.tfds_data_dir or "~/tensorflow_datasets"}'])
  try:
    train, test = load_numpy(name, config.data.tfds_data_dir)
  except ImportError as e:
    raise errors.DataError(
        f'dataset {name!r} not found (looked in: {where}), and TFDS cannot download it without '
        f'TensorFlow ({e.name or e} is missing; `pip install -e ".[tfds]"`). {hint}.') from None
  except Exception as e:  # pylint: disable=broad-except
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise errors.DataError(f'dataset {name!r} could not be loaded (looked in: {where}; TFDS said: '
                           f'{type(e).__name__}: {first_line}). {hint}.') from None
  return sources.Loaded((train[0], train[1].astype(np.int32)), (test[0], test[1].astype(np.int32)), f'TFDS {name}',
                        spec_lib.ImageSpec.of_shape(train[0].shape[1:]))


CIFAR10 = sources.Source('cifar10', lambda config: load_images('cifar10', config, []), num_classes=10)
