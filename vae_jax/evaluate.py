"""Evaluates a run at its latest (or a given) checkpoint:

  python -m vae_jax.evaluate --workdir=DIR [--num_importance_samples=5000] [--split=test] [--step=N]
                            [--num_examples=N] [--nomeasures] [--parameters=final]

Writes DIR/eval.json (eval_step{N}.json with --step, eval_validation*.json for
the validation split, eval_first{N}*.json with --num_examples) with the keys
of the training run's eval.json: elbo_nats, nll_nats (importance-sampled
-log p(x) with num_importance_samples samples, never capped),
nll_stderr_nats, recon_nats, kl_nats, kl_per_dim_nats, bits_per_dim,
active_units, binarization. Validation and test images of a
binarized dataset are binarized once with the run's eval.binarization_seed,
as in the literature; the run draws the same importance samples as training's
final evaluation, so k equal to the run's eval.num_importance_samples
reproduces its eval.json. --num_examples evaluates only the split's first N
images, for a quick figure from a model too slow to evaluate whole (a
convolutional HVAE on a CPU): each image's samples are drawn from its index,
so these are exactly the first N of the whole split's per-image results.
--parameters=final evaluates a run's own parameters instead of their EMA
(eval_final*.json).

A long evaluation (5,000 samples of a hierarchical model take an hour on a
CPU) saves its per-example results after every batch in
DIR/eval.json.progress.npz (beside the file it will write); if it is stopped,
the same command goes on from the first example not done, with the same
numbers, and the progress file is deleted once the eval file is written.
SIGTERM or SIGINT (a preemption) stops it after the batch it is on, once its
results are saved, with exit 75 and `preempted: ...; rerun the same command to
continue` (a second signal stops it at once).
"""

import json
import os
import time

from absl import flags
from absl import logging
from etils import epath
import jax

from vae_jax import cli
from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax import models
from vae_jax.evaluation import measures
from vae_jax.runs import checkpoints
from vae_jax.runs import signals
from vae_jax.runs import workdir as workdir_lib
from vae_jax.training import dispatch
from vae_jax.training import feeds
from vae_jax.training import parallel
from vae_jax.training import setup as setup_lib


def output_name(split: str, step: int | None, num_examples: int | None = None, parameters: str | None = None) -> str:
  return ('eval' + ('' if split == 'test' else f'_{split}')
          + ('' if num_examples is None else f'_first{num_examples}') + ('' if parameters is None else f'_{parameters}')
          + ('' if step is None else f'_step{step}') + '.json')


class _StopAfterSaving(evaluation.SavedProgress):
  """Saved progress that is also where a SIGTERM/SIGINT stops the evaluation (signals.stop_point): right after
  a batch's results are saved, so the rerun goes on from the next batch and nothing is computed twice."""

  def save(self, terms) -> None:
    super().save(terms)
    done = min(len(v) for v in terms.values())
    signals.stop_point(f'saved the results of the first {done} examples in {self.path}')


def evaluate_run(workdir: epath.PathLike, num_importance_samples: int, split: str = 'test',
                 step: int | None = None, batch_size: int | None = None, dispatch_mode: str | None = None,
                 num_examples: int | None = None, with_measures: bool | None = None,
                 parameters: str | None = None) -> dict:
  """Evaluates the run in `workdir` and writes its eval file; returns what it wrote.

  `num_examples` evaluates the split's first N images only (None: all of them).
  `with_measures` adds the representation and sample measures (None: as the
  run's config.eval.measures says); they always use the whole dataset.
  `parameters`: 'ema' or 'final' (None: the EMA when the run keeps one).

  `dispatch_mode` dispatches the importance-sampling chunks (`dispatch.MODES`);
  by default the mode the run measured fastest for training, else 'scan'.
  """
  workdir = epath.Path(workdir)
  if num_importance_samples < 1:
    raise errors.ConfigError(f'--num_importance_samples={num_importance_samples} must be >= 1')
  if num_examples is not None and num_examples < 1:
    raise errors.ConfigError(f'--num_examples={num_examples} must be >= 1 (leave it out for the whole split)')
  if dispatch_mode is not None and dispatch_mode not in dispatch.MODES:
    raise errors.ConfigError(f'--dispatch={dispatch_mode} is not allowed; use one of {", ".join(dispatch.MODES)}')
  if parameters not in (None, 'ema', 'final'):
    raise errors.ConfigError(f'--parameters={parameters} is not allowed; use ema or final')
  config = checkpoints.read_config(workdir)
  if '://' not in str(workdir) and not os.access(workdir, os.W_OK):  # found now, not after the first batch
    raise errors.WorkdirError(f'workdir {workdir} is not writable by this user, and evaluate writes its eval file '
                              'and its saved progress there; make it writable, or evaluate a copy of the run')
  if parameters == 'ema' and not config.optim.ema_decay:
    raise errors.ConfigError('--parameters=ema: this run keeps no EMA (optim.ema_decay=0); use final')
  used = parameters or ('ema' if config.optim.ema_decay else 'final')
  dispatch_mode = dispatch_mode or feeds.recorded_dispatch(workdir, config) or 'scan'
  params, loaded_step = checkpoints.restore_params(workdir, step, ema=used == 'ema')
  dataset = data.load(config)
  images, labels = getattr(dataset, split).images, getattr(dataset, split).labels
  if not len(images):
    raise errors.ConfigError(f'--split={split} is empty for this run (data.num_validation=0)')
  if num_examples is not None:
    if num_examples > len(images):
      raise errors.ConfigError(f'--num_examples={num_examples} is more than the {len(images)} {split} images; '
                               'use at most that, or leave it out for all of them')
    images, labels = images[:num_examples], labels[:num_examples]
  mesh = parallel.make_mesh()
  model = models.make(config, dataset.image_shape)
  params = parallel.replicate(params, mesh)
  evaluator = evaluation.Evaluator(model, batch_size or config.eval.batch_size, num_importance_samples,
                                   config.eval.sample_chunk, mesh, progress=True, mode=dispatch_mode,
                                   memory_budget_gb=config.eval.memory_budget_gb)
  logging.info('Evaluating %s at step %d on %d %s images with %d importance samples on %d device(s), '
               'chunks dispatched as %s', workdir, loaded_step, len(images), split, num_importance_samples,
               jax.device_count(), dispatch_mode)
  path = workdir / output_name(split, step, num_examples, parameters)
  # What the per-example results depend on: an interrupted evaluation with the same resumes.
  progress = _StopAfterSaving(
      path.with_name(path.name + '.progress.npz'),
      {'step': loaded_step, 'split': split, 'num_examples': len(images), 'seed': config.seed,
       'num_importance_samples': evaluator.num_samples, 'parameters': used})
  t0 = time.perf_counter()
  with signals.deferred('after this batch, its results saved'):
    results = evaluator.evaluate(params, images, setup_lib.eval_key(config.seed, split), config.model.likelihood,
                                 labels, progress)
  seconds = time.perf_counter() - t0
  binarization = config.data.binarize
  if binarization != 'none':
    binarization += f' ({split} binarized once, seed {config.eval.binarization_seed})'
  results = dict(results, split=split, step=loaded_step, binarization=binarization,
                 parameters=used,  # what restore_params gave, as train says
                 dispatch=dispatch_mode,
                 eval_seconds=round(seconds, 2),
                 **(measures.all_measures(model, params, setup_lib.measures_key(config.seed), config, dataset)
                    if (config.eval.measures if with_measures is None else with_measures) else {}))
  if model.stochastic:
    gflop = evaluator.gflop(params, images[0], len(images))
    results['eval_gflop_per_sec'] = round(gflop / seconds, 1)
  if jax.process_index() == 0:
    workdir_lib.write_json(path, results)
    progress.remove()
  logging.info('wrote %s', path)
  return results


def _define_flags() -> None:
  """Defined only when run as a command, so `evaluate_run` imports next to other commands' flags."""
  flags.DEFINE_string('workdir', None, 'The run directory (as written by vae_jax.main); local or gs://.')
  flags.DEFINE_integer('num_importance_samples', 5000, 'Importance samples per example for the NLL.')
  flags.DEFINE_enum('split', 'test', ['test', 'validation'], 'Which split to evaluate.')
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
  flags.DEFINE_integer('num_examples', None, "Evaluate only the split's first N images (default: all).")
  flags.DEFINE_bool('measures', None, "Add the probe, kNN and Frechet measures (default: as the run's "
                    'eval.measures says); --nomeasures skips them, for a quick figure.')
  flags.DEFINE_enum('parameters', None, ['ema', 'final'], "Which parameters (default: the EMA when the run "
                    'keeps one, else the final ones).')
  flags.DEFINE_integer('batch_size', None, "Examples per batch (default: the run's eval.batch_size).")
  flags.DEFINE_string('dispatch', None, 'How the sample chunks are dispatched: scan | unrolled | per_step '
                      "(default: the mode the run chose for training, else scan).")
  flags.mark_flags_as_required(['workdir'])


def _evaluate():
  f = flags.FLAGS
  results = evaluate_run(f.workdir, f.num_importance_samples, f.split, f.step, f.batch_size, f.dispatch,
                         f.num_examples, f.measures, f.parameters)
  print(json.dumps({k: v for k, v in results.items() if k != 'kl_per_dim_nats'}, indent=2))


if __name__ == '__main__':
  _define_flags()
  cli.run(_evaluate)
