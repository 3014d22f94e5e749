"""Latent-variable models: one module per kind, one interface for all of them.

A kind is a flax module in this package plus one line in `MODELS`. Training,
evaluation, `load_run`, the plots, the report, sweeps and the notebook use
only the members below, so adding a kind touches nothing outside this
package. Priors (`priors`), posterior flows (`flows`) and likelihoods
(`vae_jax.likelihoods`) are parts that kinds combine; `blocks` holds the
networks they share.

Building
  Kind.check_config(config)       raise errors.ConfigError for settings the kind cannot honour
  Kind.build(config, image_shape) the module for images (H, W, C)

Class attributes
  stochastic   False for a kind with no prior or posterior (`ae`): it then has
               no KL, no ELBO, no log p(x) and no samples.
  conditional  True for a kind conditioned on the class label y (`cvae`): its
               ELBO and likelihood are those of log p(x|y), and it has
               `num_classes`.
  objective    'elbo' or 'iwae': the training bound (`vae_jax.objectives`); the
               IWAE bound is also used whenever model.num_importance_samples > 1.
  max_importance_samples
               None, or the most importance samples worth drawing: 1 for a
               point-mass posterior (`vqvae`), whose bound one sample gives exactly.
  updates_state
               True for a kind with statistics that follow the data rather
               than the gradient (a VQ-VAE's EMA codebook, code counts). They
               live among the parameters, read through stop_gradient so the
               optimizer leaves them alone, and `update_state` rewrites them.

Class methods
  stages(config) -> tuple of `stages.Stage`: what the run trains, in order
               (most kinds: one stage; `vqvae`: the autoencoder, then the
               prior over its codes on the frozen first stage).

Properties
  latent_dim   size of the flat latent vector z of `encode` and `decode`: all
               groups flattened and concatenated, top group first.
  group_sizes  the size of each latent group within it (one entry per group).
  likelihood   the head of p(x|z); type(likelihood).mean / .sample / .log_prob
               turn its parameters into images and log-probabilities.

Methods (x: images (n, H, W, C); keys: one PRNG key per example, every
random draw of example j made from keys[j] alone, so results do not depend on
batching or the number of devices; labels: the images' classes (n,) int32,
or None. Every kind accepts `labels` where listed; an unconditional kind
ignores them, and the trainer and the evaluation always pass them.)
  infer(x, labels=None) -> ctx
      The deterministic part of q(z|x) shared by all of x's posterior samples
      (a pytree of arrays with a leading batch axis, holding whatever `terms`
      needs of the labels). Estimators compute it once and reuse it for the k
      samples of IWAE and importance sampling.
  terms(x, ctx, keys) -> dict, for one fresh z ~ q(z|x) per example:
      log_px_z (n,)    log p(x|z)
      kl (n, G)        per latent group, KL(q(z_g|x, z_<g) || p(z_g|z_<g)):
                       closed form where one exists, else log q - log p at z
      log_ratio (n,)   log p(z) - log q(z|x) at z; the log importance weight
                       is log_px_z + log_ratio. (Not given when not stochastic.)
      kl_per_dim (n, latent_dim), optional: a closed-form KL per dimension.
      aux_loss (n,), optional: added to the training loss only (a VQ-VAE's
                       commitment), never to a bound.
      code_usage (n, K), optional: codes assigned per example, for the
                       codebook's perplexity and the number of codes used.
      NAME_nats (n,), optional: a kind's own figures in nats, averaged into
                       the training log and eval.json under their names.
    ELBO = log_px_z - sum(kl). beta, KL warm-up and free bits weight `kl`;
    IWAE, the importance-sampled NLL and the ELBO estimate use the log weight.
  encode(x, labels=None) -> (mean, log_var), each (n, latent_dim)
      The representation plots and active units use: the posterior means (for
      a hierarchy, along the path where each group sits at its mean). `ae`
      returns (code, None).
  decode(z, labels=None) -> parameters of p(x|z)
  sample(key, n, temperature=1.0, labels=None) -> parameters of p(x|z), z
      drawn from the prior with each group's spread scaled by its temperature
      (one number, or one per group, top first). A conditional kind draws
      the classes in turn when `labels` is None (so does its `decode`).
  reconstruct(x, keys, labels=None) -> parameters of p(x|z), z ~ q(z|x).
  __call__(x, keys, labels=None) -> terms(x, infer(x, labels), keys); touches
      every parameter, so `init_params` uses it.
  update_state(x, labels, key) -> a partial tree of parameters, only where
      `updates_state`: their new values after a step on the batch x.

Bits-back coding (`vae_jax.bitsback`), for kinds whose posterior groups are diagonal Gaussians
  coding_obstacle  None when the kind can be coded, else one line saying why not
               (a flow posterior, a label to carry, a point mass, a
               continuous likelihood); every kind has it.
  latent_gaussians(x, z, labels=None)
      -> [(prior_log_weights, prior_means, prior_log_vars, q_mean, q_log_var)]
      per group, top first: p(z_g | z_<g) as a mixture of K diagonal Gaussians
      ((n, K), (n, K, d), (n, K, d); K = 1 for one Gaussian, priors.as_mixture)
      and q(z_g | x, z_<g), each (n, d), with z_<g read from the flat z (the
      groups at and below g are ignored); x=None gives the priors alone (q's
      None). The coder calls it once per group, top first, with the groups
      chosen so far.

All outputs are float32 whatever `model.dtype` computes the layers in.

Adding a kind: write `models/<kind>.py` with a module that has the members
above (subclass `VAE` when only some differ), add it to `MODELS`, and it is a
valid `model.kind` for configs, sweeps, evaluation and `load_run`; give it a
case in tests/test_models.py and tests/test_kinds.py.
"""

from typing import Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.autoencoder import Autoencoder
from vae_jax.models.cvae import CVAE
from vae_jax.models.hvae import HVAE
from vae_jax.models.vae import IWAE
from vae_jax.models.vae import VAE
from vae_jax.models.vqvae import VQVAE
from vae_jax.models import stages as stages_lib

MODELS: dict[str, type[nn.Module]] = {
    'vae': VAE,
    'iwae': IWAE,
    'ae': Autoencoder,
    'hvae': HVAE,
    'cvae': CVAE,
    'vqvae': VQVAE,
}


def check_config(config) -> None:
  """The kind's own checks of the settings it combines (prior, flow, blocks)."""
  MODELS[config.model.kind].check_config(config)


def training_stages(config) -> tuple[stages_lib.Stage, ...]:
  """The kind's training stages, in order (`vae_jax.models.stages`)."""
  return MODELS[config.model.kind].stages(config)


def make(config, image_shape: Sequence[int]) -> nn.Module:
  """Builds the model named by `config.model.kind` for images of `image_shape` (H, W, C)."""
  return MODELS[config.model.kind].build(config, tuple(int(d) for d in image_shape))


def describe_kl(model) -> str | None:
  """A sentence for the log on how the kind's KL is computed when it is not in closed form, else None."""
  return getattr(model, 'kl_note', None) if model.stochastic else None


def init_params(model: nn.Module, image_shape: Sequence[int], key: jax.Array):
  """Initial parameters, from a dummy batch of two images.

  Jitted: run op by op, a deep model's init compiles every small op on its own (10 s for a tiny
  conv hierarchy, against 2 s as one program); the values are the same.
  """
  init_key, sample_key = jax.random.split(key)
  dummy = jnp.zeros((2, *image_shape), jnp.float32), jnp.zeros((2,), jnp.int32)  # images and their labels
  init = jax.jit(lambda k, keys: model.init(k, dummy[0], keys, dummy[1])['params'])
  return init(init_key, jax.random.split(sample_key, 2))


def log_kl_kind(model) -> None:
  message = describe_kl(model)
  if message:
    logging.info('%s', message)
