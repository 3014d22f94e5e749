"""Your own data: .npy/.npz arrays, image folders, any TFDS dataset, arrays from a notebook; the stored uint8
form; and the one-line refusals of bad data."""

import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from vae_jax import data
from vae_jax import errors
from vae_jax import models
from vae_jax.data import rows as rows_lib
from vae_jax.data.sources import tfds as tfds_source
from vae_jax.training import train


def _images(n=60, h=8, w=8, c=None, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, h, w) if c is None else (n, h, w, c), dtype=np.uint8)


def _config(make_config, **overrides):
  return make_config(**{'data.num_validation': 10, 'batch_size': 10, 'data.binarize': 'none',
                        'model.likelihood': 'gaussian', **overrides})


def test_decoding_on_the_device_equals_decoding_on_the_host():
  for levels in (2, 17, 256):
    spec = data.ImageSpec(1, 1, 1, levels)
    codes = np.arange(levels, dtype=np.uint8)
    host = spec.decode(codes)
    np.testing.assert_array_equal(host, (codes / np.float32(levels - 1)).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(jax.jit(spec.decode)(jnp.asarray(codes))), host)


def test_npy_file_is_memory_mapped_and_a_test_split_is_held_out_by_the_split_seed(make_config, tmp_path):
  x = _images(100)
  np.save(tmp_path / 'x.npy', x)
  config = _config(make_config, **{'data.name': 'array', 'data.path': str(tmp_path / 'x.npy')})
  ds = data.load(config)
  assert ds.spec == data.ImageSpec(8, 8, 1) and not ds.has_labels
  assert (len(ds.train.examples), len(ds.validation.examples), len(ds.test.examples)) == (80, 10, 10)
  assert not rows_lib.in_memory(ds.train.examples)  # a selection of the memory map, read when batched
  held = np.random.default_rng(0).permutation(100)[:10]
  np.testing.assert_array_equal(np.asarray(ds.test.examples)[..., 0], x[np.sort(held)])
  np.testing.assert_array_equal(ds.test.images, np.asarray(ds.test.examples) / np.float32(255))
  config.data.split_seed = 1
  assert not np.array_equal(np.asarray(data.load(config).test.examples), np.asarray(ds.test.examples))


@pytest.mark.parametrize('save', [np.savez, np.savez_compressed])
def test_npz_with_labels_and_a_test_split(make_config, tmp_path, save):
  x, y, xt, yt = _images(50, c=3), np.arange(50) % 4, _images(20, c=3, seed=1), np.arange(20) % 4
  save(tmp_path / 'd.npz', x_train=x, y_train=y, x_test=xt, y_test=yt)
  ds = data.load(_config(make_config, **{'data.name': 'array', 'data.path': str(tmp_path / 'd.npz')}))
  assert ds.spec == data.ImageSpec(8, 8, 3) and ds.has_labels
  np.testing.assert_array_equal(np.asarray(ds.test.examples), xt)
  np.testing.assert_array_equal(ds.test.labels, yt)
  np.testing.assert_array_equal(np.asarray(ds.train.examples), x[:40])
  mapped = save is np.savez  # stored members are mapped; compressed ones are read whole
  assert rows_lib.in_memory(ds.test.examples) != mapped


def test_float_images_become_uint8_codes_when_they_are_8_bit(make_config, tmp_path):
  x = _images(40)
  np.save(tmp_path / 'f.npy', (x / 255.0).astype(np.float32))
  ds = data.load(_config(make_config, **{'data.name': 'array', 'data.path': str(tmp_path / 'f.npy')}))
  assert ds.train.examples.dtype == np.uint8
  continuous = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
  np.save(tmp_path / 'c.npy', continuous)
  ds = data.load(_config(make_config, **{'data.name': 'array', 'data.path': str(tmp_path / 'c.npy')}))
  assert ds.train.examples.dtype == np.float32  # other floats are kept as they are


def _bad(name, x, **more):
  return name, dict(x_train=x, **more)


@pytest.mark.parametrize('arrays, message', [
    (dict(x_train=np.full((20, 4, 4), np.nan, np.float32)), 'non-finite value'),
    (dict(x_train=np.full((20, 4, 4), np.inf, np.float32)), 'non-finite value'),
    (dict(x_train=np.full((20, 4, 4), 1.5, np.float32)), r'value 1\.5 at image 0, outside \[0, 1\]'),
    (dict(x_train=np.zeros((20, 4, 4), np.int16)), 'int16 images; give uint8'),
    (dict(x_train=np.zeros((20, 4), np.uint8)), r'shape \(20, 4\); images are'),
    (dict(x_train=np.zeros((20, 4, 4), np.uint8), y_train=np.zeros(19, np.int64)), '19 labels .* for 20 examples'),
    (dict(x_train=np.zeros((20, 4, 4), np.uint8), y_train=np.zeros(20, np.float32)), 'labels are class indices'),
    (dict(x_train=np.zeros((20, 4, 4), np.uint8), x_test=np.zeros((5, 5, 5), np.uint8)), 'both splits need one shape'),
    (dict(x_train=np.zeros((20, 4, 4), np.uint8), extra=np.zeros(3)), "'extra', which vae_jax does not read"),
])
def test_bad_arrays_are_refused_in_one_line(make_config, tmp_path, arrays, message):
  np.savez(tmp_path / 'bad.npz', **arrays)
  with pytest.raises(errors.DataError, match=message) as caught:
    data.load(_config(make_config, **{'data.name': 'array', 'data.path': str(tmp_path / 'bad.npz')}))
  assert '\n' not in str(caught.value)


def test_bad_data_from_the_command_line_exits_2_and_writes_nothing(tmp_path):
  np.save(tmp_path / 'nan.npy', np.full((20, 4, 4), np.nan, np.float32))
  workdir = tmp_path / 'run'
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.main', '--config=configs/digits.py', f'--workdir={workdir}',
                         '--config.data.name=array', f'--config.data.path={tmp_path / "nan.npy"}'],
                        capture_output=True, text=True, cwd=pathlib.Path(__file__).parents[1], check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'non-finite value' in proc.stderr and not workdir.exists()


def _folder(root: pathlib.Path, classes=('cat', 'dog'), n=6, size=(10, 12), mode='L'):
  rng = np.random.default_rng(0)
  for c in classes:
    (root / c).mkdir(parents=True)
    for i in range(n):
      shape = (size[1], size[0]) if mode == 'L' else (size[1], size[0], 3)
      Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f'{i}.png')


def test_image_folder_with_class_subfolders(make_config, tmp_path):
  _folder(tmp_path / 'pics', n=10)
  ds = data.load(_config(make_config, **{'data.name': 'image_folder', 'data.path': str(tmp_path / 'pics'),
                                         'data.num_validation': 2, 'batch_size': 2}))
  assert ds.spec == data.ImageSpec(12, 10, 1)
  assert sorted(np.unique(np.concatenate([ds.train.labels, ds.validation.labels, ds.test.labels]))) == [0, 1]
  first = np.asarray(Image.open(tmp_path / 'pics' / 'cat' / '0.png'))
  everything = np.concatenate([np.asarray(s.examples) for s in (ds.train, ds.validation, ds.test)])
  assert any(np.array_equal(im[..., 0], first) for im in everything)  # pixels as stored in the file


def test_image_folder_resizes_and_crops_to_image_size_and_reads_colour(make_config, tmp_path):
  _folder(tmp_path / 'pics', classes=('a',), size=(20, 30), mode='RGB')
  Image.fromarray(np.zeros((16, 16), np.uint8), 'L').save(tmp_path / 'pics' / 'a' / 'grey.png')
  ds = data.load(_config(make_config, **{'data.name': 'image_folder', 'data.path': str(tmp_path / 'pics'),
                                         'data.image_size': (8, 8), 'data.num_validation': 1, 'batch_size': 2}))
  assert ds.spec == data.ImageSpec(8, 8, 3)  # one colour file makes every image RGB


@pytest.mark.parametrize('layout, message', [
    ('mixed', r'different sizes \(0\.png is 10x12, odd\.png is 9x9\); set --config\.data\.image_size'),
    ('corrupt', r'broken\.png is not an image Pillow can read'),
    ('empty', 'holds no images'),
])
def test_bad_image_folders_are_refused_in_one_line(make_config, tmp_path, layout, message):
  root = tmp_path / 'pics'
  if layout == 'empty':
    root.mkdir()
  else:
    _folder(root, classes=('a',))
    if layout == 'mixed':
      Image.fromarray(np.zeros((9, 9), np.uint8), 'L').save(root / 'a' / 'odd.png')
    else:
      (root / 'a' / 'broken.png').write_bytes(b'not a png at all')
  with pytest.raises(errors.DataError, match=message):
    data.load(_config(make_config, **{'data.name': 'image_folder', 'data.path': str(root)}))


def test_any_tfds_dataset_by_name(make_config, monkeypatch):
  calls = []

  def read_split(name, split, data_dir, image_size):
    calls.append((name, split, image_size))
    return None if split == 'test' else (_images(30, 16, 16, 3), None)

  monkeypatch.setattr(tfds_source, '_tfds', lambda: (_ for _ in ()).throw(ImportError('tensorflow')))
  with pytest.raises(errors.DataError, match="dataset 'svhn_cropped' not found .*pip install"):
    data.load(_config(make_config, **{'data.name': 'tfds:svhn_cropped'}))
  monkeypatch.setattr(tfds_source, 'read_split', read_split)
  ds = data.load(_config(make_config, **{'data.name': 'tfds:celeb_a', 'data.num_validation': 3}))
  assert calls == [('celeb_a', 'train', (64, 64)), ('celeb_a', 'test', (64, 64))]  # celeb_a's usual 64x64
  assert ds.spec == data.ImageSpec(16, 16, 3) and len(ds.test.examples) == 3  # no test split: 10% held out
  with pytest.raises(errors.ConfigError, match='tfds:NAME'):
    data.find('tfds:')


def test_num_train_takes_the_first_examples(make_config):
  full = data.load(_config(make_config))
  few = data.load(_config(make_config, **{'data.num_train': 50}))
  np.testing.assert_array_equal(few.train.examples, full.train.examples[:50])
  np.testing.assert_array_equal(few.validation.examples, full.validation.examples)
  with pytest.raises(errors.DataError, match='data.num_train=5000 is more than'):
    data.load(_config(make_config, **{'data.num_train': 5000}))


def test_a_conv_model_refuses_images_smaller_than_its_halvings(make_config):
  config = _config(make_config, **{'model.encoder': 'conv', 'model.hidden_sizes': (4, 4, 4, 4)})
  with pytest.raises(errors.ConfigError, match='halves the image 4 times .* at least 16x16; these are 8x8'):
    models.make(config, data.ImageSpec(8, 8, 1))


def test_notebook_arrays_train_record_their_fingerprint_and_refuse_other_data(make_config, tmp_path):
  config = _config(make_config, **{'num_epochs': 1, 'eval.measures': False, 'eval.num_importance_samples': 2})
  x = _images(60)
  results = train.train_and_evaluate(config, tmp_path / 'run', dataset=x)
  assert np.isfinite(results['nll_nats'])
  resolved = json.loads((tmp_path / 'run' / 'config.json').read_text())['resolved']
  assert resolved['data_source'] == data.NOTEBOOK_SOURCE
  assert resolved['data_fingerprint'] == rows_lib.fingerprint(x[..., None], None, None, None)
  assert train.train_and_evaluate(config, tmp_path / 'run', dataset=x) == results  # the same data: finished
  with pytest.raises(errors.WorkdirError, match='trained on other data'):
    train.train_and_evaluate(config, tmp_path / 'run', dataset=_images(60, seed=1))


def test_a_streamed_image_folder_stays_on_disk_and_reads_the_same_pixels(make_config, tmp_path):
  _folder(tmp_path / 'pics', n=10)
  config = _config(make_config, **{'data.name': 'image_folder', 'data.path': str(tmp_path / 'pics'),
                                   'data.num_validation': 2, 'batch_size': 2})
  held = data.load(config)
  config.data.feed = 'stream'
  lazy = data.load(config)
  assert not rows_lib.in_memory(lazy.train.examples) and rows_lib.in_memory(held.train.examples)
  for split in ('train', 'validation', 'test'):
    np.testing.assert_array_equal(np.asarray(getattr(lazy, split).examples), getattr(held, split).examples)
  np.testing.assert_array_equal(lazy.train.examples[np.array([3, 1])], held.train.examples[[3, 1]])
  assert lazy.fingerprint == held.fingerprint  # streaming changes no run's record of its data


def test_a_cvae_trains_on_your_own_labelled_arrays(make_config, tmp_path):
  x, y = _images(60), np.arange(60) % 3
  config = _config(make_config, **{'num_epochs': 1, 'eval.measures': False, 'eval.num_importance_samples': 2,
                                   'model.kind': 'cvae'})
  with pytest.raises(errors.ConfigError, match='set model.num_classes=K'):
    train.train_and_evaluate(config, tmp_path / 'none', dataset=dict(x_train=x, y_train=y))
  config.model.num_classes = 2
  with pytest.raises(errors.DataError, match='label 2, but the model has 2 classes'):
    train.train_and_evaluate(config, tmp_path / 'two', dataset=dict(x_train=x, y_train=y))
  config.model.num_classes = 3
  results = train.train_and_evaluate(config, tmp_path / 'three', dataset=dict(x_train=x, y_train=y))
  assert np.isfinite(results['nll_nats'])


def test_binarizing_in_chunks_draws_what_one_draw_of_the_split_does(make_config, monkeypatch):
  config = make_config()
  whole = data.load(config)
  monkeypatch.setattr(data, '_BINARIZE_CHUNK_ROWS', 7)
  chunked = data.load(config)
  np.testing.assert_array_equal(chunked.test.examples, whole.test.examples)
  grey = data.load(_config(make_config)).test.decoded()
  np.testing.assert_array_equal(whole.test.images, data.binarize(grey, config.eval.binarization_seed + 1))
