"""A run's evaluation at a checkpoint, and its eval files: what `python -m vae_jax.evaluate` runs, callable
from a notebook as `evaluate_run(workdir, num_importance_samples, ...)`.

The figures are those of training's final evaluation (the same keys, the same
importance samples for the same k, eval.json put together by the same
`evaluation.results.assemble`); a long evaluation saves its per-example
results after every batch and, stopped, goes on from the next one.
"""

import json
import os
import time

from absl import logging
from etils import epath
import jax

from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax import models
from vae_jax.evaluation import metrics
from vae_jax.evaluation import results as results_lib
from vae_jax.runs import checkpoints
from vae_jax.runs import names
from vae_jax.runs import workdir as workdir_lib
from vae_jax.runtime import dispatch
from vae_jax.runtime import keys as keys_lib
from vae_jax.runtime import parallel
from vae_jax.runtime import signals


def output_name(split: str, step: int | None, num_examples: int | None = None, parameters: str | None = None) -> str:
  return ('eval' + ('' if split == 'test' else f'_{split}')
          + ('' if num_examples is None else f'_first{num_examples}') + ('' if parameters is None else f'_{parameters}')
          + ('' if step is None else f'_step{step}') + '.json')



def recorded_dispatch(workdir, config) -> str | None:
  """The mode a run in `workdir` dispatches with: its config's, or the one it measured (None if neither)."""
  if config.get('dispatch', 'auto') != 'auto':
    return config.dispatch
  try:
    mode = json.loads((workdir / names.DISPATCH_FILE).read_text()).get('mode')
  except (OSError, ValueError, AttributeError):
    return None
  return mode if mode in dispatch.MODES else None



class _StopAfterSaving(evaluation.SavedProgress):
  """Saved progress that is also where a SIGTERM/SIGINT stops the evaluation (signals.stop_point): right after
  a batch's results are saved, so the rerun goes on from the next batch and nothing is computed twice."""

  def save(self, terms) -> None:
    super().save(terms)
    done = min(len(v) for v in terms.values())
    signals.stop_point(f'saved the results of the first {done} examples in {self.path}')


def best_validation_step(workdir: epath.PathLike) -> int:
  """The kept checkpoint whose validation ELBO (metrics.jsonl) is the highest: early stopping, chosen after the
  run. Keep a checkpoint at each validation (checkpoint_every_steps, keep_checkpoints) to choose among them all."""
  kept = set(checkpoints.finished_steps(workdir))
  elbo = {}
  path = epath.Path(workdir) / names.METRICS_FILE
  if path.exists():
    for line in path.read_text().splitlines():
      try:
        record = json.loads(line)
      except ValueError:
        continue  # a line cut short by a stop; the others stand
      if record.get('step') in kept and 'validation/elbo_nats' in record:
        elbo[record['step']] = record['validation/elbo_nats']
  if not elbo:
    raise errors.RunNotFound(f'no kept checkpoint of {workdir} has a validation ELBO in {names.METRICS_FILE} '
                             f'(checkpoints: {sorted(kept) or "none"}); give --step')
  best = max(elbo, key=lambda step: (elbo[step], step))
  logging.info('best validation ELBO among %d kept checkpoints: %.4f nats at step %d', len(elbo), elbo[best], best)
  return best


def evaluate_run(workdir: epath.PathLike, num_importance_samples: int, split: str = 'test',
                 step: int | None = None, batch_size: int | None = None, dispatch_mode: str | None = None,
                 num_examples: int | None = None, with_measures: bool | None = None,
                 parameters: str | None = None) -> dict:
  """Evaluates the run in `workdir` and writes its eval file; returns what it wrote.

  `num_examples` evaluates the split's first N images only (None: all of them).
  `with_measures` adds the metrics config.eval.metrics names (by default the
  representation and sample measures; None: as the run's config.eval.measures
  says); they always use the whole dataset.
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
  measure = config.eval.measures if with_measures is None else with_measures
  if measure:
    metrics.check_config(config)  # an unknown metric refused now, not after the evaluation
  if '://' not in str(workdir) and not os.access(workdir, os.W_OK):  # found now, not after the first batch
    raise errors.WorkdirError(f'workdir {workdir} is not writable by this user, and evaluate writes its eval file '
                              'and its saved progress there; make it writable, or evaluate a copy of the run')
  if parameters == 'ema' and not config.optim.ema_decay:
    raise errors.ConfigError('--parameters=ema: this run keeps no EMA (optim.ema_decay=0); use final')
  used = parameters or ('ema' if config.optim.ema_decay else 'final')
  dispatch_mode = dispatch_mode or recorded_dispatch(workdir, config) or 'scan'
  params, loaded_step = checkpoints.restore_params(workdir, step, ema=used == 'ema')
  dataset = data.load(config)
  images, labels = getattr(dataset, split).images, getattr(dataset, split).labels
  if not len(images):
    raise errors.ConfigError(f'--split={split} is empty for this run (data.num_validation=0)')
  if num_examples is not None:
    if num_examples > len(images):
      raise errors.ConfigError(f'--num_examples={num_examples} is more than the {len(images)} {split} images; '
                               'use at most that, or leave it out for all of them')
    images, labels = images[:num_examples], None if labels is None else labels[:num_examples]
  mesh = parallel.make_mesh()
  model = models.make(config, dataset.spec)
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
    results = evaluator.evaluate(params, images, keys_lib.eval_key(config.seed, split), config.model.likelihood,
                                 labels, progress, spec=dataset.spec)
  seconds = time.perf_counter() - t0
  results = results_lib.assemble(results, config, split=split, step=loaded_step,
                     parameters=used,  # what restore_params gave, as train says
                     dispatch=dispatch_mode, seconds=seconds,
                     measured=results_lib.measured(model, params, config, dataset) if measure else None)
  if model.stochastic:
    gflop = evaluator.gflop(params, images[0], len(images))
    results['eval_gflop_per_sec'] = round(gflop / seconds, 1)
  if jax.process_index() == 0:
    workdir_lib.write_json(path, results)
    progress.remove()
  logging.info('wrote %s', path)
  return results
