"""The model interface as code: `Kind`, the base class of every kind in `vae_jax.models`.

Training, evaluation, `load_run`, the plots, the report, sweeps and the
notebook use only the members below, so adding a kind touches nothing outside
this package. The class attributes carry their defaults, the methods that
every kind must give raise NotImplementedError here, and
tests/test_models.py checks every registered kind against this contract.

Building
  Kind.check_config(config)       raise errors.ConfigError for settings the kind cannot honour
  Kind.build(config, image_shape) the module for images (H, W, C)

Class attributes
  stochastic   False for a kind with no prior or posterior (`ae`): it then has
               no KL, no ELBO, no log p(x) and no samples.
  conditional  True for a kind conditioned on the class label y (`cvae`): its
               ELBO and likelihood are those of log p(x|y), and it has
               `num_classes`.
  objective    'elbo' or 'iwae': the training bound (`vae_jax.training.objectives`); the
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
      a hierarchy, along the path where each group sits at its mean). A kind
      whose posterior is a point mass (`ae`, `vqvae`) returns (code, None).
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

Bits-back coding (`vae_jax.coding.bitsback`), for kinds whose posterior groups are diagonal Gaussians
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
"""

from typing import Sequence

import flax.linen as nn
import jax

from vae_jax.models import stages as stages_lib


class Kind(nn.Module):
  """A kind of latent-variable model: the contract of this module's docstring, with its defaults."""

  stochastic = True
  conditional = False
  objective = 'elbo'
  max_importance_samples = None  # no cap: more samples tighten the estimate
  updates_state = False
  kl_note = None  # a sentence for the log when the KL is not in closed form
  # Also part of the interface, without a default here because kinds hold them as dataclass fields or
  # properties: latent_dim, group_sizes, likelihood, coding_obstacle (module docstring).

  @classmethod
  def check_config(cls, config) -> None:
    """Raises errors.ConfigError for settings the kind cannot honour (none, by default)."""
    del config

  @classmethod
  def stages(cls, config) -> tuple[stages_lib.Stage, ...]:
    return stages_lib.single(config)

  @classmethod
  def build(cls, config, image_shape: Sequence[int]) -> 'Kind':
    raise NotImplementedError(f'{cls.__name__}.build')

  def infer(self, x: jax.Array, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__}.infer')

  def terms(self, x: jax.Array, ctx, keys: jax.Array) -> dict[str, jax.Array]:
    raise NotImplementedError(f'{type(self).__name__}.terms')

  def encode(self, x: jax.Array, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__}.encode')

  def decode(self, z: jax.Array, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__}.decode')

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__}.sample')

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__}.reconstruct')

  def __call__(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None) -> dict[str, jax.Array]:
    return self.terms(x, self.infer(x, labels), keys)

  def update_state(self, x: jax.Array, labels: jax.Array | None, key: jax.Array) -> dict:
    raise NotImplementedError(f'{type(self).__name__} has no state to update (updates_state is False)')

  def latent_gaussians(self, x: jax.Array | None, z: jax.Array, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__} cannot be bits-back coded: {self.coding_obstacle}')
