"""Priors over the top latent group (`model.prior`): parts that every stochastic kind combines with.

A prior is a flax module with
  closed_form_kl         True when KL(q || p) of a diagonal Gaussian q has a closed form;
                         such a prior also has kl_per_dim(mean, log_var, cond) (n, d);
  log_prob(z, posterior, cond) log p(z) per example, z (n, d);
  sample(key, n, d, temperature, posterior, cond) n draws, each component's spread scaled by `temperature`;
and, for bits-back coding, either
  diagonal(n, d, cond)   when p(z) is one diagonal Gaussian: its (mean, log_var), each (n, d); or
  mixture(posterior)     when it is a mixture of them: (log_weights (K,), means (K, d), log_vars (K, d)).
`as_mixture` gives either as a mixture, which is what the coder reads.

`posterior(u) -> (mean, log_var)` is the model's own Gaussian q(z|u) of the
group, which the VampPrior evaluates at its pseudo-inputs; the other priors
ignore it. `cond` (n, num_classes) is a conditional model's one-hot label
(None otherwise); only `class_gaussian` reads it, p(z|y).
"""

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import errors
from vae_jax.models import gaussian

Posterior = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def _mixture_log_prob(z: jax.Array, means: jax.Array, log_vars: jax.Array, log_weights: jax.Array) -> jax.Array:
  """log sum_k w_k N(z; mean_k, diag exp(log_var_k)) for z (n, d) and K components (K, d)."""
  per_component = gaussian.log_prob(z[:, None, :], means[None], log_vars[None])  # (n, K)
  return jax.nn.logsumexp(per_component + log_weights, axis=-1)


def _mixture_sample(key, n, means, log_vars, log_weights, temperature):
  pick_key, noise_key = jax.random.split(key)
  k = jax.random.categorical(pick_key, log_weights, shape=(n,))
  eps = jax.random.normal(noise_key, (n, means.shape[-1]))
  return means[k] + temperature * jnp.exp(0.5 * log_vars[k]) * eps


def as_mixture(prior: nn.Module, n: int, dim: int, posterior: Posterior | None = None, cond=None):
  """p(z) as a mixture of diagonal Gaussians for every example: (log_weights (n, K), means (n, K, d),
  log_vars (n, K, d)), K = 1 for a prior that is one Gaussian."""
  if hasattr(prior, 'diagonal'):
    mean, log_var = prior.diagonal(n, dim, cond)
    return jnp.zeros((n, 1)), mean[:, None], log_var[:, None]
  log_weights, means, log_vars = prior.mixture(posterior)
  return tuple(jnp.broadcast_to(a, (n, *a.shape)) for a in (log_weights, means, log_vars))


SINGLE_SAMPLE_KL_NOTE = (
    'the KL of the top latent group has no closed form under this prior/posterior: it is the single-sample '
    'estimate log q(z|x) - log p(z) at the posterior sample (unbiased; the ELBO stays a bound in expectation)')


def group_temperatures(temperature, num_groups: int) -> tuple[float, ...]:
  """One temperature per latent group, from a number or a sequence of `num_groups` numbers."""
  if not isinstance(temperature, (tuple, list)):
    return (temperature,) * num_groups
  temperature = tuple(temperature)
  if len(temperature) != num_groups:
    raise ValueError(f'temperature has {len(temperature)} values; this model has {num_groups} latent groups: '
                     'pass one number, or one per group (top group first)')
  return temperature


class StandardNormal(nn.Module):
  """p(z) = N(0, I)."""
  closed_form_kl = True

  def log_prob(self, z: jax.Array, posterior: Posterior | None = None, cond=None) -> jax.Array:
    del posterior, cond
    return gaussian.standard_log_prob(z)

  def kl_per_dim(self, mean: jax.Array, log_var: jax.Array, cond=None) -> jax.Array:
    del cond
    return gaussian.kl_standard_normal_per_dim(mean, log_var)

  def sample(self, key, n: int, dim: int, temperature=1.0, posterior: Posterior | None = None,
             cond=None) -> jax.Array:
    del posterior, cond
    return temperature * jax.random.normal(key, (n, dim))

  def diagonal(self, n: int, dim: int, cond=None) -> tuple[jax.Array, jax.Array]:
    del cond
    return jnp.zeros((n, dim)), jnp.zeros((n, dim))

  def __call__(self, z, posterior=None, cond=None):
    return self.log_prob(z, posterior, cond)


class VampPrior(nn.Module):
  """Tomczak & Welling (2018): p(z) = (1/K) sum_k q(z | u_k) over K learned pseudo-inputs u_k.

  The pseudo-inputs are examples (images, vectors), kept in [0, 1] by clipping; they start near
  0.05 +- 0.01 as in the paper's MNIST setup. The mixture has no closed-form
  KL against q, so the KL is the single-sample estimate log q - log p.
  """
  num_components: int
  example_shape: Sequence[int]
  closed_form_kl = False

  def setup(self):
    init = lambda key, shape: 0.05 + 0.01 * jax.random.normal(key, shape)
    self.raw_pseudo_inputs = self.param('pseudo_inputs', init, (self.num_components, *self.example_shape))

  def pseudo_inputs(self) -> jax.Array:
    return jnp.clip(self.raw_pseudo_inputs, 0.0, 1.0)

  def _components(self, posterior: Posterior):
    means, log_vars = posterior(self.pseudo_inputs())
    return means.reshape(self.num_components, -1), log_vars.reshape(self.num_components, -1)

  def log_prob(self, z: jax.Array, posterior: Posterior, cond=None) -> jax.Array:
    del cond
    means, log_vars = self._components(posterior)
    return _mixture_log_prob(z, means, log_vars, jnp.full((self.num_components,), -math.log(self.num_components)))

  def sample(self, key, n: int, dim: int, temperature=1.0, posterior: Posterior | None = None,
             cond=None) -> jax.Array:
    del cond
    means, log_vars = self._components(posterior)
    return _mixture_sample(key, n, means, log_vars, jnp.zeros((self.num_components,)), temperature)

  def mixture(self, posterior: Posterior):
    means, log_vars = self._components(posterior)
    return jnp.full((self.num_components,), -math.log(self.num_components)), means, log_vars

  def __call__(self, z, posterior, cond=None):
    return self.log_prob(z, posterior, cond)


class MixtureOfGaussians(nn.Module):
  """p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2), all learned; the means start as N(0, I) draws."""
  num_components: int
  dim: int
  closed_form_kl = False

  def setup(self):
    self.means = self.param('means', nn.initializers.normal(1.0), (self.num_components, self.dim))
    self.log_vars = self.param('log_vars', nn.initializers.zeros_init(), (self.num_components, self.dim))
    self.logits = self.param('logits', nn.initializers.zeros_init(), (self.num_components,))

  def _parameters(self):
    return self.means, self.log_vars, jax.nn.log_softmax(self.logits)

  def log_prob(self, z: jax.Array, posterior: Posterior | None = None, cond=None) -> jax.Array:
    del posterior, cond
    return _mixture_log_prob(z, *self._parameters())

  def sample(self, key, n: int, dim: int, temperature=1.0, posterior: Posterior | None = None,
             cond=None) -> jax.Array:
    del posterior, dim, cond
    return _mixture_sample(key, n, *self._parameters(), temperature)

  def mixture(self, posterior: Posterior | None = None):
    del posterior
    means, log_vars, log_weights = self._parameters()
    return log_weights, means, log_vars

  def __call__(self, z, posterior=None, cond=None):
    return self.log_prob(z, posterior, cond)


class ClassGaussian(nn.Module):
  """p(z|y) = N(mu_y, diag sigma_y^2), one learned Gaussian per class, for conditional kinds.

  It starts as N(0, I) for every class, so a CVAE begins where the fixed
  prior would; the KL against a diagonal Gaussian q stays closed form.
  """
  num_classes: int
  dim: int
  closed_form_kl = True

  def setup(self):
    self.means = self.param('means', nn.initializers.zeros_init(), (self.num_classes, self.dim))
    self.log_vars = self.param('log_vars', nn.initializers.zeros_init(), (self.num_classes, self.dim))

  def _parameters(self, cond: jax.Array):
    if cond is None:
      raise ValueError('model.prior=class_gaussian is p(z|y): it needs the labels y')
    return cond @ self.means, cond @ self.log_vars

  def log_prob(self, z: jax.Array, posterior: Posterior | None = None, cond=None) -> jax.Array:
    del posterior
    return gaussian.log_prob(z, *self._parameters(cond))

  def kl_per_dim(self, mean: jax.Array, log_var: jax.Array, cond=None) -> jax.Array:
    return gaussian.kl_per_dim(mean, log_var, *self._parameters(cond))

  def sample(self, key, n: int, dim: int, temperature=1.0, posterior: Posterior | None = None,
             cond=None) -> jax.Array:
    del posterior, dim
    mean, log_var = self._parameters(cond)
    return mean + temperature * jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)

  def diagonal(self, n: int, dim: int, cond=None) -> tuple[jax.Array, jax.Array]:
    del n, dim
    return self._parameters(cond)

  def __call__(self, z, posterior=None, cond=None):
    return self.log_prob(z, posterior, cond)


PRIORS: dict[str, Callable[..., nn.Module]] = {
    'standard_normal': lambda k, example_shape, dim, classes: StandardNormal(),
    'vampprior': lambda k, example_shape, dim, classes: VampPrior(k, tuple(example_shape)),
    'mog': lambda k, example_shape, dim, classes: MixtureOfGaussians(k, dim),
    'class_gaussian': lambda k, example_shape, dim, classes: ClassGaussian(classes, dim),
}
# Priors that read the label, p(z|y): only conditional kinds can use them.
CONDITIONAL_PRIORS = ('class_gaussian',)


def check_unconditional(config) -> None:
  """Refuses a p(z|y) prior for a kind that has no labels."""
  if config.model.prior in CONDITIONAL_PRIORS:
    raise errors.ConfigError(f'model.prior={config.model.prior!r} is p(z|y) and needs a conditional kind '
                             f'(model.kind=cvae); model.kind={config.model.kind!r} has no labels')


def make(config, example_shape: Sequence[int], dim: int, num_classes: int = 0) -> nn.Module:
  """The prior named by `config.model.prior`, over a flat latent of `dim` units (`num_classes` for p(z|y))."""
  return PRIORS[config.model.prior](config.model.prior_components, example_shape, dim, num_classes)
