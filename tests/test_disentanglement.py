"""The disentanglement scores against exact answers: codes equal to the factors (up to a permutation and a
monotone map) score at the top, mixing them lowers the scores, noise scores at chance; the FactorVAE score
never renders more than CHUNK_IMAGES images at once; the `disentanglement` metric on the metric door."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax.data.factors import Factors
from vae_jax.evaluation import disentanglement as dis
from vae_jax.evaluation import metrics

# A constant factor (dSprites' colour) and three that vary; two of the same size, for the 45-degree mix.
NAMES, SIZES = ('colour', 'shape', 'x', 'y'), (1, 3, 5, 5)
CHANCE = 1 / 3  # BetaVAE / FactorVAE: one of the three varied factors
PERMUTATION = np.array([2, 0, 3, 1])


def render(indices):
  """A 1 x K x 1 image holding the factor indices: encoders below read the factors straight off it."""
  return np.asarray(indices, np.uint8)[:, None, :, None]


FACTORS = Factors(NAMES, SIZES, render)


def read(images):
  return np.asarray(images, np.float64)[:, 0, :, 0]


def monotone(f):
  """A permutation of the codes and a different increasing map of each."""
  f = np.asarray(f, np.float64)[:, PERMUTATION]
  return np.stack([np.exp(0.4 * f[:, 0]), f[:, 1]**3, np.log1p(f[:, 2]), -1.0 / (1.0 + f[:, 3])], axis=1)


def rotation(seed=3):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(SIZES), len(SIZES))))
  return lambda f: (np.asarray(f, np.float64) - np.array(SIZES) / 2) @ q


def mix_x_and_y(f):
  """x and y (same sizes) rotated by 45 degrees, shape kept: which of x, y was fixed cannot be told apart."""
  f = np.asarray(f, np.float64)
  return np.stack([f[:, 0], f[:, 1], f[:, 2] + f[:, 3], f[:, 2] - f[:, 3]], axis=1)


def draw(rng, n):
  return FACTORS.sample(rng, n)


@pytest.fixture(scope='module')
def splits():
  rng = np.random.default_rng(0)
  return draw(rng, 1000), draw(rng, 500)


@pytest.mark.parametrize('codes_of', [lambda f: np.asarray(f, np.float64), monotone], ids=['identity', 'monotone'])
def test_codes_equal_to_the_factors_score_at_the_top(splits, codes_of):
  f_tr, f_te = splits
  c_tr, c_te = codes_of(f_tr), codes_of(f_te)
  # MIG: each factor has one bin per value in its own code (I = H) and ~0 with the others (plug-in bias only)
  assert dis.mig(c_tr, f_tr) > 0.99
  d, c, i = dis.dci(c_tr, f_tr, c_te, f_te)
  assert d > 0.99 and c > 0.99 and i == 1.0
  # SAP, continuous: squared correlation 1 with its own code under the identity, near 1 under a monotone map
  assert dis.sap(c_tr, f_tr, c_te, f_te, continuous=True) > (0.99 if codes_of is not monotone else 0.9)
  # each code is the most informative one of its own factor, and only its own
  m = dis.mutual_information_matrix(c_tr, f_tr)
  perm = PERMUTATION if codes_of is monotone else np.arange(len(SIZES))
  assert np.allclose(m[np.argsort(perm)[1:], [1, 2, 3]], dis.entropy(f_tr)[1:])


def test_a_rotation_lowers_and_noise_zeroes_mig_dci_and_sap(splits):
  f_tr, f_te = splits
  ident = (np.asarray(f_tr, np.float64), np.asarray(f_te, np.float64))
  rot = rotation()
  rotated = (rot(f_tr), rot(f_te))
  rng = np.random.default_rng(1)
  noise = (rng.normal(size=(len(f_tr), 4)), rng.normal(size=(len(f_te), 4)))
  scores = {}
  for name, (c_tr, c_te) in (('identity', ident), ('rotated', rotated), ('noise', noise)):
    scores[name] = (dis.mig(c_tr, f_tr), *dis.dci(c_tr, f_tr, c_te, f_te), dis.sap(c_tr, f_tr, c_te, f_te))
  mig, dci_d, dci_c, dci_i, sap = zip(*scores.values())
  for score in (mig, dci_d, dci_c, sap):
    top, mixed, none = score
    assert top - 0.2 > mixed > none + 0.1, scores
  # noise: nothing of the factors, so MIG, D and C about 0; informativeness the majority-class rate, ~1/size
  assert mig[2] < 0.01 and dci_d[2] < 0.05 and dci_c[2] < 0.05 and sap[2] < 0.03, scores
  assert dci_i[2] == pytest.approx(np.mean([1 / 3, 1 / 5, 1 / 5]), abs=0.05)
  assert dci_i[1] > 0.9  # a rotation loses nothing: the trees still read every factor


def test_sap_with_discrete_factors_tops_out_at_one_less_an_uninformative_codes_accuracy():
  """disentanglement_lib's SAP (discrete factors) is the gap in test accuracy between the best two codes: with
  binary factors each read off its own code, 1 for that code and a coin's 1/2 for the next best."""
  rng = np.random.default_rng(0)
  f = rng.integers(0, 2, (600, 3))
  c = f - 0.5
  matrix = dis.sap_matrix(c[:400], f[:400], c[400:], f[400:])
  assert np.array_equal(np.diag(matrix), np.ones(3)) and np.all(np.abs(matrix[~np.eye(3, dtype=bool)] - 0.5) < 0.1)
  assert dis.sap(c[:400], f[:400], c[400:], f[400:]) == pytest.approx(0.5, abs=0.05)


def test_mi_matrix_and_discretization_match_their_definitions():
  rng = np.random.default_rng(0)
  codes = rng.normal(size=(5000, 2))
  binned = dis.discretize(codes)
  assert binned.min() == 0 and binned.max() == dis.NUM_BINS - 1
  for j in range(2):  # numpy's equal-width histogram, bin by bin
    assert np.array_equal(np.bincount(binned[:, j], minlength=dis.NUM_BINS), np.histogram(codes[:, j], 20)[0])
  from sklearn import metrics as sk_metrics  # pylint: disable=g-import-not-at-top
  f = rng.integers(0, 4, (5000, 1))
  want = sk_metrics.mutual_info_score(f[:, 0], binned[:, 0])
  assert dis.mutual_information_matrix(codes[:, :1], f)[0, 0] == pytest.approx(want, abs=1e-12)
  assert dis.entropy(np.array([[0], [1], [2], [3]]))[0] == pytest.approx(np.log(4))


ENCODERS = {
    'identity': read,
    'monotone': lambda x: monotone(read(x)),
    'mix_x_and_y': lambda x: mix_x_and_y(read(x)),
}


def _sampling_scores(encode, seed=0, **sizes):
  sizes = {'batch_size': 32, 'num_train': 300, 'num_eval': 300, **sizes}
  beta = dis.beta_vae_score(encode, FACTORS, np.random.default_rng(seed), **sizes)
  factor = dis.factor_vae_score(encode, FACTORS, np.random.default_rng(seed), num_variance_estimate=1000, **sizes)
  return beta, factor


@pytest.mark.parametrize('name', ['identity', 'monotone'])
def test_beta_vae_and_factor_vae_scores_are_one_on_the_factors(name):
  assert _sampling_scores(ENCODERS[name]) == (1.0, 1.0)


def test_beta_vae_and_factor_vae_scores_fall_when_factors_mix_and_are_chance_on_noise():
  # x and y mixed at 45 degrees: shape is still told, x and y only by a coin: 1/3 + 1/3 * 1/2 * 2 = 2/3
  beta, factor = _sampling_scores(ENCODERS['mix_x_and_y'], num_eval=1000)
  assert beta == pytest.approx(2 / 3, abs=0.06) and factor == pytest.approx(2 / 3, abs=0.06)
  rng = np.random.default_rng(5)
  beta, factor = _sampling_scores(lambda x: rng.normal(size=(len(x), 4)), num_eval=1000)
  assert beta == pytest.approx(CHANCE, abs=0.06) and factor == pytest.approx(CHANCE, abs=0.06)


def test_factor_vae_score_renders_in_chunks_and_prunes_collapsed_codes(monkeypatch):
  seen = []
  def counting(indices):
    seen.append(len(indices))
    return render(indices)
  monkeypatch.setattr(dis, 'CHUNK_IMAGES', 256)
  counted = Factors(NAMES, SIZES, counting)
  # a fifth code of tiny scale would win every argmin unpruned (its variance is noise of 1e-3)
  rng = np.random.default_rng(0)
  encode = lambda x: np.concatenate([read(x), 1e-3 * rng.normal(size=(len(x), 1))], axis=1)
  score = dis.factor_vae_score(encode, counted, np.random.default_rng(0), batch_size=64, num_train=100,
                               num_eval=100, num_variance_estimate=1000)
  assert score == 1.0
  assert max(seen) <= 256 and sum(seen) == 1000 + 200 * 64
  # every code collapsed: 0, as disentanglement_lib
  assert dis.factor_vae_score(lambda x: np.zeros((len(x), 3)), counted, np.random.default_rng(0), 64, 10, 10,
                              100) == 0.0


# The metric on the metric door, with a model whose encoder reads the factors off the image.

class ReadingModel:
  stochastic = True

  def encode(self, x, y):
    del y
    return jnp.exp(0.3 * x[:, 0, :, 0] * 255.0), None  # the stored codes, decoded to k / 255, read back

  def apply(self, variables, x, y, method):
    del variables
    return method(x, y)


SMALL = {'num_train': 600, 'num_test': 300, 'score_batch_size': 32, 'score_num_train': 600, 'score_num_eval': 100,
         'num_variance_estimate': 500}


def _context(factors=FACTORS, name='toy'):
  config = ml_collections.ConfigDict({'seed': 0, 'data': {'binarize': 'none'},
                                      'eval': {'batch_size': 100, 'metrics': ('disentanglement',),
                                               'disentanglement': SMALL}})
  spec = data.ImageSpec(1, len(SIZES), 1)
  split = data.Split(np.zeros((2, 1, len(SIZES), 1), np.uint8), None, spec)
  dataset = data.Dataset(name, split, split, split, 'made here', spec, factors=factors)
  return metrics.Context(ReadingModel(), {}, config, dataset, jax.random.key(0))


def test_the_disentanglement_metric_reports_seven_figures_and_their_estimators():
  ctx = _context()
  out = metrics.compute(ctx)
  keys = ('beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement', 'dci_completeness',
          'dci_informativeness', 'sap')
  assert list(out)[:7] == list(keys)
  assert out['beta_vae_score'] == 1.0 and out['factor_vae_score'] == 1.0
  assert min(out['mig'], out['dci_disentanglement'], out['dci_completeness']) > 0.95
  assert out['dci_informativeness'] == 1.0 and 0.1 < out['sap'] <= 1.0
  figures = {f.key: f for f in metrics.all_figures()}
  for key in keys:
    assert figures[key].higher_is_better and figures[key].unit in ('fraction', 'score (0 to 1)')
  assert '20 equal-width bins' in out['mig_estimator'] and '600 draws' in out['mig_estimator']
  assert 'GradientBoostingClassifier' in out['dci_estimator'] and 'C=0.01' in out['sap_estimator']
  assert 'std < 0.05' in out['factor_vae_score_estimator'] and '500 images' in out['factor_vae_score_estimator']
  assert out['disentanglement_factors'] == 'colour (1 values), shape (3 values), x (5 values), y (5 values)'
  again = metrics.compute(ctx)  # the metric's key fixes every draw
  assert {k: v for k, v in again.items() if k != 'disentanglement_seconds'} == \
      {k: v for k, v in out.items() if k != 'disentanglement_seconds'}


def test_the_metric_is_refused_in_one_line_on_data_without_factors():
  ctx = _context(factors=None, name='mnist')
  line = 'the disentanglement metric draws images by factor value, and mnist has no factors'
  assert metrics.METRICS['disentanglement'].applies(ctx) == line
  assert metrics.compute(ctx) == {}
  with pytest.raises(errors.DataError, match=line):
    metrics.METRICS['disentanglement'].compute(ctx)


@pytest.mark.parametrize('overrides, message', [
    ({'data.name': 'fashion_mnist'}, 'eval.metrics names disentanglement, which draws images by factor value, but '
                                     'data.name=fashion_mnist has no known factors'),
    ({'eval.disentanglement.score_batch_size': 1}, 'eval.disentanglement.score_batch_size=1 must be an integer >= 2'),
    ({'eval.disentanglement.score_num_eval': 0}, 'eval.disentanglement.score_num_eval=0 must be an integer >= 1'),
])
def test_the_metric_is_refused_at_config_time_on_data_without_factors_or_bad_sizes(overrides, message):
  config = config_lib.base_config()
  config.data.name, config.data.binarize, config.eval.metrics = 'dsprites', 'none', ('disentanglement',)
  config.update_from_flattened_dict(overrides)
  config_lib.validate(config)
  with pytest.raises(errors.ConfigError, match=message):
    metrics.check_config(config)  # where a run starts, before any data is read
