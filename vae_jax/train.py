"""The training loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Randomness is derived, never stored: step s uses fold_in(train_key, s), each
example of its batch fold_in(that, position), and epoch e is shuffled by
fold_in(shuffle_key, e). A resumed run, or the same run on another number of
devices, therefore draws exactly what the original did.

Speed: the train step is a pure function; `feeds` hands it to the device
`steps_per_dispatch` steps at a time, with the training set on the device
when it fits, dispatched the way it measured fastest.
"""

import dataclasses
import functools
import json
import pathlib
import signal
import threading
import time
from typing import Callable

from absl import logging
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vae_jax import checkpoints
from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax import feeds
from vae_jax import models
from vae_jax import objectives
from vae_jax import parallel
from vae_jax import plots
from vae_jax import writers

EVAL_FILE = 'eval.json'
# Fields that define what the checkpoints in a workdir are; the rest (epochs,
# learning rate, evaluation, logging, speed settings) may change on resume.
_RUN_DEFINING = ('seed', 'batch_size', 'data', 'model')
# Streams of the run's root key.
_INIT, _TRAIN, _EVAL, _IMAGES, _SHUFFLE = range(5)


def eval_key(seed: int, split: str) -> jax.Array:
  """The key of every evaluation of `split`: the same draws each time, here and in vae_jax.evaluate."""
  key = jax.random.fold_in(jax.random.key(seed), _EVAL)
  return key if split == 'validation' else jax.random.fold_in(key, 1)


def learning_rate_schedule(config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
  """cosine: warm-up, then cosine decay to final_lr_fraction; constant: warm-up, then flat;
  iwae_stages: Burda et al.'s schedule, stage i lasting 3^i epochs at lr * 10^(-i/7)."""
  lr, warmup = config.learning_rate, config.optim.warmup_steps
  if config.optim.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0 if warmup else lr, lr, warmup, max(total_steps, warmup + 1), lr * config.optim.final_lr_fraction)
  if config.optim.schedule == 'constant':
    return optax.warmup_constant_schedule(0.0 if warmup else lr, lr, warmup)
  boundaries = np.cumsum([3**i for i in range(config.optim.num_stages - 1)]) * steps_per_epoch
  return optax.piecewise_constant_schedule(lr, {int(b): 10**(-1 / 7) for b in boundaries})


def make_optimizer(config, total_steps: int, steps_per_epoch: int):
  """Adam with global-norm clipping, on `learning_rate_schedule`."""
  schedule = learning_rate_schedule(config, total_steps, steps_per_epoch)
  tx = optax.chain(optax.clip_by_global_norm(config.optim.grad_clip_norm),
                   optax.adam(schedule, b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps))
  return tx, schedule


def kl_weight_schedule(config, steps_per_epoch: int):
  """beta, reached linearly over `model.kl_warmup_epochs` (immediately when 0)."""
  beta = config.model.beta
  warmup_steps = config.model.kl_warmup_epochs * steps_per_epoch
  if warmup_steps <= 0:
    return lambda step: jnp.asarray(beta, jnp.float32)
  return lambda step: beta * jnp.minimum(1.0, step.astype(jnp.float32) / warmup_steps)


def make_train_step(model, objective, schedule, kl_weight, dynamic_binarize: bool, batch_sharding=None,
                    skip_threshold: float = float('inf')):
  """Returns the pure train_step(state, batch, key) -> (state, metrics).

  `key` is the run's training key; the step folds in its own step number, then
  each example its position in the batch. `batch` holds images in [0, 1]; with
  dynamic binarization every pixel is redrawn from Bernoulli(intensity).
  `batch_sharding`, when given, keeps the per-example randomness on the device
  that holds the example.

  A step whose loss or gradient norm is not finite, or whose gradient norm
  exceeds `skip_threshold`, is skipped: parameters and optimizer state stay as
  they were, the step counter moves on, and metrics['skipped'] is 1.
  """

  def train_step(state, batch, key):
    positions = jnp.arange(batch.shape[0])
    if batch_sharding is not None:
      positions = jax.lax.with_sharding_constraint(positions, batch_sharding)
    keys = objectives.per_example_keys(jax.random.fold_in(key, state.step), positions)
    binarize_keys, sample_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    if dynamic_binarize:
      batch = jax.vmap(jax.random.bernoulli)(binarize_keys, batch).astype(batch.dtype)
    weight = kl_weight(state.step)
    loss_fn = functools.partial(objective, model)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, sample_keys, weight)
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (grad_norm <= skip_threshold)
    updated = state.apply_gradients(grads=grads)
    kept = state.replace(step=updated.step)
    new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), updated, kept)
    metrics = dict(metrics, grad_norm=grad_norm, learning_rate=schedule(state.step), kl_weight=weight,
                   skipped=(~ok).astype(jnp.int32))
    return new_state, metrics

  return train_step


@dataclasses.dataclass
class Setup:
  """Everything a run needs besides its state: the pieces `benchmark` times too."""
  config: ml_collections.ConfigDict
  dataset: data.Dataset
  model: models.VAE
  mesh: jax.sharding.Mesh
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  train_step: Callable     # pure (state, batch, key) -> (state, metrics)
  steps_per_epoch: int
  total_steps: int
  root_key: jax.Array

  def key(self, stream: int) -> jax.Array:
    return jax.random.fold_in(self.root_key, stream)

  @property
  def train_key(self) -> jax.Array:
    """The key every train step folds its step number into."""
    return self.key(_TRAIN)

  @property
  def shuffle_key(self) -> jax.Array:
    """The key every epoch's order folds its epoch number into."""
    return self.key(_SHUFFLE)

  def initial_state(self) -> train_state.TrainState:
    params = models.init_params(self.model, self.dataset.image_shape, self.key(_INIT))
    state = train_state.TrainState.create(apply_fn=self.model.apply, params=params, tx=self.tx)
    return parallel.replicate(state, self.mesh)


def make_setup(config: ml_collections.ConfigDict, dataset: data.Dataset, mesh=None) -> Setup:
  mesh = mesh or parallel.make_mesh()
  parallel.check_divisible('batch_size', config.batch_size, mesh)
  steps_per_epoch = len(dataset.train.images) // config.batch_size
  total_steps = max(1, int(round(config.num_epochs * steps_per_epoch)))
  model = models.make(config, dataset.image_shape)
  tx, schedule = make_optimizer(config, total_steps, steps_per_epoch)
  train_step = make_train_step(model, objectives.make(config), schedule,
                               kl_weight_schedule(config, steps_per_epoch), config.data.binarize == 'dynamic',
                               parallel.sharded(mesh), config.skip_threshold)
  return Setup(config, dataset, model, mesh, tx, schedule, train_step, steps_per_epoch, total_steps,
               jax.random.key(config.seed))


def _flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _prepare_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict, resolved: dict,
                     replace_run: bool) -> None:
  """Refuses (or, with replace_run, moves aside) a run of another config, then writes config.json."""
  path = workdir / checkpoints.CONFIG_FILE
  if path.exists():
    old = _flatten({k: v for k, v in json.loads(path.read_text()).items() if k in _RUN_DEFINING})
    new = _flatten({k: v for k, v in json.loads(config.to_json_best_effort()).items() if k in _RUN_DEFINING})
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed and not replace_run:
      first = changed[0]
      more = f' (and {len(changed) - 1} more: {", ".join(changed[1:])})' if len(changed) > 1 else ''
      raise errors.WorkdirError(
          f'workdir {workdir} holds a run with {first}={old.get(first)!r}, but this config has '
          f'{first}={new.get(first)!r}{more}; use a new --workdir, or pass --replace_run to move that run '
          f'to {workdir}.old-N and start afresh')
    if changed and jax.process_index() == 0:
      n = 1
      while workdir.with_name(f'{workdir.name}.old-{n}').exists():
        n += 1
      aside = workdir.with_name(f'{workdir.name}.old-{n}')
      workdir.rename(aside)
      logging.warning('Moved the run of another config from %s to %s', workdir, aside)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    full = ml_collections.ConfigDict(config.to_dict())
    full.resolved = resolved
    checkpoints.write_config(workdir, full)


def _restore_readable(mngr, state, workdir: pathlib.Path):
  """Restores the newest checkpoint that can be read; unreadable ones are moved aside, not deleted.

  Returns (state, step), step 0 when there is no readable checkpoint.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return checkpoints.restore(mngr, step, state), step
    except Exception as e:  # pylint: disable=broad-except
      bad = workdir / checkpoints.CHECKPOINT_DIR / str(step)
      aside = workdir / 'unreadable_checkpoints' / str(step)
      reason = (str(e).strip().splitlines() or [''])[0][:200]
      logging.warning('The checkpoint at step %d (%s) cannot be read (%s: %s); moved it to %s and resuming '
                      'from the one before', step, bad, type(e).__name__, reason, aside)
      if jax.process_index() == 0:
        aside.parent.mkdir(parents=True, exist_ok=True)
        bad.rename(aside)
      mngr.reload()
  return state, 0


class _StopSignals:
  """While training, SIGTERM and SIGINT ask the loop to checkpoint and exit instead of killing it.

  A second signal of the same kind kills the run as usual.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
    self.received = signum
    logging.warning('Received %s: the run will save a checkpoint and exit after this dispatch',
                    signal.Signals(signum).name)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def requested(self) -> bool:
    """True on every process once any process received a signal (they must stop at the same step)."""
    stop = self.received is not None
    if jax.process_count() > 1:
      stop = bool(np.any(multihost_utils.process_allgather(np.array(stop))))
    return stop


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


def _mean_metrics(buffer: list[dict]) -> dict[str, float]:
  """Means over the applied (not skipped) steps in `buffer`, plus the number of skipped steps."""
  stacked = jax.device_get(buffer)
  cat = {k: np.concatenate([np.atleast_1d(m[k]) for m in stacked]) for k in stacked[0]}
  applied = cat.pop('skipped') == 0
  means = {k: float(np.mean(v[applied])) if applied.any() else float('nan') for k, v in cat.items()}
  return dict(means, skipped_steps=int(np.sum(~applied)))


def _crossed(before: int, after: int, period: int) -> bool:
  return before // period < after // period


def _write_images(workdir, writer, model, params, dataset, config, step, key) -> None:
  """samples.png (decoded prior draws) and reconstructions.png (test images and theirs)."""
  if jax.process_index() != 0:
    return
  n = config.eval.num_images
  lik = type(model.likelihood)
  mean_image = lambda p: np.asarray(lik.mean(p))
  images = {}
  if model.stochastic:
    z = jax.random.normal(jax.random.fold_in(key, 0), (n, model.latent_dim))
    images['samples'] = plots.image_grid(mean_image(model.apply({'params': params}, z, method=model.decode)))
    plots.save_grid(workdir / 'samples.png', images['samples'],
                    f'{n} samples: mean of p(x|z), z ~ N(0, I) (step {step})')
  x = jnp.asarray(dataset.test.images[:n])
  decoded, _, _ = model.apply({'params': params}, x, jax.random.fold_in(key, 1))
  images['reconstructions'] = plots.reconstruction_grid(np.asarray(x), mean_image(decoded))
  plots.save_grid(workdir / 'reconstructions.png', images['reconstructions'],
                  f'Test images (odd rows) and reconstructions, mean of p(x|z), z ~ q(z|x) (step {step})')
  writer.write_images(step, images)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       replace_run: bool = False) -> dict:
  """Trains (or resumes) the run in `workdir`, evaluates on test, returns eval.json's contents.

  A workdir holding a run of another config (seed, batch_size, data, model) is
  refused, or with `replace_run` moved to WORKDIR.old-N first. SIGTERM/SIGINT
  save a checkpoint and raise errors.Preempted; rerunning continues the run.
  """
  config_lib.validate(config)
  dataset = data.load(config)
  setup = make_setup(config, dataset)
  workdir = pathlib.Path(workdir)
  spe, total_steps = setup.steps_per_epoch, setup.total_steps
  eval_every = max(1, int(round(config.eval.every_epochs * spe)))
  resolved = dict(image_shape=list(dataset.image_shape), steps_per_epoch=spe, total_steps=total_steps,
                  num_train=len(dataset.train.images), num_validation=len(dataset.validation.images),
                  num_test=len(dataset.test.images), data_source=dataset.source, jax_version=jax.__version__,
                  devices=[str(d) for d in jax.devices()], process_count=jax.process_count())
  _prepare_workdir(workdir, config, resolved, replace_run)
  logging.info('%s from %s: %d train / %d validation / %d test images of shape %s', dataset.name,
               dataset.source, len(dataset.train.images), len(dataset.validation.images),
               len(dataset.test.images), dataset.image_shape)

  state = setup.initial_state()
  logging.info('%s with %s parameters; %d steps (%d per epoch) on %d device(s)', config.model.kind,
               f'{sum(p.size for p in jax.tree.leaves(state.params)):,}', total_steps, spe, jax.device_count())
  mngr = checkpoints.manager(workdir, config.keep_checkpoints)
  state, start = _restore_readable(mngr, state, workdir)
  if start:
    logging.info('Resumed from the checkpoint at step %d in %s', start, workdir)
  eval_path = workdir / EVAL_FILE
  if start >= total_steps and eval_path.exists():
    mngr.close()
    logging.info('Run in %s is finished (step %d); its test metrics are in %s', workdir, start, eval_path)
    return json.loads(eval_path.read_text())

  writers.truncate_metrics(workdir, start)
  writer = writers.MetricWriter(workdir)
  feed, why = feeds.choose_feed(setup, state, workdir, total_steps - start)
  logging.info('Training set on the %s; %d steps per dispatch, dispatched as %s (%s)', feed.placement,
               config.steps_per_dispatch, feed.mode, why)
  val_evaluator = evaluation.Evaluator(setup.model, config.eval.batch_size, 1, 1, setup.mesh)

  step, buffer = start, []
  consecutive_skips, total_skips = 0, 0
  last_time, last_step = time.perf_counter(), start
  with _StopSignals() as stop:
    while step < total_steps:
      num_steps = min(config.steps_per_dispatch, total_steps - step)
      state, metrics = feed.run(state, step, num_steps)
      buffer.append(metrics)
      before, step = step, step + num_steps

      skipped = np.asarray(metrics['skipped'])
      total_skips += int(skipped.sum())
      applied = np.flatnonzero(skipped == 0)
      consecutive_skips = consecutive_skips + num_steps if not len(applied) else num_steps - 1 - applied[-1]
      if consecutive_skips >= config.max_consecutive_skips:
        writer.close()
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
                     _format_duration((total_steps - step) / steps_per_sec))

      if (_crossed(before, step, eval_every) or step == total_steps) and len(dataset.validation.images):
        eval_start = time.perf_counter()
        val = val_evaluator.evaluate(state.params, dataset.validation.images,
                                     eval_key(config.seed, 'validation'), config.model.likelihood)
        val = {k: v for k, v in val.items()
               if k in ('elbo_nats', 'recon_nats', 'kl_nats', 'active_units') and v is not None}
        writer.write_scalars(step, {f'validation/{k}': v for k, v in val.items()})
        logging.info('validation at step %d: %s', step, ', '.join(f'{k} {v:.2f}' for k, v in val.items()))
        last_time += time.perf_counter() - eval_start  # keep evaluation out of the throughput

      if _crossed(before, step, config.checkpoint_every_steps) or step == total_steps:
        checkpoints.save(mngr, step, state)
      if step < total_steps and stop.requested():
        if mngr.latest_step() != step:
          checkpoints.save(mngr, step, state)
        mngr.wait_until_finished()
        mngr.close()
        writer.close()
        raise errors.Preempted(
            f'{signal.Signals(stop.received).name if stop.received else "a signal"} received: saved the checkpoint '
            f'at step {step} of {total_steps} in {workdir / checkpoints.CHECKPOINT_DIR}; rerun the same command '
            'to continue')
  mngr.wait_until_finished()
  mngr.close()

  logging.info('Evaluating on %d test images with %d importance samples', len(dataset.test.images),
               config.eval.num_importance_samples)
  t0 = time.perf_counter()
  test_evaluator = evaluation.Evaluator(setup.model, config.eval.batch_size, config.eval.num_importance_samples,
                                        config.eval.sample_chunk, setup.mesh, mode=feed.mode)
  results = test_evaluator.evaluate(state.params, dataset.test.images, eval_key(config.seed, 'test'),
                                    config.model.likelihood)
  binarization = config.data.binarize
  if binarization != 'none':
    binarization += f' (test binarized once, seed {config.eval.binarization_seed})'
  results = dict(results, split='test', step=step, binarization=binarization,
                 eval_seconds=round(time.perf_counter() - t0, 2))
  writer.write_scalars(step, {f'test/{k}': v for k, v in results.items()
                              if k.endswith('_nats') or k in ('bits_per_dim', 'active_units')
                              if isinstance(v, (int, float))})
  _write_images(workdir, writer, setup.model, state.params, dataset, config, step, setup.key(_IMAGES))
  writer.close()
  if jax.process_index() == 0:
    tmp = eval_path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(results, indent=2) + '\n')
    tmp.replace(eval_path)
  logging.info('test: %s', ', '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                                     for k, v in results.items() if k != 'kl_per_dim_nats'))
  return results
