"""Training objectives: one module each, and a registry by name.

A kind names its objective (`Kind.objective_name(config)`: its class
attribute `objective`, or 'iwae' whenever model.num_importance_samples > 1).
`base.Objective` is the door: the loss of a batch, the parameter groups and
their optimizers, the stages, and an update after each step. Adding one is a
module here with a subclass and its line in `OBJECTIVES` (or, from outside the
package, `objectives.OBJECTIVES['name'] = MyObjective`).
"""

from vae_jax import models
from vae_jax.training.objectives.base import Objective
from vae_jax.training.objectives.disentangling import Annealed
from vae_jax.training.objectives.disentangling import Dip
from vae_jax.training.objectives.disentangling import Discriminated
from vae_jax.training.objectives.disentangling import TotalCorrelation
from vae_jax.training.objectives.elbo import Elbo
from vae_jax.training.objectives.elbo import elbo_objective
from vae_jax.training.objectives.iwae import Iwae
from vae_jax.training.objectives.iwae import iwae_objective
from vae_jax.training.objectives.sequence import SequenceElbo
from vae_jax.training.objectives.vector_quantized import VectorQuantized

__all__ = ['Elbo', 'Iwae', 'OBJECTIVES', 'Objective', 'VectorQuantized', 'check_config', 'elbo_objective',
           'iwae_objective', 'make', 'name_of']

OBJECTIVES: dict[str, type[Objective]] = {
    'elbo': Elbo,
    'iwae': Iwae,
    'vqvae': VectorQuantized,
    'annealed_vae': Annealed,
    'beta_tcvae': TotalCorrelation,
    'dip_vae': Dip,
    'factor_vae': Discriminated,
    'sequence_elbo': SequenceElbo,
}


def name_of(config) -> str:
  """The objective the config's kind trains on."""
  return models.MODELS[config.model.kind].objective_name(config)


def check_config(config) -> None:
  """The objective's own checks of the settings (errors.ConfigError)."""
  OBJECTIVES[name_of(config)].check_config(config)


def make(config, num_train: int | None = None) -> Objective:
  """The objective of `config`'s kind, once it has checked the settings (errors.ConfigError); `num_train`: the
  training set's size."""
  check_config(config)
  return OBJECTIVES[name_of(config)](config, num_train)
