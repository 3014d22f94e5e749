"""Tables: the `table` source (CSV and .npz, types inferred or declared, missing values), the Column's way back
to the data's units and its JSON, the `table` likelihood against scipy in the data's units, the encoder's
one-hot input, and a short run that writes the `table` metric's figures and samples.csv."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import special
from scipy import stats

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import models
from vae_jax.data.sources import table
from vae_jax.evaluation.metrics import table as table_metric
from vae_jax.models import blocks
from vae_jax.models import likelihoods
from vae_jax.training import train

COLUMNS = (data.Column('income', mean=3.0, std=2.0, low=-1.0, high=9.0, decimals=2),
           data.Column('smoker', 'binary', categories=('no', 'yes')),
           data.Column('city', 'categorical', categories=('Lyon', 'Oslo', 'Rome')),
           data.Column('visits', mean=1.5, std=0.5, low=0.0, high=4.0, decimals=0))
SPEC = data.VectorSpec(COLUMNS)


def _config(make_config, path, **overrides):
  return make_config(**{'data.name': 'table', 'data.path': str(path), 'data.binarize': 'none',
                        'data.num_validation': 0, 'data.test_fraction': 0.25, 'model.likelihood': 'table',
                        'batch_size': 8, **overrides})


def _write(tmp_path, frame, name='t.csv'):
  path = tmp_path / name
  frame.to_csv(path, index=False)
  return path


def _mixed_frame(n=40, seed=0):
  rng = np.random.default_rng(seed)
  return pd.DataFrame({'height': rng.normal(170, 10, n).round(1), 'owner': rng.integers(0, 2, n),
                       'colour': rng.choice(['red', 'green', 'blue'], n), 'rating': rng.integers(1, 6, n),
                       'flag': rng.random(n) < 0.5})


# The Column: back to the data's units, and through JSON.

def test_spec_json_round_trip_keeps_what_a_table_needs():
  """Through JSON text and the ConfigDict a run's config.json is read back into: categories (strings, numbers,
  booleans), the standardization, range and decimals."""
  spec = data.VectorSpec(COLUMNS + (data.Column('member', 'binary', categories=(False, True)),
                                    data.Column('share', mean=0.1, std=0.3, atoms=(0, 1)),
                                    data.Column('size', 'categorical', categories=(1, 2.5, 4))))
  text = json.dumps(spec.to_json())
  assert data.ExampleSpec.from_json(json.loads(text)) == spec
  config = config_lib.with_defaults({'resolved': {'example_spec': json.loads(text)}})
  back = data.ExampleSpec.from_json(config.resolved.example_spec)
  assert back == spec and back.columns[2].categories == ('Lyon', 'Oslo', 'Rome')
  assert back.one_hot == (0, 0, 3, 0, 0, 0, 3) and back.columns[5].atoms == (0.0, 1.0)
  assert back.log_std == pytest.approx(math.log(2.0) + math.log(0.5) + math.log(0.3))


def test_rows_go_to_the_stored_form_and_back():
  frame = pd.DataFrame({'income': [1.25, 7.5, 3.0], 'smoker': ['yes', 'no', 'yes'], 'city': ['Rome', 'Lyon', 'Oslo'],
                        'visits': [0, 4, 2]})
  rows = SPEC.from_frame(frame)
  np.testing.assert_allclose(rows, [[-0.875, 1, 2, -3], [2.25, 0, 0, 5], [0, 1, 1, 1]])
  assert rows.dtype == np.float32
  pd.testing.assert_frame_equal(SPEC.to_frame(rows), frame)
  # Samples are clipped to the train split's range and rounded to the data's decimals; codes clipped to a category.
  sampled = SPEC.to_frame(np.array([[9.0, 0.7, 5.0, 1.4]], np.float32), clip=True)
  assert sampled.iloc[0].tolist() == [9.0, 'yes', 'Rome', 2]
  assert SPEC.to_frame(np.array([[9.0, 0.0, 0.0, 0.0]]))['income'][0] == 21.0  # not clipped: real rows
  with pytest.raises(ValueError, match="column 'city' has the value 'Paris', which is not one of its categories"):
    SPEC.from_frame(frame.assign(city=['Paris', 'Rome', 'Rome']))


def test_a_value_stored_a_hair_off_comes_back_exactly():
  """float32 keeps about 7 digits: a 0 stored as -3e-9 must read 0 (SDMetrics' KS test sees every tie)."""
  column = data.Column('share', mean=0.12, std=0.32)
  stored = column.encode([0.0, 0.144292, 1.0]).astype(np.float32)
  assert column.decode(stored).tolist() == [0.0, 0.144292, 1.0]


def test_columns_refuse_what_they_cannot_be():
  with pytest.raises(ValueError, match='has 3 categories; it takes 2'):
    data.Column('smoker', 'binary', categories=('a', 'b', 'c'))
  with pytest.raises(ValueError, match='are for continuous columns'):
    data.Column('smoker', 'binary', mean=1.0)
  with pytest.raises(ValueError, match='std=0.0; it must be > 0'):
    data.Column('x', std=0.0)


# The source.

def test_csv_types_inferred_and_logged(tmp_path, make_config):
  frame = _mixed_frame()
  ds = data.load(_config(make_config, _write(tmp_path, frame)))
  spec = ds.spec
  assert [(c.name, c.type) for c in spec.columns] == [
      ('height', 'continuous'), ('owner', 'binary'), ('colour', 'categorical'), ('rating', 'categorical'),
      ('flag', 'binary')]
  assert spec.columns[2].categories == ('blue', 'green', 'red') and spec.columns[4].categories == (False, True)
  assert spec.columns[0].decimals == 1 and spec.columns[3].categories == (1, 2, 3, 4, 5)
  assert (len(ds.train.examples), len(ds.test.examples)) == (30, 10)
  # The standardization is the train split's alone.
  train = spec.to_frame(ds.train.examples)
  assert spec.columns[0].mean == pytest.approx(train['height'].mean())
  assert spec.columns[0].std == pytest.approx(train['height'].std(ddof=0))
  # Every row comes back, in the data's units: train and test are a partition of the file's rows.
  order = lambda f: f.sort_values(list(f.columns), ignore_index=True)
  pd.testing.assert_frame_equal(order(pd.concat([train, spec.to_frame(ds.test.examples)])), order(frame),
                                check_dtype=False)


def test_npz_of_columns_and_declared_types(tmp_path, make_config):
  rng = np.random.default_rng(1)
  path = tmp_path / 't.npz'
  np.savez(path, age=rng.integers(18, 90, 40), city=rng.choice(['a', 'b', 'c'], 40), scores=rng.random((40, 2)))
  config = _config(make_config, path, **{'data.columns': ('age:continuous', 'scores1:categorical')})
  spec = data.load(config).spec
  assert [(c.name, c.type) for c in spec.columns] == [
      ('age', 'continuous'), ('city', 'categorical'), ('scores0', 'continuous'), ('scores1', 'categorical')]
  assert spec.columns[0].decimals == 0 and spec.columns[3].num_categories == 40


def test_the_delimiter_is_sniffed(tmp_path, make_config):
  (tmp_path / 't.csv').write_text("'a';'b'\n" + ''.join(f'{i};{i % 2}\n' for i in range(20)))
  spec = data.load(_config(make_config, tmp_path / 't.csv')).spec
  assert [(c.name, c.type) for c in spec.columns] == [('a', 'continuous'), ('b', 'binary')]


def test_missing_values_are_refused_with_row_and_column_or_dropped(tmp_path, make_config):
  frame = _mixed_frame().astype({'rating': float})
  frame.loc[6, 'rating'] = np.nan
  frame.loc[9, 'colour'] = None
  path = _write(tmp_path, frame)
  with pytest.raises(errors.DataError) as info:
    data.load(_config(make_config, path))
  message = str(info.value)
  assert "column 'rating' has no value in row 7" in message and '2 rows miss a value' in message
  assert 'data.missing=drop' in message and '\n' not in message
  ds = data.load(_config(make_config, path, **{'data.missing': 'drop'}))
  assert len(ds.train.examples) + len(ds.test.examples) == 38


def test_infinite_values_are_refused(tmp_path, make_config):
  frame = _mixed_frame()
  frame.loc[3, 'height'] = np.inf
  with pytest.raises(errors.DataError, match="column 'height' holds inf in row 4"):
    data.load(_config(make_config, _write(tmp_path, frame)))


@pytest.mark.parametrize('columns, error, match', [
    (('owner:binary', 'rating:binary'), errors.DataError,
     "column 'rating' is declared binary but takes 5 values \\(1, 2, 3, 4, 5\\); .* declare it categorical"),
    (('colour:continuous',), errors.DataError,
     "column 'colour' is declared continuous but row 1 holds '.*', which is not a number; declare it categorical"),
    (('weight:continuous',), errors.ConfigError, "data.columns names 'weight', which the table does not have"),
    (('height:ordinal',), errors.ConfigError, "gives 'height' the type 'ordinal'; use one of continuous, binary"),
    (('height',), errors.ConfigError, "entry 'height' is not name:type"),
], ids=['binary', 'continuous', 'unknown-column', 'unknown-type', 'no-type'])
def test_declared_types_that_do_not_fit_are_refused_and_nothing_is_written(tmp_path, make_config, columns,
                                                                           error, match):
  config = _config(make_config, _write(tmp_path, _mixed_frame()), **{'data.columns': columns})
  with pytest.raises(error, match=match) as info:
    train.train_and_evaluate(config, tmp_path / 'run')
  assert '\n' not in str(info.value)
  assert not (tmp_path / 'run').exists() or not any((tmp_path / 'run').iterdir())


def test_atoms_are_the_values_many_rows_take():
  shares = np.concatenate([np.zeros(50), np.ones(12), np.full(9, 0.5), np.linspace(0.01, 0.99, 200)])
  assert table.atoms(shares) == (0.0, 1.0)  # 0.5: 9 rows, fewer than ATOM_ROWS
  assert table.atoms(np.linspace(0, 1, 100)) is None
  counts = np.random.default_rng(0).poisson(2.0, 1000)
  assert table.atoms(counts) == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)  # 42 rows take 5, 5 rows 6: not an atom


# The metric.

def test_table_scores_of_rows_against_themselves_and_against_others():
  """SDMetrics scores a table against itself 1 throughout; a classifier tells rows apart from rows shifted by
  ten standard deviations (all but a row or two)."""
  real = SPEC.to_frame(np.random.default_rng(0).normal(size=(300, 4)) * [1, 0, 0, 1] + [0, 1, 2, 0])
  scores = table_metric.score(real, real, SPEC, seed=0)
  assert scores['quality_score'] == scores['column_shapes_score'] == scores['column_pair_trends_score'] == 1.0
  shifted = real.assign(income=real['income'] + 20.0)
  assert table_metric.detection_accuracy(real, shifted, SPEC, seed=0) > 0.99


# The likelihood.

def _head_and_params(components, seed=0, n=5):
  head = likelihoods.Table(COLUMNS, components)
  outputs = 1.5 * jax.random.normal(jax.random.key(seed), (n, head.output_channels(4)))
  return head, head.apply({}, outputs), outputs


@pytest.mark.parametrize('components', [1, 3])
def test_table_log_prob_matches_scipy_in_the_data_units(components):
  """Each row's log p, in the data's own units, against scipy: a mixture of Gaussians on income and visits as
  the file gives them (std times the standardized scale), a Bernoulli, a softmax over 3 categories."""
  head, params, outputs = _head_and_params(components)
  per = 2 if components == 1 else 3 * components
  assert outputs.shape[1] == 2 * per + 1 + 3
  rng = np.random.default_rng(0)
  frame = pd.DataFrame({'income': rng.normal(3, 2, 5), 'smoker': rng.choice(['no', 'yes'], 5),
                        'city': rng.choice(['Lyon', 'Oslo', 'Rome'], 5), 'visits': rng.normal(1.5, 0.5, 5)})
  rows = SPEC.from_frame(frame)
  out = np.asarray(outputs, np.float64)
  want = np.zeros(5)
  for j, column in ((0, COLUMNS[0]), (1, COLUMNS[3])):
    block = out[:, j * per:(j + 1) * per]
    means, log_scales = block[:, :components], np.maximum(block[:, components:2 * components], -5.0)
    log_weights = special.log_softmax(block[:, 2 * components:], axis=-1) if components > 1 else 0.0
    value = frame[column.name].to_numpy()[:, None]
    log_density = stats.norm.logpdf(value, column.mean + column.std * means, column.std * np.exp(log_scales))
    want += special.logsumexp(log_weights + log_density, axis=-1)
  want += stats.bernoulli.logpmf(rows[:, 1], special.expit(out[:, 2 * per]))
  want += np.take_along_axis(special.log_softmax(out[:, 2 * per + 1:], axis=-1), rows[:, 2:3].astype(int), 1)[:, 0]
  np.testing.assert_allclose(likelihoods.Table.log_prob(params, jnp.asarray(rows)), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize('atoms', [None, (0.0, 45.5)], ids=['density', 'with-atoms'])
def test_table_column_integrates_to_one_in_the_data_units(atoms):
  """One continuous column of std 7: exp(log p) over the data's own axis integrates to 1 (without the
  Jacobian it would integrate to 7); with atoms, the integral and the atoms' probabilities add up to 1."""
  column = data.Column('y', mean=40.0, std=7.0, atoms=atoms)
  head = likelihoods.Table((column,), 3)
  outputs = jnp.array([[0.3, -1.0, 1.2, -0.5, 0.1, -0.2, 0.4, 0.0, -1.0, 0.5, -0.3, 1.1][:head.output_channels(1)]])
  params = head.apply({}, outputs)
  log_p = jax.jit(lambda x: likelihoods.Table.log_prob(params, x)[0])
  p = lambda y: float(jnp.exp(log_p(jnp.asarray(column.encode([y])[None], jnp.float32))))
  total, _ = integrate.quad(p, -40, 120, limit=200, points=atoms)  # the atoms are single points: no area
  masses = [p(a) for a in atoms or ()]
  if atoms:
    np.testing.assert_allclose(masses, special.softmax(np.asarray(outputs[0, 9:]))[1:], rtol=1e-5)
  assert total + sum(masses) == pytest.approx(1.0, abs=1e-4)


def test_atoms_come_out_exactly_and_as_often_as_their_probability():
  column = data.Column('visits', mean=2.0, std=3.0, low=0.0, high=30.0, decimals=0, atoms=(0.0, 1.0))
  spec = data.VectorSpec((column,))
  head = likelihoods.Table(spec.columns, 1)
  outputs = jnp.repeat(jnp.array([[0.5, -1.0, 0.2, 1.0, -0.5]]), 20_000, axis=0)
  x = np.asarray(likelihoods.Table.sample(jax.random.key(0), head.apply({}, outputs)))
  visits = spec.to_frame(x, clip=True)['visits']
  share = special.softmax([0.2, 1.0, -0.5])  # not an atom, 0, 1
  mixture = stats.norm(2.0 + 3.0 * 0.5, 3.0 * np.exp(-1.0))  # in visits; clipped at 0 and rounded
  assert (visits == 0).mean() == pytest.approx(share[1] + share[0] * mixture.cdf(0.5), abs=0.01)
  assert (visits == 1).mean() == pytest.approx(share[2] + share[0] * (mixture.cdf(1.5) - mixture.cdf(0.5)), abs=0.01)
  assert x[visits == 0, 0][0] == column.encode([0.0]).astype(np.float32)[0]  # the atom as stored, exactly


def test_table_samples_follow_the_head():
  """Samples in the stored form: binary 0/1 at the Bernoulli's rate, codes at the softmax's, continuous at the
  mixture's mean."""
  head = likelihoods.Table(COLUMNS, 2)
  one = 0.8 * jax.random.normal(jax.random.key(3), (1, head.output_channels(4)))
  params = head.apply({}, jnp.repeat(one, 20_000, axis=0))
  x = np.asarray(likelihoods.Table.sample(jax.random.key(1), params))
  mean = np.asarray(likelihoods.Table.mean(params))[0]
  assert set(np.unique(x[:, 1])) <= {0.0, 1.0} and set(np.unique(x[:, 2])) <= {0.0, 1.0, 2.0}
  assert x[:, 1].mean() == pytest.approx(mean[1], abs=0.02)
  np.testing.assert_allclose(np.bincount(x[:, 2].astype(int), minlength=3) / len(x),
                             np.asarray(jax.nn.softmax(params.categorical[0, 0])), atol=0.02)
  assert x[:, 0].mean() == pytest.approx(mean[0], abs=0.05)
  assert mean[2] == np.argmax(np.asarray(params.categorical[0, 0]))


def test_table_likelihood_only_for_vectors(make_config):
  config = make_config(**{'model.likelihood': 'table', 'data.binarize': 'none'})
  with pytest.raises(errors.ConfigError, match='model.likelihood=table models the rows of a table; '
                     "data.name='digits' holds images"):
    likelihoods.for_spec(config, data.ImageSpec(8, 8, 1))
  head, out_shape = likelihoods.for_spec(config, SPEC)
  assert isinstance(head, likelihoods.Table) and out_shape == (head.output_channels(4),)


def test_the_encoder_reads_categories_one_hot(make_config):
  """A code is a label: the encoder's first layer reads city as 3 one-hot inputs, so 6 in all."""
  config = make_config(**{'model.likelihood': 'table', 'data.binarize': 'none', 'model.hidden_sizes': (8,)})
  model = models.make(config, SPEC)
  assert isinstance(model.encoder, blocks.OneHotInputs)
  params = models.init_params(model, SPEC, jax.random.key(0))
  assert params['encoder']['inner']['dense_0']['kernel'].shape == (6, 8)
  np.testing.assert_array_equal(blocks.one_hot_entries(jnp.array([[0.5, 1.0, 2.0, -1.0]]), SPEC.one_hot),
                                [[0.5, 1.0, 0.0, 0.0, 1.0, -1.0]])
  assert models.make(config, data.VectorSpec.continuous(3)).encoder.__class__ is blocks.MLPEncoder


# End to end.

def test_a_table_run_reports_the_table_figures_and_writes_samples_csv(tmp_path, make_config):
  """A short run on a synthetic table: eval.json's NLL is per row in the data's units, the table metric's
  figures are there, and samples.csv holds the rows it scored, in the data's units and categories."""
  rng = np.random.default_rng(0)
  n = 240
  group = rng.integers(0, 2, n)
  frame = pd.DataFrame({'spend': np.round(np.where(group, 200.0, 50.0) + rng.normal(0, 10, n), 2),
                        'member': np.where(group, 'yes', 'no'), 'region': rng.choice(['n', 's', 'e', 'w'], n)})
  config = _config(make_config, _write(tmp_path, frame), **{
      'batch_size': 30, 'num_epochs': 2, 'model.hidden_sizes': (16,), 'model.latent_dim': 2,
      'model.table_components': 2, 'eval.num_importance_samples': 4, 'eval.measures': True,
      'eval.metrics': ('table',)})
  workdir = tmp_path / 'run'
  results = train.train_and_evaluate(config, workdir)
  for key in ('nll_nats', 'quality_score', 'column_shapes_score', 'column_pair_trends_score', 'detection_accuracy',
              'train_quality_score', 'train_detection_accuracy'):
    assert np.isfinite(results[key]), key
  assert 0 <= results['quality_score'] <= 1 and 0 <= results['detection_accuracy'] <= 1
  assert results['train_detection_accuracy'] < 0.75  # real rows against real rows
  assert 'data\'s own units' in results['nll_units']
  # spend's std is about 75: in standardized units the NLL would be smaller by about log 75 a row.
  std = data.ExampleSpec.from_json(json.loads((workdir / 'config.json').read_text())['resolved']['example_spec'])
  assert std.log_std == pytest.approx(math.log(frame['spend'].std(ddof=0)), abs=0.1)
  samples = pd.read_csv(workdir / table_metric.SAMPLES_CSV)
  assert list(samples.columns) == ['spend', 'member', 'region'] and len(samples) == 60
  assert set(samples['member']) <= {'no', 'yes'} and set(samples['region']) <= {'n', 's', 'e', 'w'}
  assert samples['spend'].between(frame['spend'].min(), frame['spend'].max()).all()
