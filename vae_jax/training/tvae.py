"""The tables' yardstick: SDV's TVAE against vae_jax's table VAE on the same splits, timed and scored alike.

  pip install -e '.[tables-benchmark]'  # sdv, which brings PyTorch (a CPU-only machine: the CPU build first)
  python -m vae_jax.training.tvae --config=configs/randhie.py --workdir=runs/randhie_vs_tvae

Trains the config's model (WORKDIR/vae, a run like any other, its eval.json
and samples.csv), then SDV's TVAESynthesizer with SDV's defaults (300 epochs,
batch 500, 128-128 networks, values clipped to the training range and
rounded as the data are) on the same training rows, and scores as many of
its rows as the test split holds against it with `metrics.table.score`, as
the `table` metric scores vae_jax's (WORKDIR/tvae: eval.json, samples.csv).
WORKDIR/comparison.md holds the two rows for RESULTS.md.

Train seconds are wall-clock seconds on this machine, one process after the
other: for vae_jax, `train_and_evaluate` less its test evaluation
(eval.json's eval_seconds) and the table metric (table_seconds), so
compilation, training and validation; for TVAE, its `fit`, with the fitting
of its data transformer (a Gaussian mixture per continuous column). TVAE
gives no likelihood of a row (SDV exposes none, and its mode-specific
normalization is not an invertible map of the data), so its NLL is n/a.
"""

import json
import pathlib
import time

from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from vae_jax import cli
from vae_jax import data
from vae_jax import errors
from vae_jax.evaluation.metrics import table as table_metric
from vae_jax.training import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A table config (configs/table.py or one built on it).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the two runs and the comparison go (a fresh folder).')
_EPOCHS = flags.DEFINE_integer('tvae_epochs', 300, "TVAE's epochs (SDV's default: 300).")
_BATCH = flags.DEFINE_integer('tvae_batch_size', 500, "TVAE's batch size (SDV's default: 500).")
_THREADS = flags.DEFINE_integer('tvae_threads', 1, "PyTorch's threads for TVAE: 1, as XLA runs the table VAE's small "
                               'layers; more spin idle on a busy machine (PyTorch: one per core)')

COLUMNS = ('quality_score', 'column_shapes_score', 'column_pair_trends_score', 'detection_accuracy', 'nll_nats',
           'train_seconds')


def sdv_metadata(spec: data.VectorSpec):
  """SDV's metadata of the table: continuous columns numerical, the others categorical, as the table metric
  tells SDMetrics."""
  from sdv.metadata import Metadata  # pylint: disable=g-import-not-at-top
  sdtype = lambda c: 'numerical' if c.type == 'continuous' else 'categorical'
  return Metadata.load_from_dict({'tables': {'table': {'columns': {c.name: {'sdtype': sdtype(c)}
                                                                   for c in spec.columns}}}})


def tvae(config, dataset, workdir: pathlib.Path, epochs: int, batch_size: int) -> dict:
  """TVAE fitted to the dataset's training rows and scored against its test rows; writes eval.json and
  samples.csv in `workdir`."""
  try:
    import sdv  # pylint: disable=g-import-not-at-top
    from sdv.single_table import TVAESynthesizer  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.ConfigError(f'the TVAE yardstick needs sdv ({e}): pip install -e ".[tables-benchmark]"') from None
  spec = dataset.spec
  real, rows = spec.to_frame(dataset.test.decoded()), spec.to_frame(dataset.train.decoded())
  torch.manual_seed(config.seed)
  torch.set_num_threads(_THREADS.value)
  np.random.seed(config.seed)  # SDV's transformers draw from numpy's global generator
  synthesizer = TVAESynthesizer(sdv_metadata(spec), epochs=epochs, batch_size=batch_size, enable_gpu=False)
  logging.info('TVAE: fitting %d training rows (%d epochs, batch %d)', len(rows), epochs, batch_size)
  start = time.perf_counter()
  synthesizer.fit({'table': rows})
  seconds = time.perf_counter() - start
  synthetic = synthesizer.sample(len(real))['table']
  workdir.mkdir(parents=True, exist_ok=True)
  synthetic.to_csv(workdir / table_metric.SAMPLES_CSV, index=False)
  results = dict(table_metric.score(real, synthetic, spec, config.seed), nll_nats=None,
                 nll_note='TVAE gives no likelihood of a row', train_seconds=round(seconds, 2),
                 num_train_rows=len(rows), table_measures=table_metric.describe(len(real)),
                 model=f'SDV {sdv.__version__} TVAESynthesizer, {epochs} epochs, batch {batch_size}, defaults '
                       f'otherwise; torch {torch.__version__} on the CPU, {torch.get_num_threads()} threads')
  (workdir / 'eval.json').write_text(json.dumps(results, indent=2) + '\n')
  return results


def ours(config, workdir: pathlib.Path) -> dict:
  """The config's run in `workdir`, with its train seconds (module docstring)."""
  if (workdir / 'eval.json').exists():
    raise errors.ConfigError(f'{workdir} holds a finished run, whose training this cannot time; give a fresh '
                             '--workdir')
  start = time.perf_counter()
  results = train.train_and_evaluate(config, workdir)
  seconds = time.perf_counter() - start - results['eval_seconds'] - (results.get('table_seconds') or 0.0)
  return dict(results, train_seconds=round(seconds, 2))


def markdown(name: str, rows: dict[str, dict]) -> str:
  """RESULTS.md's rows: one per model, the figures of COLUMNS."""
  cell = lambda k, v: 'n/a' if v is None else f'{v:.{1 if k == "train_seconds" else 3}f}'
  head = '| table | model | ' + ' | '.join(COLUMNS) + ' |\n|' + ' --- |' * (len(COLUMNS) + 2) + '\n'
  return head + ''.join(f'| {name} | {model} | ' + ' | '.join(cell(k, r.get(k)) for k in COLUMNS) + ' |\n'
                        for model, r in rows.items())


def compare() -> None:
  config, workdir = cli.config_value(_CONFIG), pathlib.Path(_WORKDIR.value)
  dataset = data.load(config)
  if not isinstance(dataset.spec, data.VectorSpec):
    raise errors.ConfigError(f'the TVAE yardstick compares tables; data.name={config.data.name!r} holds '
                             f'{dataset.spec.describe()}')
  rows = {'vae_jax': ours(config, workdir / 'vae'),
          'TVAE': tvae(config, dataset, workdir / 'tvae', _EPOCHS.value, _BATCH.value)}
  text = markdown(pathlib.Path(str(config.data.path)).stem, rows)
  (workdir / 'comparison.md').write_text(text)
  print(text)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  cli.run(compare)
