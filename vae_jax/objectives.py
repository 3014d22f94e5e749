"""Training objectives and likelihood estimators, all in nats per example.

Sign convention, used everywhere in vae_jax:
  recon = E_q[log p(x|z)]      (<= 0 for discrete data)
  kl    = KL(q(z|x) || N(0, I)) (>= 0, closed form)
  elbo  = recon - kl            (a lower bound on log p(x))
  loss  = -(recon - kl_weight * kl), averaged over the batch: what is minimized.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


def kl_standard_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag exp(log_var)) || N(0, I)) per example, closed form."""
  return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def diag_normal_log_prob(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log N(z; mean, diag exp(log_var)), summed over the last axis."""
  return -0.5 * jnp.sum(_LOG_2PI + log_var + (z - mean)**2 * jnp.exp(-log_var), axis=-1)


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """z = mean + sigma * eps: a sample of q(z|x) that is differentiable in (mean, log_var)."""
  return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)


def per_example_normal(keys: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
  """One standard-normal draw of `shape` per key: (len(keys), *shape).

  Drawing per example (not per batch) makes every draw a function of
  (seed, step, example index) alone, so a batch split over 1 or N devices, or
  evaluated in batches of any size, sees the same numbers.
  """
  return jax.vmap(lambda k: jax.random.normal(k, shape))(keys)


def per_example_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
  """fold_in(key, i) for every example index i."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)


def vae_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight) -> tuple[jax.Array, dict]:
  """Negative (beta-weighted) ELBO with one reparameterized sample per example.

  `keys` holds one PRNG key per example.
  """
  mean, log_var = model.apply({'params': params}, x, method=model.encode)
  z = mean + jnp.exp(0.5 * log_var) * per_example_normal(keys, mean.shape[1:])
  recon = model.apply({'params': params}, z, x, method=model.log_px_given_z)
  kl = kl_standard_normal(mean, log_var)
  loss = -jnp.mean(recon - kl_weight * kl)
  return loss, {'loss': loss, 'elbo_nats': jnp.mean(recon - kl),
                'recon_nats': jnp.mean(recon), 'kl_nats': jnp.mean(kl)}


def ae_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight) -> tuple[jax.Array, dict]:
  """Negative log p(x|z) at the deterministic code z = encoder(x). No KL, no ELBO."""
  del keys, kl_weight
  z, _ = model.apply({'params': params}, x, method=model.encode)
  recon = model.apply({'params': params}, z, x, method=model.log_px_given_z)
  loss = -jnp.mean(recon)
  return loss, {'loss': loss, 'recon_nats': jnp.mean(recon)}


def log_importance_weights(model, params, x: jax.Array, mean: jax.Array, log_var: jax.Array,
                           eps: jax.Array, kl_weight=1.0) -> tuple[jax.Array, jax.Array]:
  """log w = log p(x|z) + kl_weight * (log p(z) - log q(z|x)) at z = mean + sigma * eps.

  eps: (k, n, latent). Returns (log_w, log p(x|z)), each (k, n). kl_weight = 1
  gives the importance weights of log p(x) = log E_q[w].
  """
  k, n = eps.shape[:2]
  z = mean + jnp.exp(0.5 * log_var) * eps
  x_rep = jnp.broadcast_to(x, (k, *x.shape)).reshape(k * n, *x.shape[1:])
  log_px_z = model.apply({'params': params}, z.reshape(k * n, -1), x_rep,
                         method=model.log_px_given_z).reshape(k, n)
  log_pz = -0.5 * jnp.sum(_LOG_2PI + z**2, axis=-1)
  log_qz = -0.5 * jnp.sum(_LOG_2PI + log_var + eps**2, axis=-1)
  return log_px_z + kl_weight * (log_pz - log_qz), log_px_z


def _sample_eps(keys: jax.Array, sample_ids: jax.Array, latent_dim: int) -> jax.Array:
  """eps of sample s of example j from fold_in(keys[j], s): (len(sample_ids), n, latent)."""
  sample_keys = jax.vmap(per_example_keys, in_axes=(0, None))(keys, sample_ids)  # (n, k)
  return jnp.swapaxes(jax.vmap(per_example_normal, in_axes=(0, None))(sample_keys, (latent_dim,)), 0, 1)


def iwae_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight, num_samples: int
                   ) -> tuple[jax.Array, dict]:
  """Negative importance-weighted bound (Burda et al. 2016) with k = num_samples.

    L_k = E[log (1/k) sum_i w_i],  w_i = p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)

  Differentiated through the reparameterized samples, which gives the IWAE
  gradient: each sample's gradient weighted by its normalized weight. k = 1 is
  the VAE's ELBO (with a one-sample KL). `kl_weight` scales log p(z) - log q(z|x)
  inside each weight, so warm-up works as for the VAE.
  """
  mean, log_var = model.apply({'params': params}, x, method=model.encode)
  eps = _sample_eps(keys, jnp.arange(num_samples), mean.shape[1])
  log_w, log_px_z = log_importance_weights(model, params, x, mean, log_var, eps, kl_weight)
  bound = jax.nn.logsumexp(log_w, axis=0) - math.log(num_samples)
  loss = -jnp.mean(bound)
  kl = kl_standard_normal(mean, log_var)
  recon = jnp.mean(log_px_z, axis=0)
  return loss, {'loss': loss, 'iwae_bound_nats': jnp.mean(bound), 'elbo_nats': jnp.mean(recon - kl),
                'recon_nats': jnp.mean(recon), 'kl_nats': jnp.mean(kl)}


def make(config) -> Callable:
  """The objective of `config.model.kind`: f(model, params, x, keys, kl_weight) -> (loss, metrics)."""
  kind = config.model.kind
  if kind == 'iwae':
    return functools.partial(iwae_objective, num_samples=config.model.num_importance_samples)
  return {'vae': vae_objective, 'ae': ae_objective}[kind]


def importance_sampled_terms(model, params, x: jax.Array, keys: jax.Array, num_samples: int,
                             chunk: int = 100) -> dict[str, jax.Array]:
  """Per-example log p(x) by importance sampling with q(z|x) as the proposal.

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K

  `keys` holds one PRNG key per example; sample s of example j is drawn from
  fold_in(keys[j], s), so the estimate does not depend on `chunk`. The K
  samples are drawn `chunk` at a time and combined with a running logsumexp,
  so memory does not grow with K. The same samples give the ELBO (the mean log
  weight is its unbiased estimate; reported with the closed-form KL) and its
  reconstruction term. Returns, per example: log_px, elbo, recon, kl (n,),
  and mean, kl_per_dim (n, latent) for active units and per-dimension KL.

  The three stages (`importance_sampling_start`, `_chunk`, `_result`) are also
  public, so that `evaluation` can dispatch the chunks one call at a time.
  """
  mean, log_var = model.apply({'params': params}, x, method=model.encode)
  body = functools.partial(importance_sampling_chunk, model, params, x, keys, mean, log_var,
                           chunk=min(chunk, num_samples), num_samples=num_samples)
  carry, _ = jax.lax.scan(lambda c, i: (body(c, i), None), importance_sampling_start(x.shape[0]),
                          jnp.arange(num_chunks(num_samples, chunk)))
  return importance_sampling_result(mean, log_var, carry, num_samples)


def num_chunks(num_samples: int, chunk: int) -> int:
  return -(-num_samples // min(chunk, num_samples))


def importance_sampling_start(n: int) -> tuple[jax.Array, jax.Array]:
  """The running (logsumexp of the log weights, sum of log p(x|z)) before any sample."""
  return jnp.full((n,), -jnp.inf, jnp.float32), jnp.zeros((n,), jnp.float32)


def importance_sampling_chunk(model, params, x, keys, mean, log_var, carry, i, *, chunk: int, num_samples: int):
  """Adds samples [i * chunk, (i + 1) * chunk) (those below num_samples) to the running sums."""
  lse, recon_sum = carry
  sample_ids = i * chunk + jnp.arange(chunk)
  eps = _sample_eps(keys, sample_ids, mean.shape[1])
  log_w, log_px_z = log_importance_weights(model, params, x, mean, log_var, eps)
  valid = sample_ids[:, None] < num_samples  # the last chunk may overhang
  lse = jnp.logaddexp(lse, jax.nn.logsumexp(jnp.where(valid, log_w, -jnp.inf), axis=0))
  recon_sum = recon_sum + jnp.sum(jnp.where(valid, log_px_z, 0.0), axis=0)
  return lse, recon_sum


def importance_sampling_result(mean, log_var, carry, num_samples: int) -> dict[str, jax.Array]:
  lse, recon_sum = carry
  recon = recon_sum / num_samples
  kl_per_dim = 0.5 * (jnp.exp(log_var) + mean**2 - 1.0 - log_var)
  kl = jnp.sum(kl_per_dim, axis=-1)
  return {'log_px': lse - math.log(num_samples), 'elbo': recon - kl, 'recon': recon, 'kl': kl,
          'mean': mean, 'kl_per_dim': kl_per_dim}
