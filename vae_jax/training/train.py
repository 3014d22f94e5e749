"""The training loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Randomness is derived, never stored: step s uses fold_in(train_key, s), each
example of its batch fold_in(that, position), and epoch e is shuffled by
fold_in(shuffle_key, e). A resumed run, or the same run on another number of
devices, therefore draws exactly what the original did.

Speed: the train step is a pure function; `feeds` hands it to the device
`steps_per_dispatch` steps at a time, with the training set on the device
when it fits, dispatched the way it measured fastest.
"""

import contextlib
import functools
import pathlib
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax import models
from vae_jax import progress
from vae_jax.evaluation import metrics as metrics_lib
from vae_jax.evaluation import results as results_lib
from vae_jax.runs import checkpoints
from vae_jax.runs import run as run_lib
from vae_jax.runs import workdir as workdir_lib
from vae_jax.runs import writers
from vae_jax.runtime import files
from vae_jax.runtime import keys as keys_lib
from vae_jax.runtime import parallel
from vae_jax.runtime import signals
from vae_jax.training import feeds
from vae_jax.training import optimizer
from vae_jax.training import setup as setup_lib
from vae_jax.viz import plots
from vae_jax.viz import report

EVAL_FILE = workdir_lib.EVAL_FILE


def _mean_metrics(buffer: list[dict]) -> dict[str, float]:
  """Means over the applied (not skipped) steps in `buffer`, plus the number of skipped steps."""
  stacked = jax.device_get(buffer)
  cat = {k: np.concatenate([np.atleast_1d(m[k]) for m in stacked]) for k in stacked[0]}
  applied = cat.pop('skipped') == 0
  means = {k: float(np.mean(v[applied])) if applied.any() else float('nan') for k, v in cat.items()}
  return dict(means, skipped_steps=int(np.sum(~applied)))


def _crossed(before: int, after: int, period: int) -> bool:
  return before // period < after // period


class _Images:
  """Prior samples and test reconstructions of the current parameters, for TensorBoard at every
  validation (with the step) and for samples.png / reconstructions.png at the end. Jitted once.
  Only for images: with other examples (`dataset.spec`) it writes nothing."""

  def __init__(self, model, dataset, config, key):
    self.model, self.key, self.n = model, key, config.eval.num_images
    self.enabled = dataset.spec.kind == 'image'
    self.x = jnp.asarray(dataset.spec.decode(np.asarray(dataset.test.examples[:self.n])))
    self.labels = None if dataset.test.labels is None else jnp.asarray(dataset.test.labels[:self.n])
    self._sample = jax.jit(functools.partial(model.apply, method=model.sample), static_argnums=2)
    self._reconstruct = jax.jit(functools.partial(model.apply, method=model.reconstruct))

  def grids(self, params) -> dict[str, np.ndarray]:
    variables = {'params': params}
    mean_image = lambda p: np.asarray(type(self.model.likelihood).mean(p))
    images = {}
    if self.model.stochastic:
      images['samples'] = plots.image_grid(mean_image(self._sample(variables, jax.random.fold_in(self.key, 0),
                                                                   self.n)))
    decoded = self._reconstruct(variables, self.x, jax.random.split(jax.random.fold_in(self.key, 1), len(self.x)),
                                self.labels)
    images['reconstructions'] = plots.reconstruction_grid(np.asarray(self.x), mean_image(decoded))
    return images

  def write(self, writer, params, step: int, workdir=None) -> None:
    """The grids to TensorBoard at `step`; with `workdir`, also as its PNG files."""
    if jax.process_index() != 0 or not self.enabled:
      return
    images = self.grids(params)
    writer.write_images(step, images)
    if workdir is not None:
      if 'samples' in images:
        plots.save_grid(workdir / 'samples.png', images['samples'],
                        f'{self.n} samples: mean of p(x|z), z ~ p(z) (step {step})')
      plots.save_grid(workdir / 'reconstructions.png', images['reconstructions'],
                      f'Test images (odd rows) and reconstructions, mean of p(x|z), z ~ q(z|x) (step {step})')


def _format_metrics(values: dict, decimals: int = 2, model=None) -> str:
  """key value pairs for the log: counts (figures in the unit 'count', and their per-group scalars) as
  integers, other numbers with `decimals` decimals."""
  counts = {f.key for f in metrics_lib.all_figures(model) if f.unit == 'count'}

  def one(k, v):
    if isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, bool) and (
        isinstance(v, (int, np.integer)) or k.split('_group_')[0] in counts):
      return f'{k} {int(round(float(v)))}'
    return f'{k} {v:.{decimals}f}' if isinstance(v, (float, np.floating)) else f'{k} {v}'
  return ', '.join(one(k, v) for k, v in values.items())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       replace_run: bool = False, dataset=None) -> dict:
  """Trains (or resumes) the run in `workdir`, evaluates on test, returns eval.json's contents.

  `dataset`: your own images instead of config.data's, as numpy arrays: the
  training images (N, H, W[, C]), uint8 or floats in [0, 1]; a pair (train,
  test); or a dict of `vae_jax.data.sources.array.KEYS` names (x_train,
  y_train, x_test, y_test). The run records data.name=array, where the data
  came from and their fingerprint, and refuses to resume on other data.

  A workdir holding a run of another config (seed, batch_size, data, model) is
  refused, or with `replace_run` moved to WORKDIR.old-N first; a workdir another
  process is training in is refused (errors.RunLockedError). SIGTERM/SIGINT
  save a checkpoint and raise errors.Preempted; rerunning continues the run. A
  write that fails for lack of space raises errors.DiskFull, which names the
  last good checkpoint; the next start removes the partial one.
  """
  lock = workdir_lib.RunLock(pathlib.Path(workdir))
  try:
    with contextlib.ExitStack() as cleanup:
      cleanup.callback(lock.release)
      return _train_and_evaluate(config, pathlib.Path(workdir), replace_run, lock, cleanup, dataset)
  except Exception as e:  # pylint: disable=broad-except
    if not files.is_disk_full(e):
      raise
    raise errors.DiskFull(checkpoints.disk_full_message(pathlib.Path(workdir), e)) from None


def _check_labels(model, dataset) -> None:
  """A conditional model needs labels, each one of its classes."""
  if not model.conditional:
    return
  for name in ('train', 'validation', 'test'):
    labels = getattr(dataset, name).labels
    if labels is None:
      raise errors.DataError(f'a conditional model (model.kind) reads labels; the {name} split of '
                             f'{dataset.name} has none')
    if len(labels) and labels.max() >= model.num_classes:
      raise errors.DataError(f'the {name} split of {dataset.name} has the label {labels.max()}, but the model has '
                             f'{model.num_classes} classes; set model.num_classes to at least {labels.max() + 1}')


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path, replace_run: bool,
                        lock: workdir_lib.RunLock, cleanup: contextlib.ExitStack, arrays=None) -> dict:
  """train_and_evaluate's body; `lock` is taken once the config and data are known good, before the
  workdir is touched; what it opens goes on `cleanup`, closed on every way out."""
  if arrays is not None:
    config = ml_collections.ConfigDict(config.to_dict())
    config.data.name, config.data.path = 'array', None
  config_lib.validate(config)
  writers.check_config(config)
  metrics_lib.check_config(config)
  dataset = data.load(config, arrays)
  setup = setup_lib.make_setup(config, dataset)
  _check_labels(setup.model, dataset)
  workdir = pathlib.Path(workdir)
  spe, total_steps = setup.steps_per_epoch, setup.total_steps
  eval_every = max(1, int(round(config.eval.every_epochs * spe)))
  shape = {'image_shape': list(dataset.image_shape)} if dataset.spec.kind == 'image' else {}  # as runs had it
  resolved = dict(**shape, example_spec=dataset.spec.to_json(), steps_per_epoch=spe, total_steps=total_steps,
                  num_train=len(dataset.train.examples), num_validation=len(dataset.validation.examples),
                  num_test=len(dataset.test.examples), data_source=dataset.source,
                  data_fingerprint=dataset.fingerprint, jax_version=jax.__version__,
                  devices=[str(d) for d in jax.devices()], process_count=jax.process_count())
  workdir_lib.check_readable(workdir, replace_run)  # a damaged config.json refuses before anything is written
  lock.acquire()
  workdir_lib.prepare(workdir, config, resolved, replace_run, lock)
  logging.info('%s from %s: %d train / %d validation / %d test %s', dataset.name, dataset.source,
               len(dataset.train.examples), len(dataset.validation.examples), len(dataset.test.examples),
               dataset.spec.describe())

  state = setup.initial_state()
  logging.info('%s with %s parameters; %d steps (%d per epoch) on %d device(s)', config.model.kind,
               f'{sum(p.size for p in jax.tree.leaves(state.params)):,}', total_steps, spe, jax.device_count())
  models.log_kl_kind(setup.model)
  checkpoints.remove_partial(workdir)
  mngr = checkpoints.manager(workdir, config.keep_checkpoints)
  state, start = checkpoints.restore_readable(mngr, state, workdir)
  stage = setup.stage_index(start)
  state = state.replace(tx=setup.plans[stage].tx)  # the optimizer state of every stage has the same structure
  if start:
    logging.info('Resumed from the checkpoint at step %d in %s', start, workdir)
  if len(setup.plans) > 1:
    logging.info('Training stages: %s; step %d is in stage %s', ', '.join(
        f'{p.stage.name} (steps {p.start}-{p.end})' for p in setup.plans), start, setup.plans[stage].stage.name)
  eval_path = workdir / EVAL_FILE
  if start >= total_steps and eval_path.exists():
    try:
      results = files.read_json(eval_path, 'evaluating the run again')
      mngr.close()
      logging.info('Run in %s is finished (step %d); its test metrics are in %s', workdir, start, eval_path)
      return results
    except errors.DamagedFileError as e:  # derived from the checkpoint: rebuilt, not refused
      logging.warning('%s', e)

  writers.truncate_metrics(workdir, start)
  writer = cleanup.enter_context(writers.MetricWriter(workdir, config))
  feed, why = feeds.choose_feed(setup.for_stage(stage), state, workdir, total_steps - start)
  stage_feeds = {stage: feed}
  cleanup.callback(lambda: [f.close() for f in stage_feeds.values()])  # a stream's workers and files, on every exit
  logging.info('Training set %s; %d steps per dispatch, dispatched as %s (%s)', feed.description,
               config.steps_per_dispatch, feed.mode, why)
  val_evaluator = evaluation.Evaluator(setup.model, config.eval.batch_size, 1, 1, setup.mesh,
                                       memory_budget_gb=config.eval.memory_budget_gb)
  images = _Images(setup.model, dataset, config, setup.key(keys_lib.IMAGES))

  step, buffer = start, []
  consecutive_skips, total_skips = 0, 0
  last_time, last_step = time.perf_counter(), start
  with signals.StopSignals() as stop:
    while step < total_steps:
      plan = setup.plans[stage]
      num_steps = min(config.steps_per_dispatch, plan.end - step)  # a dispatch stays within its stage
      state, metrics = stage_feeds[stage].run(state, step, num_steps)
      buffer.append(metrics)
      before, step = step, step + num_steps
      if step == plan.end and stage + 1 < len(setup.plans):
        # The next stage starts with a fresh optimizer (and schedule) of its own, before any checkpoint of
        # this step, so a run resumed here starts it exactly as an uninterrupted one does.
        stage += 1
        nxt = setup.plans[stage]
        state = state.replace(tx=nxt.tx, opt_state=parallel.replicate(nxt.tx.init(state.params), setup.mesh))
        stage_feeds[stage] = feeds.make_feed(setup.for_stage(stage), feed.mode, like=feed)
        logging.info('Stage %s finished at step %d; stage %s trains steps %d-%d', plan.stage.name, step,
                     nxt.stage.name, nxt.start, nxt.end)

      skipped = np.asarray(metrics['skipped'])
      total_skips += int(skipped.sum())
      applied = np.flatnonzero(skipped == 0)
      consecutive_skips = consecutive_skips + num_steps if not len(applied) else num_steps - 1 - applied[-1]
      if consecutive_skips >= config.max_consecutive_skips:
        mngr.wait_until_finished()
        raise errors.TrainingError(
            f'{consecutive_skips} steps in a row were skipped by step {step} (loss or gradient norm not finite, '
            f'or gradient norm above skip_threshold={config.skip_threshold}); stopped without saving them. The '
            f'last good checkpoint is step {mngr.latest_step() or "none"} in {workdir / checkpoints.CHECKPOINT_DIR}. '
            'Lower learning_rate or optim.grad_clip_norm, or check the data')

      if _crossed(before, step, config.log_every_steps) or step == total_steps:
        means = _mean_metrics(buffer)
        buffer = []
        now = time.perf_counter()
        steps_per_sec = (step - last_step) / (now - last_time)
        last_time, last_step = now, step
        writer.write_scalars(step, {f'train/{k}': v for k, v in means.items()} | {
            'train/steps_per_sec': steps_per_sec, 'train/images_per_sec': steps_per_sec * config.batch_size,
            'train/epoch': step / spe, 'train/skipped_steps_total': total_skips})
        summary = ' '.join(f'{k.removesuffix("_nats")} {means[k]:.2f}'
                           for k in ('loss', 'elbo_nats', 'recon_nats', 'kl_nats') if k in means)
        if means['skipped_steps']:
          summary += f' | skipped {means["skipped_steps"]} steps ({total_skips} in all)'
        logging.info('step %d/%d (epoch %.1f) | %s | %.1f steps/s, %.0f images/s | ETA %s', step, total_steps,
                     step / spe, summary, steps_per_sec, steps_per_sec * config.batch_size,
                     progress.format_duration((total_steps - step) / steps_per_sec))

      if (_crossed(before, step, eval_every) or step == total_steps) and len(dataset.validation.examples):
        eval_start = time.perf_counter()
        val = val_evaluator.evaluate(optimizer.eval_params(state), dataset.validation.examples,
                                     keys_lib.eval_key(config.seed, 'validation'), config.model.likelihood,
                                     dataset.validation.labels, spec=dataset.spec)
        val = results_lib.scalars(val, setup.model, validation=True)  # the figures marked validation
        writer.write_scalars(step, {f'validation/{k}': v for k, v in val.items()})
        logging.info('validation at step %d: %s', step, _format_metrics(val, model=setup.model))
        images.write(writer, optimizer.eval_params(state), step)
        last_time += time.perf_counter() - eval_start  # keep evaluation out of the throughput

      if _crossed(before, step, config.checkpoint_every_steps) or step == total_steps:
        checkpoints.save(mngr, step, state)
      if step < total_steps and stop.requested():
        if mngr.latest_step() != step:
          checkpoints.save(mngr, step, state)
        mngr.wait_until_finished()
        mngr.close()
        raise errors.Preempted(
            f'{stop.name()} received: saved the checkpoint '
            f'at step {step} of {total_steps} in {workdir / checkpoints.CHECKPOINT_DIR}; rerun the same command '
            'to continue')
  mngr.wait_until_finished()
  mngr.close()

  logging.info('Evaluating on %d test examples with %d importance samples', len(dataset.test.examples),
               config.eval.num_importance_samples)
  t0 = time.perf_counter()
  test_evaluator = evaluation.Evaluator(setup.model, config.eval.batch_size, config.eval.num_importance_samples,
                                        config.eval.sample_chunk, setup.mesh, progress=True, mode=feed.mode,
                                        memory_budget_gb=config.eval.memory_budget_gb)
  params = optimizer.eval_params(state)
  results = test_evaluator.evaluate(params, dataset.test.examples, keys_lib.eval_key(config.seed, 'test'),
                                    config.model.likelihood, dataset.test.labels, spec=dataset.spec)
  results = results_lib.assemble(
      results, config, split='test', step=step, parameters='ema' if state.ema_params is not None else 'final',
      dispatch=feed.mode, seconds=time.perf_counter() - t0,
      measured=results_lib.measured(setup.model, params, config, dataset) if config.eval.measures else None)
  writer.write_scalars(step, {f'test/{k}': v for k, v in results_lib.scalars(results, setup.model).items()})
  images.write(writer, params, step, workdir)
  if jax.process_index() == 0:  # samples.csv, representation.npz, ...: the outputs the data have
    ctx = metrics_lib.Context(setup.model, params, config, dataset, keys_lib.measures_key(config.seed))
    writer.write_images(step, metrics_lib.write_outputs(ctx, results, workdir))
    if dataset.factors is not None:  # the latent traversal and the latent-factor MI matrix
      run = run_lib.Run(workdir, checkpoints.read_config(workdir), params, step)
      writer.write_images(step, report.factor_images(run, dataset, results))
  writer.close()
  if jax.process_index() == 0:
    workdir_lib.write_json(eval_path, results)
  logging.info('test: %s', _format_metrics({k: v for k, v in results.items() if not isinstance(v, list)}, 3,
                                             setup.model))
  return results
