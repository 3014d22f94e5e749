"""The training loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Randomness is derived, never stored: the key of step s is fold_in(train_key, s)
and the data order of epoch e comes from (seed, e). A run resumed from a
checkpoint therefore draws exactly what an uninterrupted run would.
"""

import functools
import json
import math
import pathlib
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from vae_jax import checkpoints
from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import evaluation
from vae_jax import models
from vae_jax import objectives
from vae_jax import plots
from vae_jax import writers

EVAL_FILE = 'eval.json'
# Fields that define what the checkpoints in a workdir are; the rest (epochs,
# learning rate, evaluation, logging) may change when a run is resumed.
_RUN_DEFINING = ('seed', 'batch_size', 'data', 'model')
# Streams of the run's root key.
_INIT, _TRAIN, _EVAL, _IMAGES = range(4)


def make_optimizer(config, total_steps: int):
  """Adam with global-norm clipping and a warm-up + cosine (or constant) schedule."""
  lr, warmup = config.learning_rate, config.optim.warmup_steps
  if config.optim.schedule == 'cosine':
    schedule = optax.warmup_cosine_decay_schedule(
        0.0 if warmup else lr, lr, warmup, max(total_steps, warmup + 1), lr * config.optim.final_lr_fraction)
  else:
    schedule = optax.warmup_constant_schedule(0.0 if warmup else lr, lr, warmup)
  tx = optax.chain(optax.clip_by_global_norm(config.optim.grad_clip_norm),
                   optax.adam(schedule, b1=config.optim.b1, b2=config.optim.b2))
  return tx, schedule


def kl_weight_schedule(config, steps_per_epoch: int):
  """beta, reached linearly over `model.kl_warmup_epochs` (immediately when 0)."""
  beta = config.model.beta
  warmup_steps = config.model.kl_warmup_epochs * steps_per_epoch
  if warmup_steps <= 0:
    return lambda step: jnp.asarray(beta, jnp.float32)
  return lambda step: beta * jnp.minimum(1.0, step.astype(jnp.float32) / warmup_steps)


def make_train_step(model, objective, schedule, kl_weight, dynamic_binarize: bool):
  """Returns the jitted train_step(state, batch, key) -> (state, metrics).

  `key` is the run's training key; the step folds in its own step number.
  `batch` holds images in [0, 1]; with dynamic binarization every pixel is
  redrawn from Bernoulli(intensity) on device.
  """

  def train_step(state, batch, key):
    step_key = jax.random.fold_in(key, state.step)
    binarize_key, sample_key = jax.random.split(step_key)
    if dynamic_binarize:
      batch = jax.random.bernoulli(binarize_key, batch).astype(batch.dtype)
    weight = kl_weight(state.step)
    loss_fn = functools.partial(objective, model)
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, sample_key, weight)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads), learning_rate=schedule(state.step),
                   kl_weight=weight)
    return state.apply_gradients(grads=grads), metrics

  return jax.jit(train_step, donate_argnums=0)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def _prepare_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict, resolved: dict) -> None:
  """Checks an existing run matches the config, then writes config.json."""
  path = workdir / checkpoints.CONFIG_FILE
  if path.exists():
    old = json.loads(path.read_text())
    new = json.loads(config.to_json_best_effort())
    for field in _RUN_DEFINING:
      if old.get(field) != new.get(field):
        raise errors.WorkdirError(
            f'workdir {workdir} holds a run with a different {field!r} ({old.get(field)} != {new.get(field)}); '
            'use a new --workdir, or the same config to resume')
  workdir.mkdir(parents=True, exist_ok=True)
  full = ml_collections.ConfigDict(config.to_dict())
  full.resolved = resolved
  checkpoints.write_config(workdir, full)


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


def _mean_metrics(buffer: list[dict]) -> dict[str, float]:
  stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *buffer))
  return {k: float(v) for k, v in stacked.items()}


def _write_images(workdir, writer, model, params, dataset, config, step, key) -> None:
  """samples.png (decoded prior draws) and reconstructions.png (test images and theirs)."""
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains (or resumes) the run in `workdir`, evaluates on test, returns eval.json's contents."""
  config_lib.validate(config)
  dataset = data.load(config)
  workdir = pathlib.Path(workdir)
  train_images = dataset.train.images
  steps_per_epoch = len(train_images) // config.batch_size
  total_steps = max(1, int(round(config.num_epochs * steps_per_epoch)))
  eval_every = max(1, int(round(config.eval.every_epochs * steps_per_epoch)))
  resolved = dict(image_shape=list(dataset.image_shape), steps_per_epoch=steps_per_epoch,
                  total_steps=total_steps, num_train=len(train_images),
                  num_validation=len(dataset.validation.images), num_test=len(dataset.test.images),
                  data_source=dataset.source, jax_version=jax.__version__,
                  devices=[str(d) for d in jax.devices()])
  _prepare_workdir(workdir, config, resolved)
  logging.info('%s from %s: %d train / %d validation / %d test images of shape %s', dataset.name,
               dataset.source, len(train_images), len(dataset.validation.images), len(dataset.test.images),
               dataset.image_shape)

  model = models.make(config, dataset.image_shape)
  root = jax.random.key(config.seed)
  tx, schedule = make_optimizer(config, total_steps)
  state = train_state.TrainState.create(
      apply_fn=model.apply, tx=tx,
      params=models.init_params(model, dataset.image_shape, jax.random.fold_in(root, _INIT)))
  logging.info('%s with %s parameters; %d steps (%d per epoch)', config.model.kind,
               f'{sum(p.size for p in jax.tree.leaves(state.params)):,}', total_steps, steps_per_epoch)

  mngr = checkpoints.manager(workdir, config.keep_checkpoints)
  start = mngr.latest_step() or 0
  if start:
    state = checkpoints.restore(mngr, start, state)
    logging.info('Resumed from the checkpoint at step %d in %s', start, workdir)
  eval_path = workdir / EVAL_FILE
  if start >= total_steps and eval_path.exists():
    mngr.close()
    logging.info('Run in %s is finished (step %d); its test metrics are in %s', workdir, start, eval_path)
    return json.loads(eval_path.read_text())

  writers.truncate_metrics(workdir, start)
  writer = writers.MetricWriter(workdir)
  train_step = make_train_step(model, objectives.OBJECTIVES[config.model.kind], schedule,
                               kl_weight_schedule(config, steps_per_epoch), config.data.binarize == 'dynamic')
  val_evaluator = evaluation.Evaluator(model, config.eval.batch_size, 1, 1)
  train_key, eval_key = jax.random.fold_in(root, _TRAIN), jax.random.fold_in(root, _EVAL)

  step, buffer, perm_epoch, perm = start, [], -1, None
  last_time, last_step = time.perf_counter(), start
  while step < total_steps:
    epoch, i = divmod(step, steps_per_epoch)
    if epoch != perm_epoch:
      perm, perm_epoch = epoch_permutation(config.seed, epoch, len(train_images)), epoch
    batch = train_images[perm[i * config.batch_size:(i + 1) * config.batch_size]]
    state, metrics = train_step(state, batch, train_key)
    buffer.append(metrics)
    step += 1

    if step % config.log_every_steps == 0 or step == total_steps:
      means = _mean_metrics(buffer)
      buffer = []
      if not math.isfinite(means['loss']):
        raise errors.TrainingError(
            f'the training loss became {means["loss"]} by step {step}; the last good checkpoint is kept in '
            f'{workdir / checkpoints.CHECKPOINT_DIR}. Lower learning_rate or optim.grad_clip_norm')
      now = time.perf_counter()
      steps_per_sec = (step - last_step) / (now - last_time)
      last_time, last_step = now, step
      writer.write_scalars(step, {f'train/{k}': v for k, v in means.items()} | {
          'train/steps_per_sec': steps_per_sec, 'train/images_per_sec': steps_per_sec * config.batch_size,
          'train/epoch': step / steps_per_epoch})
      summary = ' '.join(f'{k.removesuffix("_nats")} {means[k]:.2f}'
                         for k in ('loss', 'elbo_nats', 'recon_nats', 'kl_nats') if k in means)
      logging.info('step %d/%d (epoch %.1f) | %s | %.1f steps/s, %.0f images/s | ETA %s', step, total_steps,
                   step / steps_per_epoch, summary, steps_per_sec, steps_per_sec * config.batch_size,
                   _format_duration((total_steps - step) / steps_per_sec))

    if (step % eval_every == 0 or step == total_steps) and len(dataset.validation.images):
      eval_start = time.perf_counter()
      val = val_evaluator.evaluate(state.params, dataset.validation.images, eval_key, config.model.likelihood)
      val = {k: v for k, v in val.items() if k.endswith('_nats') and v is not None and 'nll' not in k}
      writer.write_scalars(step, {f'validation/{k}': v for k, v in val.items()})
      logging.info('validation at step %d: %s', step, ', '.join(f'{k} {v:.2f}' for k, v in val.items()))
      last_time += time.perf_counter() - eval_start  # keep evaluation out of the throughput

    if step % config.checkpoint_every_steps == 0 or step == total_steps:
      checkpoints.save(mngr, step, state)
  mngr.wait_until_finished()
  mngr.close()

  logging.info('Evaluating on %d test images with %d importance samples', len(dataset.test.images),
               config.eval.num_importance_samples)
  t0 = time.perf_counter()
  test_evaluator = evaluation.Evaluator(model, config.eval.batch_size, config.eval.num_importance_samples,
                                        config.eval.sample_chunk)
  results = test_evaluator.evaluate(state.params, dataset.test.images, jax.random.fold_in(eval_key, 1),
                                    config.model.likelihood)
  binarization = config.data.binarize
  if binarization != 'none':
    binarization += f' (test binarized once, seed {config.eval.binarization_seed})'
  results = dict(results, split='test', step=step, binarization=binarization,
                 eval_seconds=round(time.perf_counter() - t0, 2))
  writer.write_scalars(step, {f'test/{k}': v for k, v in results.items()
                              if k.endswith('_nats') or k == 'bits_per_dim' if v is not None})
  _write_images(workdir, writer, model, state.params, dataset, config, step, jax.random.fold_in(root, _IMAGES))
  writer.close()
  if jax.process_index() == 0:
    tmp = eval_path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(results, indent=2) + '\n')
    tmp.replace(eval_path)
  logging.info('test: %s', ', '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                                     for k, v in results.items()))
  return results
