"""Adam, the learning-rate schedules, and the train state with an EMA of the parameters.

An objective (`vae_jax.training.objectives`) combines them into its optimizer.

With optim.ema_decay > 0 the state carries an exponential moving average of
the parameters: it is what validation, the test evaluation, the images and
`load_run` use, and it is checkpointed with the rest, so resume stays
bit-exact. With 0 it is None and the checkpoints are as before.

The decay ramps up, min(ema_decay, (1 + t) / (10 + t)) at update t (as
TensorFlow's ExponentialMovingAverage with `num_updates`): a fixed 0.999 from
the first step would leave 0.999^t of the initialization in the average, a
third of it after 1,000 steps, so a short run's EMA would be judged as a
half-trained model. With the ramp the average covers about the last tenth of
a short run's steps, and from t = 9,000 (at 0.999) it is the plain EMA, whose
memory of the first 9,000 steps is then below float32 rounding after a
further 16,000.
"""

from typing import Any
from typing import NamedTuple

from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax


class TrainState(train_state.TrainState):
  """Flax's TrainState plus `ema_params` (None when optim.ema_decay is 0)."""
  ema_params: Any = None


def create_state(model, params, tx: optax.GradientTransformation, ema_decay: float) -> TrainState:
  ema = jax.tree.map(lambda p: p.copy(), params) if ema_decay > 0 else None
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=ema)


def ema_decay_at(decay: float, num_updates):
  """The decay applied at update number `num_updates` (1 for the first): min(decay, (1 + t) / (10 + t))."""
  t = jnp.asarray(num_updates, jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


def update_ema(state: TrainState, decay: float) -> TrainState:
  """ema <- d * ema + (1 - d) * params after the parameters were updated, d = ema_decay_at(decay, step)."""
  if state.ema_params is None:
    return state
  d = ema_decay_at(decay, state.step)
  ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema_params, state.params)
  return state.replace(ema_params=ema)


def eval_params(state: TrainState):
  """The parameters to evaluate: the EMA when there is one."""
  return state.params if state.ema_params is None else state.ema_params


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


def adam(optim, schedule: optax.Schedule) -> optax.GradientTransformation:
  """Adam on `schedule` after global-norm clipping, with the settings of `optim` (config.optim)."""
  return optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm),
                     optax.adam(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps))


class GatedState(NamedTuple):
  count: jax.Array
  inner: optax.OptState


def gated(tx: optax.GradientTransformation, active) -> optax.GradientTransformation:
  """`tx` applied at the steps where active(count) holds (count: this transformation's own step count, from 0);
  at the others the update is zero and `tx`'s state stands still. A group of parameters that trains only on
  some steps (the sequence VAE's aggressive encoder phase) keeps one optimizer structure throughout."""

  def init(params):
    return GatedState(jnp.zeros([], jnp.int32), tx.init(params))

  def update(updates, state, params=None):
    on = active(state.count)
    new_updates, new_inner = tx.update(updates, state.inner, params)
    keep = lambda new, old: jnp.where(on, new, old)
    return (jax.tree.map(lambda u: jnp.where(on, u, jnp.zeros_like(u)), new_updates),
            GatedState(state.count + 1, jax.tree.map(keep, new_inner, state.inner)))

  return optax.GradientTransformation(init, update)
