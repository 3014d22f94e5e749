"""Latent-variable models: one module per kind, one interface for all of them.

A kind is a subclass of `kind.Kind` (the interface as code: its docstring is
the contract, its class attributes the defaults) in its own module here, plus
one line in `MODELS`. Training, evaluation, `load_run`, the plots, the
report, sweeps and the notebook use only that interface, so adding a kind
touches nothing outside this package. Priors (`priors`), posterior flows
(`flows`) and likelihoods (`vae_jax.models.likelihoods`) are parts that kinds
combine; `blocks` holds the networks they share.

Adding a kind: write `models/<kind>.py` with a `Kind` subclass (subclass `VAE`
when only some members differ), add it to `MODELS`, and it is a valid
`model.kind` for configs, sweeps, evaluation and `load_run`. A kind that
trains on something other than the ELBO names its objective in its class
attribute `objective` (`vae_jax.training.objectives`: the loss, parameter
groups with their optimizers, stages, an update after each step). Give it a
case in tests/test_models.py (its conformance test fails for a registered
kind without one) and tests/test_kinds.py.
"""

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import data
from vae_jax.models.autoencoder import Autoencoder
from vae_jax.models.cvae import CVAE
from vae_jax.models.disentangling import AnnealedVAE
from vae_jax.models.disentangling import BetaTCVAE
from vae_jax.models.disentangling import DIPVAE
from vae_jax.models.disentangling import FactorVAE
from vae_jax.models.hvae import HVAE
from vae_jax.models.kind import Kind
from vae_jax.models.seqvae import LanguageModel
from vae_jax.models.seqvae import SeqVAE
from vae_jax.models.vae import IWAE
from vae_jax.models.vae import VAE
from vae_jax.models.vqvae import VQVAE

MODELS: dict[str, type[Kind]] = {
    'vae': VAE,
    'iwae': IWAE,
    'ae': Autoencoder,
    'hvae': HVAE,
    'cvae': CVAE,
    'vqvae': VQVAE,
    'annealed_vae': AnnealedVAE,
    'beta_tcvae': BetaTCVAE,
    'dip_vae': DIPVAE,
    'factor_vae': FactorVAE,
    'seqvae': SeqVAE,
    'lm': LanguageModel,
}


def check_config(config) -> None:
  """The kind's own checks of the settings it combines (prior, flow, blocks)."""
  MODELS[config.model.kind].check_config(config)


def _spec(spec) -> data.ExampleSpec:
  """`spec` itself; an (H, W, C) shape, as callers gave before specs, is an 8-bit image spec."""
  return spec if isinstance(spec, data.ExampleSpec) else data.ImageSpec.of_shape(spec)


def make(config, spec: data.ExampleSpec) -> nn.Module:
  """Builds the model named by `config.model.kind` for examples of `spec` (`vae_jax.data.ExampleSpec`)."""
  return MODELS[config.model.kind].build(config, _spec(spec))


def describe_kl(model) -> str | None:
  """A sentence for the log on how the kind's KL is computed when it is not in closed form, else None."""
  return getattr(model, 'kl_note', None) if model.stochastic else None


def init_params(model: nn.Module, spec: data.ExampleSpec, key: jax.Array):
  """Initial parameters, from a dummy batch of two examples of `spec` (with labels, read by conditional kinds).

  Jitted: run op by op, a deep model's init compiles every small op on its own (10 s for a tiny
  conv hierarchy, against 2 s as one program); the values are the same.
  """
  init_key, sample_key = jax.random.split(key)
  dummy = jnp.asarray(_spec(spec).dummy(2)), jnp.zeros((2,), jnp.int32)  # examples and their labels
  init = jax.jit(lambda k, keys: model.init(k, dummy[0], keys, dummy[1])['params'])
  return init(init_key, jax.random.split(sample_key, 2))


def log_kl_kind(model) -> None:
  message = describe_kl(model)
  if message:
    logging.info('%s', message)
