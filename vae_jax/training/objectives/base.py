"""`Objective`: what a kind trains on, and how its parameters are optimized.

The train step (`vae_jax.training.step`) is one for every objective: it draws
the examples' keys, binarizes, makes one `value_and_grad` call of `loss`,
applies the optimizer, skips a non-finite or exploding update, runs
`after_update` and the EMA. Everything an objective may want differently is a
member here, with the default that most kinds use:

  loss(model, params, batch, keys, kl_weight) -> (loss, metrics)
      The scalar to minimize for a batch ({'x': examples, 'label': classes,
      absent when the data have none, 'step': the step number}; keys: one per example) and the batch
      means to log, in nats per example where they are bounds. Networks with
      opposed aims (a discriminator) train in the same call: each part of the
      loss reaches only its own parameters through jax.lax.stop_gradient.
  groups(total_steps, steps_per_epoch) -> {name: (optax transformation, schedule)}
      One optimizer per group of parameters (learning rate, schedule,
      clipping). Default: one group, 'model', Adam on config.optim.
  group_of(path) -> the group of the parameter at `path` (a tuple of names);
      asked only when there is more than one group.
  stages() -> the `stages.Stage`s the run trains, in order (default: one).
  after_update(model, params, batch, key) -> None, or a partial tree of
      parameters whose new values follow the data rather than the gradient
      (a VQ-VAE's EMA codebook); run after each applied update of a stage
      whose `after_update` is set.
  check_config(config) -> raises errors.ConfigError for settings it cannot honour.

A new objective is a module in this package with a subclass, plus its line in
`OBJECTIVES`; a kind names it in its class attribute `objective`.
"""

from typing import Callable

import jax
import optax

from vae_jax.training import optimizer
from vae_jax.training import stages as stages_lib


class Objective:
  """The default objective's members; subclasses override what differs."""

  def __init__(self, config, num_train: int | None = None):
    """`num_train`: the training set's size, for estimates over the whole data from a batch."""
    self.config, self.num_train = config, num_train

  @classmethod
  def check_config(cls, config) -> None:
    del config

  def loss(self, model, params, batch: dict, keys: jax.Array, kl_weight) -> tuple[jax.Array, dict]:
    raise NotImplementedError(f'{type(self).__name__}.loss')

  def groups(self, total_steps: int, steps_per_epoch: int) -> dict[str, tuple[optax.GradientTransformation,
                                                                               optax.Schedule]]:
    schedule = optimizer.learning_rate_schedule(self.config, total_steps, steps_per_epoch)
    return {'model': (optimizer.adam(self.config.optim, schedule), schedule)}

  def group_of(self, path: tuple[str, ...]) -> str:
    raise NotImplementedError(f'{type(self).__name__} has more than one parameter group but no group_of')

  def stages(self) -> tuple[stages_lib.Stage, ...]:
    return stages_lib.single(self.config)

  def after_update(self, model, params, batch: dict, key: jax.Array) -> dict | None:
    del model, params, batch, key
    return None

  def optimizer(self, total_steps: int, steps_per_epoch: int) -> tuple[optax.GradientTransformation,
                                                                       optax.Schedule]:
    """The groups' transformations as one, and the first group's schedule (the logged learning_rate).

    One group is its transformation itself, so the optimizer state, and with it
    every checkpoint, is that of a plain optax chain; more are an
    `optax.multi_transform` over `group_of`'s labels.
    """
    groups = self.groups(total_steps, steps_per_epoch)
    (tx, schedule), = list(groups.values())[:1]
    if len(groups) == 1:
      return tx, schedule
    return optax.multi_transform({name: t for name, (t, _) in groups.items()},
                                 lambda params: labels_of(params, self.group_of)), schedule


def labels_of(params, group_of: Callable[[tuple[str, ...]], str]):
  """The tree of group names `optax.multi_transform` reads: group_of(path) for every parameter."""
  return jax.tree_util.tree_map_with_path(lambda path, _: group_of(param_path(path)), params)


def param_path(path) -> tuple[str, ...]:
  """A parameter's tree path as a tuple of names."""
  return tuple(str(getattr(k, 'key', k)) for k in path)
