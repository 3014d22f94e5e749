"""Per-example keys, posterior samples of the model interface, and the importance-sampled log p(x).

Built on `terms` and the log importance weight log_px_z + log_ratio of a fresh
posterior sample alone, so the evaluation and the IWAE objective share them
and no function here knows a model's insides.
"""

import functools
import math

import jax
import jax.numpy as jnp

from vae_jax.runtime.keys import per_example_keys


def terms_of_samples(model, params, x: jax.Array, ctx, keys: jax.Array, sample_ids: jax.Array) -> dict:
  """`terms` for posterior samples `sample_ids` of every example: each output (len(sample_ids), n, ...).

  Sample s of example j is drawn from fold_in(keys[j], s), so a sample is the
  same whichever chunk or batch it is computed in. The k samples run as one
  batch of k * n rows, with x and the shared `ctx` repeated.
  """
  k, n = sample_ids.shape[0], x.shape[0]
  sample_keys = jax.vmap(per_example_keys, in_axes=(0, None))(keys, sample_ids)  # (n, k)
  sample_keys = jnp.swapaxes(sample_keys, 0, 1).reshape(k * n)
  repeat = lambda a: jnp.broadcast_to(a, (k, *a.shape)).reshape(k * n, *a.shape[1:])
  t = model.apply({'params': params}, repeat(x), jax.tree.map(repeat, ctx), sample_keys, method=model.terms)
  return jax.tree.map(lambda a: a.reshape(k, n, *a.shape[1:]), t)


# ---------------------------------------------------------------- importance-sampled log p(x)


def importance_sampled_terms(model, params, x: jax.Array, keys: jax.Array, num_samples: int,
                             chunk: int = 100, labels: jax.Array | None = None) -> dict[str, jax.Array]:
  """Per-example log p(x) by importance sampling with q(z|x) as the proposal.

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K

  `keys` holds one PRNG key per example; sample s of example j is drawn from
  fold_in(keys[j], s), so the estimate does not depend on `chunk`. The K
  samples are drawn `chunk` at a time and combined with a running logsumexp,
  so memory does not grow with K. The same samples give the ELBO (the mean
  of log p(x|z) minus the mean per-group KL) and its terms. Returns, per
  example: log_px, elbo, recon, kl (n,), kl_per_group (n, G), mean
  (n, latent_dim) for active units, and kl_per_dim when the model gives it.
  For a conditional model, `labels` are x's classes and log_px is log p(x|y).

  The three stages (`importance_sampling_start`, `_chunk`, `_result`) are also
  public, so that `evaluation` can dispatch the chunks one call at a time.
  """
  ctx, means, carry = importance_sampling_start(model, params, x, keys, labels)
  body = functools.partial(importance_sampling_chunk, model, params, x, keys, ctx,
                           chunk=min(chunk, num_samples), num_samples=num_samples)
  carry, _ = jax.lax.scan(lambda c, i: (body(c, i), None), carry, jnp.arange(num_chunks(num_samples, chunk)))
  return importance_sampling_result(means, carry, num_samples)


def num_chunks(num_samples: int, chunk: int) -> int:
  return -(-num_samples // min(chunk, num_samples))


def importance_sampling_start(model, params, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
  """The shared context, the posterior means, and the running sums before any sample:
  (logsumexp of the log weights, sums of every term but log_ratio)."""
  ctx = model.apply({'params': params}, x, labels, method=model.infer)
  means, _ = model.apply({'params': params}, x, labels, method=model.encode)
  shapes = jax.eval_shape(lambda: model.apply({'params': params}, x, ctx, keys, method=model.terms))
  sums = {k: jnp.zeros(s.shape, jnp.float32) for k, s in shapes.items() if k != 'log_ratio'}
  return ctx, means, (jnp.full((x.shape[0],), -jnp.inf, jnp.float32), sums)


def importance_sampling_chunk(model, params, x, keys, ctx, carry, i, *, chunk: int, num_samples: int):
  """Adds samples [i * chunk, (i + 1) * chunk) (those below num_samples) to the running sums."""
  lse, sums = carry
  sample_ids = i * chunk + jnp.arange(chunk)
  t = terms_of_samples(model, params, x, ctx, keys, sample_ids)
  valid = sample_ids < num_samples  # the last chunk may overhang
  mask = lambda a: valid.reshape(-1, *([1] * (a.ndim - 1)))
  log_w = t['log_px_z'] + t['log_ratio']
  lse = jnp.logaddexp(lse, jax.nn.logsumexp(jnp.where(mask(log_w), log_w, -jnp.inf), axis=0))
  sums = {k: v + jnp.sum(jnp.where(mask(t[k]), t[k], 0.0), axis=0) for k, v in sums.items()}
  return lse, sums


def importance_sampling_result(means, carry, num_samples: int) -> dict[str, jax.Array]:
  lse, sums = carry
  avg = {k: v / num_samples for k, v in sums.items()}
  recon, kl = avg.pop('log_px_z'), jnp.sum(avg['kl'], axis=-1)
  out = {'log_px': lse - math.log(num_samples), 'elbo': recon - kl, 'recon': recon, 'kl': kl,
         'kl_per_group': avg.pop('kl'), 'mean': means}
  return out | avg
