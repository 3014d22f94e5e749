"""Data loading: IDX files written by the test, digits, splits, binarization, errors."""

import gzip

import numpy as np
import pytest

from vae_jax import data
from vae_jax import errors


def _write_idx(path, array, compress):
  header = bytes([0, 0, 8, array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
  payload = header + array.astype(np.uint8).tobytes()
  if compress:
    with gzip.open(str(path) + '.gz', 'wb') as f:
      f.write(payload)
  else:
    path.write_bytes(payload)


def _fake_mnist(directory, num_train=120, num_test=30, compress=True):
  rng = np.random.default_rng(0)
  arrays = {}
  for stem, n in (('train', num_train), ('t10k', num_test)):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    _write_idx(directory / f'{stem}-images-idx3-ubyte', images, compress)
    _write_idx(directory / f'{stem}-labels-idx1-ubyte', labels, compress)
    arrays[stem] = (images, labels)
  return arrays


@pytest.mark.parametrize('compress', [True, False])
def test_read_idx_round_trip(tmp_path, compress):
  arrays = _fake_mnist(tmp_path, compress=compress)
  splits = data.load_idx_dir(tmp_path)
  np.testing.assert_array_equal(splits['train'][0][..., 0], arrays['train'][0])
  np.testing.assert_array_equal(splits['test'][1], arrays['t10k'][1])


def test_read_idx_rejects_other_files(tmp_path):
  (tmp_path / 'bad').write_bytes(b'not an idx file at all')
  with pytest.raises(errors.DataError, match='magic'):
    data.read_idx(tmp_path / 'bad')


@pytest.mark.parametrize('name', ['mnist', 'fashion_mnist'])
def test_idx_dir_splits_and_dynamic_binarization(tmp_path, make_config, name):
  arrays = _fake_mnist(tmp_path)
  config = make_config(**{'data.name': name, 'data.idx_dir': str(tmp_path), 'data.num_validation': 20,
                          'batch_size': 10})
  ds = data.load(config)
  assert ds.image_shape == (28, 28, 1)
  assert (len(ds.train.images), len(ds.validation.images), len(ds.test.images)) == (100, 20, 30)
  # Train stays grey (binarized per batch on device); validation/test are binarized once.
  np.testing.assert_allclose(ds.train.images[..., 0], arrays['train'][0][:100] / 255.0, atol=1e-6)
  for split in (ds.validation, ds.test):
    assert set(np.unique(split.images)) <= {0.0, 1.0}
  np.testing.assert_array_equal(ds.validation.images, data.load(config).validation.images)
  # Binarization follows the intensities: on average, mean(binary) = mean(grey).
  assert abs(ds.test.images.mean() - arrays['t10k'][0].mean() / 255.0) < 0.01


def test_static_binarization_is_fixed_by_seed(tmp_path, make_config):
  _fake_mnist(tmp_path)
  config = make_config(**{'data.name': 'mnist', 'data.idx_dir': str(tmp_path), 'data.num_validation': 20,
                          'data.binarize': 'static'})
  a, b = data.load(config), data.load(config)
  assert set(np.unique(a.train.images)) == {0.0, 1.0}
  np.testing.assert_array_equal(a.train.images, b.train.images)
  config.seed = 1
  assert not np.array_equal(a.train.images, data.load(config).train.images)


def test_no_binarization_keeps_grey_values(make_config):
  ds = data.load(make_config(**{'data.binarize': 'none', 'model.likelihood': 'gaussian'}))
  assert len(np.unique(ds.test.images)) > 2


def test_digits(make_config):
  ds = data.load(make_config())
  assert ds.image_shape == (8, 8, 1)
  assert (len(ds.train.images), len(ds.validation.images), len(ds.test.images)) == (1297, 200, 300)
  assert ds.train.images.dtype == np.float32
  assert 0.0 <= ds.train.images.min() and ds.train.images.max() <= 1.0
  assert ds.train.labels.shape == (1297,)
  # The table is read without importing scikit-learn; it must be exactly load_digits.
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  digits = sk_datasets.load_digits()
  grey = data.load(make_config(**{'data.binarize': 'none', 'model.likelihood': 'gaussian'}))
  np.testing.assert_array_equal(grey.test.images[..., 0], (digits.images[-300:] / 16.0).astype(np.float32))
  np.testing.assert_array_equal(ds.test.labels, digits.target[-300:])


def test_missing_idx_dir_is_a_clear_error(tmp_path, make_config):
  config = make_config(**{'data.name': 'mnist', 'data.idx_dir': str(tmp_path)})
  with pytest.raises(errors.DataError, match='no MNIST-format IDX files'):
    data.load(config)


def test_unavailable_dataset_names_where_it_looked(make_config, monkeypatch):
  monkeypatch.setattr(data, 'DEBIAN_FASHION_MNIST', data.pathlib.Path('/nonexistent/fashion-mnist'))
  monkeypatch.setitem(data.LOADERS, 'fashion_mnist', data._mnist_like('fashion_mnist', (data.DEBIAN_FASHION_MNIST,)))
  monkeypatch.setattr(data, '_tfds_load', lambda *a, **k: (_ for _ in ()).throw(OSError('offline')))
  with pytest.raises(errors.DataError) as info:
    data.load(make_config(**{'data.name': 'fashion_mnist'}))
  message = str(info.value)
  assert 'fashion_mnist' in message and '/nonexistent/fashion-mnist' in message
  assert 'dataset-fashion-mnist' in message and '\n' not in message


def test_batch_larger_than_dataset(make_config):
  with pytest.raises(errors.DataError, match='batch_size=5000 is larger than the 1297 training images'):
    data.load(make_config(batch_size=5000))
