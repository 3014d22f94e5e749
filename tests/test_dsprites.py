"""dSprites rendered from its factors: the published factor order and sizes, known images for known factors,
the same bytes on every run, the variants, and the factors kept row for row through data.load's splits."""

import hashlib

import numpy as np
import pytest

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax.data import rows as rows_lib
from vae_jax.data.factors import Factors
from vae_jax.data.sources import dsprites
from vae_jax.data.sources import tfds as tfds_source

TINY = (3, 2, 5, 3, 3)  # orientation 0, pi/2, pi, 3 pi/2, 2 pi; positions 0, 0.5, 1 (index 1: centred)


def _config(make_config, **overrides):
  return make_config(**{'data.name': 'dsprites', 'data.dsprites_size': 16, 'data.dsprites_factor_sizes': TINY,
                        'data.num_validation': 20, 'batch_size': 10, **overrides})


def _digest(x) -> str:
  return hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=8).hexdigest()


def test_the_published_factors_in_the_original_order():
  images = dsprites.Rendered(dsprites.Sprites())
  factors = dsprites.Sprites().factors()
  assert factors.names == ('shape', 'scale', 'orientation', 'position_x', 'position_y')
  assert factors.sizes == (3, 6, 40, 32, 32) and factors.num_combinations == 737_280
  assert images.shape == (737_280, 64, 64, 1) and images.dtype == np.uint8
  # Row-major, position y fastest, as in dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz without its color factor.
  np.testing.assert_array_equal(factors.unflat([0, 1, 32, 1024, 40 * 1024, 6 * 40 * 1024, 737_279]),
                                [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                                 [0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [2, 5, 39, 31, 31]])
  values = dsprites.Sprites().values()
  np.testing.assert_allclose(values[1], np.linspace(0.5, 1, 6))
  np.testing.assert_allclose(values[2], np.linspace(0, 2 * np.pi, 40))
  np.testing.assert_allclose(values[3], np.linspace(0, 1, 32))
  rows = np.array([737_279, 5, 300_000])
  np.testing.assert_array_equal(images[rows], dsprites.Sprites().render(factors.unflat(rows)))


def test_a_centred_square_of_scale_one_is_the_square_of_its_half_extent():
  # Pixel j is on when its centre j + 0.5 is within HALF_EXTENT * 64 = 9.6 of the centre 32: j = 22..41.
  square = dsprites.Sprites(64, (3, 6, 40, 3, 3)).render([[0, 5, 0, 1, 1]])[0, ..., 0]
  expected = np.zeros((64, 64), np.uint8)
  expected[22:42, 22:42] = 1
  np.testing.assert_array_equal(square, expected)
  small = dsprites.Sprites(16, TINY).render([[0, 1, 0, 1, 1]])[0, ..., 0]  # 2.4 of 8: j = 6..9
  assert small.sum() == 16 and small[6:10, 6:10].all()


def test_turns_by_quarter_turns_are_the_exact_rotations():
  sprites = dsprites.Sprites(16, TINY)
  factors = sprites.factors()
  every = factors.unflat(np.arange(factors.num_combinations))
  turned = lambda idx, k: np.where(np.arange(5) == 2, k, idx)
  at = lambda k: sprites.render(turned(every, k))
  np.testing.assert_array_equal(at(4), at(0))  # 2 pi is 0
  squares = every[:, 0] == 0
  np.testing.assert_array_equal(at(1)[squares], at(0)[squares])  # a square turned by 2 pi / 4 is the square
  centred = np.array([[s, 1, 0, 1, 1] for s in range(3)])
  upright = sprites.render(centred)[..., 0]
  np.testing.assert_array_equal(sprites.render(turned(centred, 2))[..., 0], np.rot90(upright, 2, axes=(1, 2)))
  np.testing.assert_array_equal(sprites.render(turned(centred, 1))[1, ..., 0], upright[1].T)  # the ellipse upright
  assert upright[1].sum(axis=1).max() > upright[1].sum(axis=0).max()  # at orientation 0 it lies along x


def test_windowed_rendering_equals_testing_every_pixel():
  sprites = dsprites.Sprites()
  indices = sprites.factors().sample(np.random.default_rng(0), 1000)
  masks = sprites._masks  # pylint: disable=protected-access
  np.testing.assert_array_equal(masks(indices), masks(indices, window=False))


@pytest.mark.parametrize('variant,digest', [('binary', '00c88268737fd3cc'), ('color', '9fe0628492b6cc7f'),
                                            ('noisy', 'ac1215848a34353b')])
def test_the_same_bytes_on_every_run_and_machine(variant, digest):
  images = dsprites.Rendered(dsprites.Sprites(16, TINY, variant))
  assert _digest(np.asarray(images)) == digest  # pinned: a change of the images is a change of the dataset
  rows = np.random.default_rng(1).permutation(len(images))[:50]
  np.testing.assert_array_equal(images[rows], np.asarray(images)[rows])  # any rows, in any order


def test_the_variants_channels_and_values():
  factors = dsprites.Sprites(16, TINY).factors()
  rows = np.arange(factors.num_combinations)
  binary = np.asarray(dsprites.Rendered(dsprites.Sprites(16, TINY)))
  assert binary.shape[-1] == 1 and set(np.unique(binary)) == {0, 1}
  assert dsprites.Sprites(16, TINY).spec == data.ImageSpec(16, 16, 1, levels=2)
  sprite = binary[..., 0] == 1
  color = np.asarray(dsprites.Rendered(dsprites.Sprites(16, TINY, 'color')))
  assert color.shape[-1] == 3 and (color[~sprite] == 0).all() and (color[sprite] >= 128).all()
  for i in rows[sprite.any(axis=(1, 2))][:20]:  # one colour a sprite, each channel in [0.5, 1]
    assert len(np.unique(color[i][sprite[i]], axis=0)) == 1
  assert len(np.unique(color[sprite], axis=0)) > 100  # and a different one for each image
  noisy = np.asarray(dsprites.Rendered(dsprites.Sprites(16, TINY, 'noisy')))
  assert noisy.shape[-1] == 3 and (noisy[sprite] == 255).all()
  background = noisy[~sprite].astype(np.float64)
  assert background.min() == 0 and background.max() == 255 and abs(background.mean() - 127.5) < 2
  assert abs(np.corrcoef(background[:-1, 0], background[1:, 0])[0, 1]) < 0.02  # independent pixel to pixel


def test_factors_travel_with_the_examples_through_every_split(make_config):
  config = _config(make_config, **{'data.num_train': 200})
  ds = data.load(config)
  assert ds.factors.names == dsprites.NAMES and ds.factors.sizes == TINY and not ds.has_labels
  splits = (ds.train, ds.validation, ds.test)
  assert [len(s.examples) for s in splits] == [len(s.factors) for s in splits] == [200, 20, 27]
  for split in splits:
    assert split.factors.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(split.examples), ds.factors.render(split.factors))
  # One permutation of the split seed draws test, validation and the num_train subset: none is an end of the
  # factor order (which would leave, say, the last shape's largest sprites out of training).
  order = np.random.default_rng(config.data.split_seed).permutation(270)
  np.testing.assert_array_equal(ds.factors.flat(ds.test.factors), np.sort(order[:27]))
  np.testing.assert_array_equal(ds.factors.flat(ds.validation.factors), np.sort(order[27:47]))
  np.testing.assert_array_equal(ds.factors.flat(ds.train.factors), np.sort(order[47:247]))
  assert data.load(_config(make_config)).train.factors is not None
  assert data.load(make_config()).train.factors is None  # digits: no factors


def test_the_published_set_loads_without_rendering_it(make_config):
  ds = data.load(make_config(**{'data.name': 'dsprites', 'data.binarize': 'none'}))
  lengths = [len(s.factors) for s in (ds.train, ds.validation, ds.test)]
  assert lengths == [663_352, 200, 73_728]  # tiny_config holds out 200 for validation
  assert not rows_lib.in_memory(ds.train.examples) and ds.spec == data.ImageSpec(64, 64, 1, levels=2)
  rows = np.array([0, 123_456, 663_351])
  np.testing.assert_array_equal(ds.train.examples[rows], ds.factors.render(ds.train.factors[rows]))


def test_fixed_shares_factor_k_and_draws_the_rest():
  factors = dsprites.Sprites().factors()
  rng = np.random.default_rng(0)
  for k in range(factors.num_factors):
    drawn = factors.fixed(rng, 500, k)
    assert drawn.shape == (500, 5) and drawn.dtype == np.int32
    assert len(np.unique(drawn[:, k])) == 1
    assert all(len(np.unique(drawn[:, other])) > 1 for other in set(range(5)) - {k})
    assert ((drawn >= 0) & (drawn < np.asarray(factors.sizes))).all()
  shared = [factors.fixed(rng, 2, 2)[0, 2] for _ in range(400)]
  assert len(set(shared)) == 40  # the shared value itself is drawn over all 40
  sampled = factors.sample(rng, 20_000)
  np.testing.assert_allclose(np.bincount(sampled[:, 0]) / 20_000, [1 / 3] * 3, atol=0.02)
  np.testing.assert_array_equal(factors.unflat(factors.flat(sampled)), sampled)
  with pytest.raises(ValueError, match='factor 5 of 5'):
    factors.fixed(rng, 2, 5)


def test_bad_settings_are_refused_in_one_line(make_config):
  with pytest.raises(errors.ConfigError, match='data.variant=.*not a dsprites variant'):
    config_lib.validate(_config(make_config, **{'data.variant': 'scream'}))
  with pytest.raises(errors.ConfigError, match='data.dsprites_factor_sizes'):
    config_lib.validate(_config(make_config, **{'data.dsprites_factor_sizes': (3, 7, 40, 32, 32)}))
  with pytest.raises(errors.ConfigError, match='data.variant=.*not of digits'):
    config_lib.validate(make_config(**{'data.variant': 'color'}))
  with pytest.raises(errors.ConfigError, match='data.image_size'):
    data.load(_config(make_config, **{'data.image_size': (8, 8)}))
  with pytest.raises(ValueError, match='position_x, which has 3 values'):
    dsprites.Sprites(16, TINY).render([[0, 0, 0, 3, 0]])
  config_lib.validate(_config(make_config, **{'data.variant': 'noisy'}))


def test_a_source_with_its_own_test_split_keeps_its_factors_and_bad_indices_are_refused(make_config, monkeypatch):
  sprites = dsprites.Sprites(16, TINY)
  factors = sprites.factors()
  every = factors.unflat(np.arange(factors.num_combinations))
  train, test = every[:200], every[200:]

  def load(config, indices=(train, test)):
    del config
    return data.Loaded((sprites.render(train), None), (sprites.render(test), None), 'made by the test', sprites.spec,
                       factors=factors, train_factors=indices[0], test_factors=indices[1])

  monkeypatch.setitem(data.SOURCES, 'made', data.Source('made', load))
  ds = data.load(make_config(**{'data.name': 'made', 'data.num_validation': 20}))
  np.testing.assert_array_equal(ds.test.factors, test)
  np.testing.assert_array_equal(ds.validation.factors, train[180:])
  bad = train.copy()
  bad[3, 2] = 5
  monkeypatch.setitem(data.SOURCES, 'made', data.Source('made', lambda c: load(c, (bad, test))))
  with pytest.raises(errors.DataError, match='row 3 has index 5 of factor orientation, which has 5 values'):
    data.load(make_config(**{'data.name': 'made', 'data.num_validation': 20}))
  monkeypatch.setitem(data.SOURCES, 'made', data.Source('made', lambda c: load(c, (train, None))))
  with pytest.raises(errors.DataError, match='70 examples but no rows of factor indices'):
    data.load(make_config(**{'data.name': 'made', 'data.num_validation': 20}))


def test_a_run_on_factors_writes_its_representation_metric_and_pictures(make_config, tmp_path):
  """End to end on tiny sprites: eval.json gets the seven scores, representation.npz the test means and
  factors (and the MI matrix recomputed from them), TensorBoard the traversal and the MI matrix."""
  from vae_jax.evaluation import disentanglement as dis  # pylint: disable=g-import-not-at-top
  from vae_jax.training import train  # pylint: disable=g-import-not-at-top
  small = {'num_train': 200, 'num_test': 100, 'score_batch_size': 8, 'score_num_train': 50, 'score_num_eval': 20,
           'num_variance_estimate': 100}
  config = _config(make_config, **{'num_epochs': 1, 'data.binarize': 'none', 'eval.measures': True,
                                   'eval.metrics': ('disentanglement',),
                                   **{f'eval.disentanglement.{k}': v for k, v in small.items()}})
  results = train.train_and_evaluate(config, tmp_path)
  for key in ('beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement', 'dci_completeness',
              'dci_informativeness', 'sap'):
    assert 0.0 <= results[key] <= 1.0, key
  assert '200 draws' in results['mig_estimator']
  saved = np.load(tmp_path / 'representation.npz')
  ds = data.load(config)
  np.testing.assert_array_equal(saved['factors'], ds.test.factors)
  assert saved['means'].shape == (len(ds.test.examples), config.model.latent_dim)
  assert list(saved['factor_names']) == list(dsprites.NAMES) and tuple(saved['factor_sizes']) == TINY
  np.testing.assert_allclose(saved['mutual_information_nats'],
                             dis.mutual_information_matrix(saved['means'], saved['factors']), rtol=1e-6)
  events = b''.join(p.read_bytes() for p in tmp_path.glob('events.out.tfevents.*'))  # tags are stored as text
  assert b'pictures/latent_traversal' in events and b'pictures/mutual_information' in events
  from vae_jax.viz import report  # pylint: disable=g-import-not-at-top
  text = report.write_report(tmp_path).read_text()
  assert '![Latents and factors](mutual_information.png)' in text and '![Latent traversal]' in text
  assert (tmp_path / 'report' / 'mutual_information.png').stat().st_size > 0


@pytest.mark.parametrize('name, channels', [('dsprites', 1), ('shapes3d', 3)])
def test_tfds_sets_of_factors_carry_them_and_draw_images_by_value(make_config, monkeypatch, name, channels):
  """TFDS's dsprites and shapes3d (faked: no download here), their rows in any order: every split keeps each
  image's factor indices, and `render` draws the image of any factor values from the loaded set."""
  features = [f for _, f in tfds_source.FACTOR_FEATURES[name]]
  sizes = (3, 2, 2, 2, 2) + ((2,) if name == 'shapes3d' else ())
  factors = Factors(tuple(features), sizes, lambda idx: idx)
  rows = np.random.default_rng(0).permutation(factors.num_combinations)  # TFDS's order is its own
  indices = factors.unflat(rows)
  images = np.zeros((len(rows), 8, 8, channels), np.uint8)
  images[np.arange(len(rows)), rows % 8, rows // 8 % 8] = 1 if name == 'dsprites' else 200  # one per combination
  monkeypatch.setattr(tfds_source, 'read_factors', lambda n, d, f: (images, indices, sizes))
  assert data.find(f'tfds:{name}').has_factors and not data.find('tfds:mnist').has_factors
  ds = data.load(make_config(**{'data.name': f'tfds:{name}', 'data.binarize': 'none', 'data.num_validation': 4,
                                'batch_size': 4}))
  assert ds.factors.names == tuple(n for n, _ in tfds_source.FACTOR_FEATURES[name]) and ds.factors.sizes == sizes
  for split in (ds.train, ds.validation, ds.test):
    np.testing.assert_array_equal(ds.factors.render(split.factors), np.asarray(split.examples))
  assert ds.spec.levels == (2 if name == 'dsprites' else 256)
  monkeypatch.setattr(tfds_source, 'read_factors', lambda n, d, f: (images[1:], indices[1:], sizes))
  with pytest.raises(errors.DataError, match=f'tfds:{name} has {len(rows) - 1} images for {len(rows)} '
                                             'combinations of its factors .* not each once'):
    data.load(make_config(**{'data.name': f'tfds:{name}', 'data.binarize': 'none'}))
