"""Data loading: IDX files written by the test, digits, splits, binarization, errors; example specs; and a
source of vectors without labels, registered here only, that trains, evaluates and loads back."""

import gzip
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

import vae_jax
from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax.data.sources import idx
from vae_jax.data.sources import tfds as tfds_source
from vae_jax.experiments import report as experiment_report
from vae_jax.runs import checkpoints
from vae_jax.runs import evaluate as evaluate_lib
from vae_jax.training import train
from vae_jax.viz import plots
from vae_jax.viz import report


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
  splits = idx.load_idx_dir(tmp_path)
  np.testing.assert_array_equal(splits['train'][0][..., 0], arrays['train'][0])
  np.testing.assert_array_equal(splits['test'][1], arrays['t10k'][1])


def test_read_idx_rejects_other_files(tmp_path):
  (tmp_path / 'bad').write_bytes(b'not an idx file at all')
  with pytest.raises(errors.DataError, match='magic'):
    idx.read_idx(tmp_path / 'bad')


@pytest.mark.parametrize('name', ['mnist', 'fashion_mnist'])
def test_idx_dir_splits_and_dynamic_binarization(tmp_path, make_config, name):
  arrays = _fake_mnist(tmp_path)
  config = make_config(**{'data.name': name, 'data.idx_dir': str(tmp_path), 'data.num_validation': 20,
                          'batch_size': 10})
  ds = data.load(config)
  assert ds.image_shape == (28, 28, 1) and ds.spec == data.ImageSpec(28, 28, 1)
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
  assert ds.image_shape == (8, 8, 1) and ds.spec == data.ImageSpec(8, 8, 1, levels=17)
  assert ds.train.examples.dtype == np.uint8 and ds.train.examples.max() == 16  # stored as codes k of k / 16
  np.testing.assert_array_equal(ds.train.images, ds.train.examples / np.float32(16))  # decoded, as notebooks read
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
  monkeypatch.setattr(idx, 'DEBIAN_FASHION_MNIST', pathlib.Path('/nonexistent/fashion-mnist'))
  monkeypatch.setattr(tfds_source, 'load_numpy', lambda *a, **k: (_ for _ in ()).throw(OSError('offline')))
  with pytest.raises(errors.DataError) as info:
    data.load(make_config(**{'data.name': 'fashion_mnist'}))
  message = str(info.value)
  assert 'fashion_mnist' in message and '/nonexistent/fashion-mnist' in message
  assert 'dataset-fashion-mnist' in message and '\n' not in message


def test_batch_larger_than_dataset(make_config):
  with pytest.raises(errors.DataError, match='batch_size=5000 is larger than the 1297 training images'):
    data.load(make_config(batch_size=5000))


@pytest.mark.parametrize('spec', [
    data.ImageSpec(28, 28, 1),
    data.ImageSpec(8, 8, 3, levels=17),
    data.VectorSpec((data.Column('age'), data.Column('smoker', 'binary'), data.Column('city', 'categorical', 5))),
    data.SequenceSpec(vocab_size=100, max_length=12, pad_id=0),
], ids=['image', 'image-rgb', 'vector', 'sequence'])
def test_spec_json_round_trip(spec):
  """Through JSON text, and through the ConfigDict a run's config.json is read back into."""
  text = json.dumps(spec.to_json())
  assert data.ExampleSpec.from_json(json.loads(text)) == spec
  config = config_lib.with_defaults({'resolved': {'example_spec': json.loads(text)}})
  assert data.ExampleSpec.from_json(config.resolved.example_spec) == spec
  assert spec.dummy(2).shape == (2, *spec.shape) and spec.dummy(2).dtype == spec.dtype
  assert spec.num_dims == int(np.prod(spec.shape))


def test_spec_refuses_what_it_cannot_be():
  with pytest.raises(ValueError, match='known kinds: image, vector, sequence'):
    data.ExampleSpec.from_json({'kind': 'graph'})
  with pytest.raises(ValueError, match='num_categories'):
    data.Column('city', 'categorical')


NUM_TOY, TOY_DIMS = 192, 8


def _toy_load(config):
  """Vectors in [0, 1] with structure a 2-D latent can find (two bumps), and no labels."""
  del config
  rng = np.random.default_rng(0)
  centres = rng.random((2, TOY_DIMS))
  x = np.clip(centres[rng.integers(0, 2, NUM_TOY)] + 0.1 * rng.normal(size=(NUM_TOY, TOY_DIMS)), 0, 1)
  x = x.astype(np.float32)
  return data.Loaded((x[:128], None), (x[128:], None), 'toy vectors made by tests/test_data.py',
                     data.VectorSpec.continuous(TOY_DIMS))


@pytest.fixture
def toy(monkeypatch):
  """A source registered by the test alone: data.name=toy is then valid everywhere."""
  monkeypatch.setitem(data.SOURCES, 'toy', data.Source('toy', _toy_load))


def _toy_config(make_config, **overrides):
  return make_config(**{'data.name': 'toy', 'data.num_validation': 32, 'batch_size': 32, 'num_epochs': 1,
                        'model.hidden_sizes': (16,), 'model.latent_dim': 2, 'eval.batch_size': 64,
                        'eval.num_importance_samples': 4, 'eval.sample_chunk': 4, 'eval.measures': False,
                        **overrides})


def test_a_registered_vector_source_loads_without_labels(toy, make_config):
  del toy
  config = _toy_config(make_config)
  config_lib.validate(config)
  ds = data.load(config)
  assert ds.spec == data.VectorSpec.continuous(TOY_DIMS)
  assert (ds.train.examples.shape, ds.validation.examples.shape, ds.test.examples.shape) == (
      (96, TOY_DIMS), (32, TOY_DIMS), (64, TOY_DIMS))
  assert ds.train.labels is ds.validation.labels is ds.test.labels is None and not ds.has_labels
  assert set(np.unique(ds.test.examples)) <= {0.0, 1.0}  # binarized once, as images are
  assert 'toy' not in data.NUM_CLASSES  # unlabelled: no classes for a conditional model
  with pytest.raises(AttributeError, match='vectors of shape \\(8,\\), not images'):
    ds.image_shape  # pylint: disable=pointless-statement


@pytest.mark.parametrize('overrides', [{}, {'model.likelihood': 'gaussian', 'data.binarize': 'none'}],
                         ids=['bernoulli', 'gaussian'])
def test_a_vector_source_trains_evaluates_and_loads_back(toy, make_config, tmp_path, overrides):
  """The source door: registered in this file alone, through training, `evaluate`, `load_run`, the report
  (its pictures of images skipped, below) and a sweep report."""
  del toy
  config = _toy_config(make_config, **overrides)
  sweep, tmp_path = tmp_path, tmp_path / 'point'
  results = train.train_and_evaluate(config, tmp_path)
  for key in ('elbo_nats', 'nll_nats', 'kl_nats', 'bits_per_dim'):
    assert np.isfinite(results[key]), key
  assert -results['nll_nats'] >= results['elbo_nats']
  if config.model.likelihood == 'bernoulli':  # bits over the vector's 8 entries
    assert results['bits_per_dim'] == pytest.approx(results['nll_nats'] / (TOY_DIMS * np.log(2)))
  assert not (tmp_path / 'samples.png').exists() and not (tmp_path / 'reconstructions.png').exists()
  resolved = checkpoints.read_config(tmp_path).resolved
  assert 'image_shape' not in resolved
  assert data.ExampleSpec.from_json(resolved.example_spec) == data.VectorSpec.continuous(TOY_DIMS)
  run = vae_jax.load_run(tmp_path)  # built from resolved.example_spec
  assert run.spec == data.VectorSpec.continuous(TOY_DIMS) and run.image_shape is None
  x = data.load(config).test.examples[:5]
  log_px = run.log_likelihood(x, jax.random.key(0), num_samples=4)
  assert log_px.shape == (5,) and np.all(np.isfinite(log_px))
  with pytest.raises(plots.NotApplicable, match='shows images; this run.s data are vectors of shape'):
    plots.prior_samples(run, jax.random.key(0))
  evaluated = evaluate_lib.evaluate_run(tmp_path, num_importance_samples=8, split='validation')
  assert evaluated['num_examples'] == 32 and np.isfinite(evaluated['nll_nats'])
  experiment_report.write_report(sweep)  # a one-point sweep: its row holds the run's test figures
  assert f'{results["nll_nats"]:.2f}' in (sweep / experiment_report.RESULTS_MD).read_text()


def test_the_report_of_a_vector_run_skips_the_pictures_of_images(toy, make_config, tmp_path):
  del toy
  train.train_and_evaluate(_toy_config(make_config, **{'model.likelihood': 'gaussian', 'data.binarize': 'none'}),
                           tmp_path)
  text = report.write_report(tmp_path).read_text()
  assert (tmp_path / 'report' / 'training_curves.png').is_file()
  assert not (tmp_path / 'report' / 'prior_samples.png').exists()
  assert 'shows images' in text and 'has no labels' in text


def test_an_unregistered_source_is_refused_with_the_list(make_config):
  config = make_config(**{'data.name': 'toy'})
  with pytest.raises(errors.ConfigError, match='data.name=.toy. is not allowed; use one of mnist, fashion_mnist, '
                     'cifar10, digits'):
    config_lib.validate(config)
  with pytest.raises(errors.ConfigError, match='use one of mnist, fashion_mnist, cifar10, digits'):
    data.load(config)


def test_a_source_in_an_extension_module_is_found_wherever_the_run_is_read(make_config, tmp_path, monkeypatch):
  """config.extensions: the run's own modules, imported before its names are checked and again wherever
  its config.json is read back (evaluate, load_run, the report), so a command-line user needs no edit here."""
  (tmp_path / 'sensors_for_test.py').write_text(
      'import numpy as np\n'
      'from vae_jax import data\n'
      'def load(config):\n'
      '  x = np.random.default_rng(0).random((96, 6)).astype(np.float32)\n'
      "  return data.Loaded((x[:64], None), (x[64:], None), 'made by the test', data.VectorSpec.continuous(6))\n"
      "data.SOURCES['sensors'] = data.Source('sensors', load)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(data, 'SOURCES', dict(data.SOURCES))  # what the module registers goes when the test ends
  config = make_config(**{'data.name': 'sensors', 'data.binarize': 'none', 'model.likelihood': 'gaussian',
                          'data.num_validation': 16, 'batch_size': 16})
  with pytest.raises(errors.ConfigError, match="data.name='sensors' is not allowed"):
    config_lib.validate(config)
  config.extensions = ('sensors_for_test',)
  config_lib.validate(config)
  assert data.load(config).spec == data.VectorSpec.continuous(6)

  del data.SOURCES['sensors'], sys.modules['sensors_for_test']  # a fresh process reading the run back
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / 'config.json').write_text(config.to_json())
  assert checkpoints.read_config(tmp_path / 'run').data.name == 'sensors' and 'sensors' in data.SOURCES
  sys.modules.pop('sensors_for_test')

  config.extensions = ('no_such_module_of_vae_jax',)
  with pytest.raises(errors.ConfigError, match="extensions: module 'no_such_module_of_vae_jax' cannot be imported"):
    config_lib.validate(config)
