"""The model interface as code: `Kind`, the base class of every kind in `vae_jax.models`.

Training, evaluation, `load_run`, the plots, the report, sweeps and the
notebook use only the members below, so adding a kind touches nothing outside
this package. The class attributes carry their defaults, the methods that
every kind must give raise NotImplementedError here, and
tests/test_models.py checks every registered kind against this contract.

Building
  Kind.check_config(config)       raise errors.ConfigError for settings the kind cannot honour
  Kind.build(config, spec)        the module for examples of `spec` (`vae_jax.data.ExampleSpec`:
                                  an image (H, W, C), a vector (D,), ...); image-only parts refuse
                                  other specs with errors.ConfigError

Class attributes
  stochastic   False for a kind with no prior or posterior (`ae`): it then has
               no KL, no ELBO, no log p(x) and no samples.
  conditional  True for a kind conditioned on the class label y (`cvae`): its
               ELBO and likelihood are those of log p(x|y), and it has
               `num_classes`.
  objective    the name of the kind's training objective in
               `vae_jax.training.objectives.OBJECTIVES` ('elbo', 'iwae', 'vqvae', ...):
               its loss, parameter groups and optimizers, stages and
               after-update; `objective_name(config)` gives 'iwae' instead
               whenever model.num_importance_samples > 1.
  max_importance_samples
               None, or the most importance samples worth drawing: 1 for a
               point-mass posterior (`vqvae`), whose bound one sample gives exactly.
  options      the kind's own config fields under model., {name: default}
               (a VQ-VAE's codebook_size, ...): `config_lib.base_config()`
               adds them, so configs, the command line and sweeps set them
               like any field; `check_config` checks their values.
  figures      the kind's own figures in eval.json (`vae_jax.figures.Figure`:
               key, unit, direction), which `summarize` or its NAME_nats
               terms give; reports and writers read them from here.

Class methods
  objective_name(config) -> the objective's name (above).
  summarize(terms) -> dict: the kind's own figures over an evaluated split,
               from the per-example `terms` summed over the importance
               samples (a VQ-VAE's codebook use); default none.

Properties
  latent_dim   size of the flat latent vector z of `encode` and `decode`: all
               groups flattened and concatenated, top group first.
  group_sizes  the size of each latent group within it (one entry per group).
  likelihood   the head of p(x|z); type(likelihood).mean / .sample / .log_prob
               turn its parameters into examples and log-probabilities.

Methods (x: examples (n, *spec.shape), e.g. images (n, H, W, C); keys: one
PRNG key per example, every random draw of example j made from keys[j] alone,
so results do not depend on batching or the number of devices; labels: the
examples' classes (n,) int32, or None. Every kind accepts `labels` where listed; an unconditional kind
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
      NAME_nats (n,), optional: a kind's own figures in nats, averaged into
                       the training log and eval.json under their names.
      Any other per-example term a kind's objective or `summarize` reads.
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

All outputs are float32 whatever `model.dtype` computes the layers in, except the token ids that the
sequence kinds (`seqvae`, `lm`) decode: their p(x|z) is autoregressive over tokens, so `decode`,
`sample` and `reconstruct` return decoded examples (int32 ids), which their `Tokens` head passes through.
"""

import flax.linen as nn
import jax


class Kind(nn.Module):
  """A kind of latent-variable model: the contract of this module's docstring, with its defaults."""

  stochastic = True
  conditional = False
  objective = 'elbo'
  max_importance_samples = None  # no cap: more samples tighten the estimate
  options = {}  # the kind's own config fields under model., with their defaults
  figures = ()  # the kind's own eval.json figures (vae_jax.figures.Figure)
  kl_note = None  # a sentence for the log when the KL is not in closed form
  # Also part of the interface, without a default here because kinds hold them as dataclass fields or
  # properties: latent_dim, group_sizes, likelihood, coding_obstacle (module docstring).

  @classmethod
  def check_config(cls, config) -> None:
    """Raises errors.ConfigError for settings the kind cannot honour (none, by default)."""
    del config

  @classmethod
  def objective_name(cls, config) -> str:
    return 'iwae' if config.model.num_importance_samples > 1 else cls.objective

  @classmethod
  def summarize(cls, terms: dict) -> dict:
    del terms
    return {}

  @classmethod
  def build(cls, config, spec) -> 'Kind':
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

  def latent_gaussians(self, x: jax.Array | None, z: jax.Array, labels: jax.Array | None = None):
    raise NotImplementedError(f'{type(self).__name__} cannot be bits-back coded: {self.coding_obstacle}')
