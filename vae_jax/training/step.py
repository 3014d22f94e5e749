"""The pure train step and the KL weight it applies."""

import jax
import jax.numpy as jnp
import optax

from vae_jax.runtime import keys as keys_lib
from vae_jax.training import objectives
from vae_jax.training import optimizer


def kl_weight_schedule(config, steps_per_epoch: int):
  """The KL weight at a step: beta, reached linearly over `model.kl_warmup_epochs` (immediately when 0); or,
  with model.annealing=cyclical (Fu et al. 2019), `annealing_cycles` equal cycles over the run's num_epochs,
  each rising linearly from 0 to beta over its first `annealing_ratio` and then holding beta."""
  beta, m = config.model.beta, config.model
  if m.annealing == 'cyclical':
    period = max(1.0, config.num_epochs * steps_per_epoch / m.annealing_cycles)
    rise = max(1.0, m.annealing_ratio * period)

    def cyclical(step):
      within = jnp.mod(step.astype(jnp.float32), period)
      return beta * jnp.minimum(1.0, within / rise)
    return cyclical
  warmup_steps = m.kl_warmup_epochs * steps_per_epoch
  if warmup_steps <= 0:
    return lambda step: jnp.asarray(beta, jnp.float32)
  return lambda step: beta * jnp.minimum(1.0, step.astype(jnp.float32) / warmup_steps)


# Folded into a step's key for `after_update`; the examples' keys take the batch positions 0.. n-1.
_STATE_STREAM = 2**31 - 1


def _freeze(params, trains):
  """params with those that `trains(path)` rejects behind stop_gradient: no gradient, no backward pass."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p if trains(objectives.base.param_path(path)) else jax.lax.stop_gradient(p), params)


def _merge(params, new: dict):
  """params with the leaves of the partial tree `new` replaced."""
  if not isinstance(new, dict):
    return new
  return {k: _merge(v, new[k]) if k in new else v for k, v in params.items()}


def make_train_step(model, objective, schedule, kl_weight, dynamic_binarize: bool, batch_sharding=None,
                    skip_threshold: float = float('inf'), ema_decay: float = 0.0, stage=None, decode=None):
  """Returns the pure train_step(state, batch, key) -> (state, metrics).

  `objective` (`vae_jax.training.objectives.Objective`) gives the loss; the
  step is the same for every objective. `key` is the run's training key; the
  step folds in its own step number, then each example its position in the
  batch. `batch` is {'x': examples, 'label': their classes (absent when the
  data have none)}; with dynamic binarization every value of x is redrawn
  from Bernoulli(value). `batch_sharding`, when given, keeps the per-example
  randomness on the device that holds the example.

  A step whose loss or gradient norm is not finite, or whose gradient norm
  exceeds `skip_threshold`, is skipped: parameters, their EMA and the
  optimizer state stay as they were, the step counter moves on, and
  metrics['skipped'] is 1.

  `stage` (`vae_jax.training.stages.Stage`): the parameters it does not train
  get no gradient, and the objective's `after_update` runs when the stage says so.

  `decode` (the data's `spec.decode`) turns the batch's stored examples (uint8
  codes for images) into the model's input, first thing: every feed hands the
  step what the dataset stores.
  """
  trains = stage.trains if stage is not None else None
  after_update = stage is None or stage.after_update

  def train_step(state, batch, key):
    x = batch['x'] if decode is None else decode(batch['x'])
    positions = jnp.arange(x.shape[0])
    if batch_sharding is not None:
      positions = jax.lax.with_sharding_constraint(positions, batch_sharding)
    keys = keys_lib.per_example_keys(jax.random.fold_in(key, state.step), positions)
    binarize_keys, sample_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    if dynamic_binarize:
      x = jax.vmap(jax.random.bernoulli)(binarize_keys, x).astype(x.dtype)
    batch = dict(batch, x=x, step=state.step)  # the step, for objectives with schedules of their own
    weight = kl_weight(state.step)

    def loss_fn(params):
      return objective.loss(model, params if trains is None else _freeze(params, trains), batch, sample_keys, weight)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (grad_norm <= skip_threshold)
    updated = state.apply_gradients(grads=grads)
    if after_update:
      state_key = jax.random.fold_in(jax.random.fold_in(key, state.step), _STATE_STREAM)
      new = objective.after_update(model, updated.params, batch, state_key)
      if new is not None:
        updated = updated.replace(params=_merge(updated.params, new))
    updated = optimizer.update_ema(updated, ema_decay)
    kept = state.replace(step=updated.step)
    new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), updated, kept)
    metrics = dict(metrics, grad_norm=grad_norm, learning_rate=schedule(state.step), kl_weight=weight,
                   skipped=(~ok).astype(jnp.int32))
    return new_state, metrics

  return train_step
