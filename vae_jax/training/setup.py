"""A run's setup: the model, objective, data, mesh, optimizer and pure train step of each stage.

Randomness is derived, never stored: every stream of randomness is a fold_in
of the run's root key (`vae_jax.runtime.keys`), so training, its evaluations
and `vae_jax.evaluate` draw the same numbers from the same seed, and the
feeds, the trainer and the benchmark share one `Setup`.
"""

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import ml_collections
import optax

from vae_jax import data
from vae_jax import models
from vae_jax.runtime import keys as keys_lib
from vae_jax.runtime import parallel
from vae_jax.training import objectives
from vae_jax.training import optimizer
from vae_jax.training import stages as stages_lib
from vae_jax.training import step as step_lib


@dataclasses.dataclass(frozen=True)
class StagePlan:
  """One training stage (`vae_jax.training.stages`) resolved into steps [start, end), with its own optimizer."""
  stage: stages_lib.Stage
  start: int
  end: int
  tx: optax.GradientTransformation
  schedule: optax.Schedule  # of the global step
  train_step: Callable


@dataclasses.dataclass
class Setup:
  """Everything a run needs besides its state: the pieces `benchmark` times too.

  `tx`, `schedule` and `train_step` are those of the stage being set up (the
  first unless `for_stage` chose another); `plans` holds every stage's.
  """
  config: ml_collections.ConfigDict
  dataset: data.Dataset
  model: nn.Module         # a kind of vae_jax.models
  objective: objectives.Objective  # what it trains on
  mesh: jax.sharding.Mesh
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  train_step: Callable     # pure (state, batch, key) -> (state, metrics)
  steps_per_epoch: int
  total_steps: int
  root_key: jax.Array
  plans: tuple[StagePlan, ...] = ()

  def stage_index(self, step: int) -> int:
    """The stage that trains step `step` (the last one once training is over)."""
    return next((i for i, p in enumerate(self.plans) if step < p.end), len(self.plans) - 1)

  def for_stage(self, index: int) -> 'Setup':
    plan = self.plans[index]
    return dataclasses.replace(self, tx=plan.tx, schedule=plan.schedule, train_step=plan.train_step)

  def key(self, stream: int) -> jax.Array:
    return jax.random.fold_in(self.root_key, stream)

  @property
  def train_key(self) -> jax.Array:
    """The key every train step folds its step number into."""
    return self.key(keys_lib.TRAIN)

  @property
  def shuffle_key(self) -> jax.Array:
    """The key every epoch's order folds its epoch number into."""
    return self.key(keys_lib.SHUFFLE)

  def initial_state(self) -> optimizer.TrainState:
    params = models.init_params(self.model, self.dataset.spec, self.key(keys_lib.INIT))
    state = optimizer.create_state(self.model, params, self.tx, self.config.optim.ema_decay)
    return parallel.replicate(state, self.mesh)


def _shifted(schedule: optax.Schedule, start: int) -> optax.Schedule:
  return schedule if start == 0 else lambda step: schedule(step - start)


def make_setup(config: ml_collections.ConfigDict, dataset: data.Dataset, mesh=None) -> Setup:
  mesh = mesh or parallel.make_mesh()
  parallel.check_divisible('batch_size', config.batch_size, mesh)
  steps_per_epoch = len(dataset.train.examples) // config.batch_size
  model = models.make(config, dataset.spec)
  objective, kl_weight = objectives.make(config, len(dataset.train.examples)), step_lib.kl_weight_schedule(config, steps_per_epoch)
  plans, start = [], 0
  for stage in objective.stages():
    steps = max(1, int(round(stage.num_epochs * steps_per_epoch)))
    tx, schedule = objective.optimizer(steps, steps_per_epoch)  # the schedule of the optimizer's own count
    schedule = _shifted(schedule, start)
    train_step = step_lib.make_train_step(model, objective, schedule, kl_weight, config.data.binarize == 'dynamic',
                                          parallel.sharded(mesh), config.skip_threshold, config.optim.ema_decay,
                                          stage, decode=dataset.spec.decode)
    plans.append(StagePlan(stage, start, start + steps, tx, schedule, train_step))
    start += steps
  first = plans[0]
  return Setup(config, dataset, model, objective, mesh, first.tx, first.schedule, first.train_step,
               steps_per_epoch, start, jax.random.key(config.seed), tuple(plans))
