"""Diagonal Gaussians: log densities, KLs and reparameterized draws, in float32 nats.

Draws are made per example, from one key per example, so that a batch split
over 1 or N devices, or evaluated in batches of any size, sees the same numbers.
"""

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2 * math.pi)


def _flat(a: jax.Array) -> jax.Array:
  return a.reshape(a.shape[0], -1)


def log_prob(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log N(z; mean, diag exp(log_var)), summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + log_var + (z - mean)**2 * jnp.exp(-log_var), axis=-1)


def standard_log_prob(z: jax.Array) -> jax.Array:
  """log N(z; 0, I), summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + z**2, axis=-1)


def kl_standard_normal_per_dim(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, exp(log_var)) || N(0, 1)) of each dimension, closed form."""
  return 0.5 * (jnp.exp(log_var) + mean**2 - 1.0 - log_var)


def kl_standard_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag exp(log_var)) || N(0, I)) per example, closed form."""
  return jnp.sum(kl_standard_normal_per_dim(mean, log_var), axis=-1)


def kl_per_dim(mean_q: jax.Array, log_var_q: jax.Array, mean_p: jax.Array, log_var_p: jax.Array) -> jax.Array:
  """KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p))) of each dimension."""
  return 0.5 * (log_var_p - log_var_q + (jnp.exp(log_var_q) + (mean_q - mean_p)**2) * jnp.exp(-log_var_p) - 1.0)


def kl(mean_q: jax.Array, log_var_q: jax.Array, mean_p: jax.Array, log_var_p: jax.Array) -> jax.Array:
  """KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p))) per example, summed over all but the batch axis."""
  return jnp.sum(_flat(kl_per_dim(mean_q, log_var_q, mean_p, log_var_p)), axis=-1)


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """z = mean + sigma * eps with one key for the whole batch: differentiable in (mean, log_var)."""
  return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)


def per_example_normal(keys: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
  """One standard-normal draw of `shape` per key: (len(keys), *shape)."""
  return jax.vmap(lambda k: jax.random.normal(k, shape))(keys)


def draw(keys: jax.Array, mean: jax.Array, log_var: jax.Array) -> tuple[jax.Array, jax.Array]:
  """z ~ N(mean, exp(log_var)), one key per example (`per_example_normal`), and log N(z; mean, exp(log_var))
  summed over the last axis: a diagonal-Gaussian posterior's draw and its log density."""
  eps = per_example_normal(keys, mean.shape[1:])
  z = mean + jnp.exp(0.5 * log_var) * eps
  return z, -0.5 * jnp.sum(LOG_2PI + log_var + eps**2, axis=-1)


def fold_in_each(keys: jax.Array, data: int) -> jax.Array:
  """fold_in(key, data) for each of `keys`: the keys of a numbered stream, one per example."""
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)
