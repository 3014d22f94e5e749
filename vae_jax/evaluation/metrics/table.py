"""`table`: how close a model's rows come to a table's real rows, by the tabular-synthesis field's measures.

Synthetic rows are x ~ p(x|z), z ~ p(z), as many as the test split has, in
the data's own units and categories (`VectorSpec.to_frame`: continuous values
clipped to the train split's range and rounded to the data's decimals, as
SDV does with its own samples). They are what a table run writes to
WORKDIR/samples.csv (`write_samples`). Real rows are the test split's.

  quality_score             SDMetrics' QualityReport (sdmetrics.reports.QualityReport, one table): the mean of
  column_shapes_score         each column's marginal (1 - KS statistic for continuous columns, 1 - total
                              variation distance for the others), averaged, and
  column_pair_trends_score    each pair of columns (1 - |difference of correlations| / 2 for two continuous
                              ones, 1 - total variation distance of their contingency table otherwise), averaged
                              over every pair, not only those strongly related in the real rows (PAIR_THRESHOLDS);
  detection_accuracy        a gradient-boosted classifier's held-out accuracy at telling the real rows from the
                            synthetic ones (2 folds, each half predicting the other): 0.5 is indistinguishable.
  train_*                   the same of as many training rows against the test rows: what real rows reach.

`score(real, synthetic, spec, seed)` scores any two frames so; the TVAE
yardstick (`vae_jax.training.tvae`) is scored by it too.
"""

import pathlib
import time

from absl import logging
import jax
import numpy as np

from vae_jax import data
from vae_jax import progress
from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure
from vae_jax.runtime import keys as keys_lib

SAMPLES_CSV = 'samples.csv'
SAMPLES_STREAM = 1  # fold_in of the metrics key that draws the synthetic rows (samples.csv holds the same)
SCORE = 'score (0 to 1)'
FOLDS = 2
# SDMetrics scores, by default, only the pairs whose real correlation exceeds 0.5 (association 0.3): none at
# all in many tables. Zero scores every pair, as the field's papers report column-pair trends.
PAIR_THRESHOLDS = 0.0
NLL_UNITS = ("nats per row in the data's own units: a density on continuous values (the standardization's "
             "log-Jacobian, log std, included), a probability at a column's atoms and of the other columns' values")


def _metadata(spec: data.VectorSpec) -> dict:
  sdtype = lambda c: 'numerical' if c.type == 'continuous' else 'categorical'
  return {'tables': {'table': {'columns': {c.name: {'sdtype': sdtype(c)} for c in spec.columns}}}}


def quality(real, synthetic, spec: data.VectorSpec) -> dict:
  """SDMetrics' quality scores of the `synthetic` DataFrame against the `real` one (None where SDMetrics gives
  none, e.g. column pair trends of a one-column table)."""
  from sdmetrics.reports import QualityReport  # pylint: disable=g-import-not-at-top  (a second to import)
  report = QualityReport()
  report.real_correlation_threshold = report.real_association_threshold = PAIR_THRESHOLDS
  report.generate({'table': real}, {'table': synthetic}, _metadata(spec), verbose=False)
  scores = dict(zip(report.get_properties()['Property'], report.get_properties()['Score']))
  number = lambda v: None if v is None or not np.isfinite(v) else float(v)
  return {'quality_score': number(report.get_score()),
          'column_shapes_score': number(scores.get('Column Shapes')),
          'column_pair_trends_score': number(scores.get('Column Pair Trends'))}


def detection_accuracy(real, synthetic, spec: data.VectorSpec, seed: int) -> float:
  """Held-out accuracy of a gradient-boosted classifier telling the rows of `real` from those of `synthetic`
  (DataFrames of as many rows), FOLDS-fold: each fold is predicted by a classifier trained on the others.
  Categorical columns are read as categories, the others as numbers."""
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top  (scikit-learn's own dependency)
  x = np.concatenate([spec.from_frame(real), spec.from_frame(synthetic)])
  y = np.concatenate([np.ones(len(real), np.int64), np.zeros(len(synthetic), np.int64)])
  categorical = np.array([(c.num_categories or 2) < 255 and c.type != 'continuous' for c in spec.columns])
  folds = model_selection.StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
  hits = 0
  # One thread: its OpenMP threads spin while they wait, and on a busy machine take 15 times as long (measured).
  with threadpoolctl.threadpool_limits(1):
    for fit_rows, held_rows in folds.split(x, y):
      classifier = ensemble.HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed)
      classifier.fit(x[fit_rows], y[fit_rows])
      hits += int(np.sum(classifier.predict(x[held_rows]) == y[held_rows]))
  return hits / len(y)


def score(real, synthetic, spec: data.VectorSpec, seed: int) -> dict:
  """This metric's four figures of `synthetic` rows against `real` ones (DataFrames in the data's units)."""
  return dict(quality(real, synthetic, spec), detection_accuracy=detection_accuracy(real, synthetic, spec, seed))


def describe(n: int) -> str:
  import sdmetrics  # pylint: disable=g-import-not-at-top
  return (f'{n:,} rows against the {n:,} test rows; SDMetrics {sdmetrics.__version__} QualityReport, every column '
          f'pair; detection by scikit-learn HistGradientBoostingClassifier, {FOLDS}-fold held-out accuracy')


def samples_key(config) -> jax.Array:
  return jax.random.fold_in(keys_lib.measures_key(config.seed), SAMPLES_STREAM)


def synthetic_frame(model, params, spec: data.VectorSpec, config, n: int):
  """The n synthetic rows this metric scores and samples.csv holds, as a DataFrame in the data's units."""
  return spec.to_frame(base.prior_draws(model, params, samples_key(config), n, 'rows'), clip=True)


@base.register_output(SAMPLES_CSV)
def write_samples(ctx: base.Context, results: dict, workdir) -> dict:
  """WORKDIR/samples.csv: as many synthetic rows as the test split has (those the metric scores), in the
  data's own units and categories. Nothing for examples that are not rows of a vector, or a model that
  does not sample."""
  del results
  dataset, model = ctx.dataset, ctx.model
  if not isinstance(dataset.spec, data.VectorSpec) or not model.stochastic:
    return {}
  frame = synthetic_frame(model, ctx.params, dataset.spec, ctx.config, len(dataset.test.examples))
  path = pathlib.Path(workdir) / SAMPLES_CSV
  tmp = path.with_name(path.name + '.tmp')
  frame.to_csv(tmp, index=False)
  tmp.replace(path)
  logging.info('wrote %d synthetic rows to %s', len(frame), path)
  return {}


class Table(base.Metric):
  name = 'table'
  needs = frozenset({'samples'})
  figures = (
      Figure('quality_score', "SDMetrics' quality score of synthetic rows against the test rows: the mean of column "
             'shapes and column pair trends', SCORE, True, label='quality', decimals=3),
      Figure('column_shapes_score', "SDMetrics' column shapes: each column's marginal against the test rows' (KS or "
             'total variation complement), averaged', SCORE, True, label='column shapes', decimals=3),
      Figure('column_pair_trends_score', "SDMetrics' column pair trends: correlations and contingency tables of every "
             'pair of columns against the test rows\'', SCORE, True, label='pair trends', decimals=3),
      Figure('detection_accuracy', 'held-out accuracy of a classifier telling the test rows from as many synthetic '
             'rows (0.5: indistinguishable)', 'fraction', False, label='detection', decimals=3),
      Figure('train_quality_score', 'quality score of as many training rows against the test rows: what real rows '
             'reach', SCORE, decimals=3),
      Figure('train_detection_accuracy', 'detection accuracy of as many training rows against the test rows (about '
             '0.5)', 'fraction', decimals=3),
  )

  def applies(self, ctx: base.Context) -> str | None:
    if not isinstance(ctx.dataset.spec, data.VectorSpec):
      return f'{ctx.dataset.name} holds {ctx.dataset.spec.describe()}, not the rows of a table'
    return super().applies(ctx)

  def compute(self, ctx: base.Context) -> dict:
    start = time.perf_counter()
    spec, dataset, config = ctx.dataset.spec, ctx.dataset, ctx.config
    real = spec.to_frame(dataset.test.decoded())
    n = len(real)
    synthetic = synthetic_frame(ctx.model, ctx.params, spec, config, n)
    train_x = dataset.train.decoded()
    pick = np.sort(np.random.default_rng(config.seed).choice(len(train_x), size=min(n, len(train_x)), replace=False))
    with progress.stage(f'scoring {n:,} synthetic and {len(pick):,} training rows against the test rows'):
      out = score(real, synthetic, spec, config.seed)
      out.update({f'train_{k}': v for k, v in score(real, spec.to_frame(train_x[pick]), spec, config.seed).items()
                  if k in ('quality_score', 'detection_accuracy')})
    return dict(out, table_measures=describe(n), nll_units=NLL_UNITS,
                table_seconds=round(time.perf_counter() - start, 2))
