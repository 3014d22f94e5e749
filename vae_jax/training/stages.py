"""Training stages: what an objective trains, in order, within one run and one workdir.

Most objectives train everything in one stage. One with a second stage (the
VQ-VAE's prior over its codes, trained on the frozen first stage) lists its
stages from `Objective.stages()`; the trainer runs them one after another, each
with a fresh optimizer and its own learning-rate schedule, and the step
number alone says which stage a checkpoint belongs to, so rerunning resumes
whichever stage was interrupted.
"""

import dataclasses
from typing import Callable


def _everything(path: tuple[str, ...]) -> bool:
  del path
  return True


@dataclasses.dataclass(frozen=True)
class Stage:
  """name; num_epochs; trains(path) -> whether the parameter at `path` (a tuple of names) is trained;
  after_update: whether the objective's `after_update` runs after each step (statistics that follow the data)."""
  name: str
  num_epochs: float
  trains: Callable[[tuple[str, ...]], bool] = _everything
  after_update: bool = True


def single(config) -> tuple[Stage, ...]:
  """The one stage of most kinds: every parameter, config.num_epochs."""
  return (Stage('model', config.num_epochs),)
