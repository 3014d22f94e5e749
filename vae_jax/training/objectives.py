"""Training objectives and the importance-sampled likelihood, in nats per example.

Everything here is built on the model interface of `vae_jax.models`: the
ELBO's parts (`terms`) and the log importance weight log_px_z + log_ratio of
a fresh posterior sample. No function here knows a model's insides.

Sign convention, used everywhere in vae_jax:
  recon = E_q[log p(x|z)]          (<= 0 for discrete data)
  kl    = sum over latent groups of KL(q || p) (>= 0)
  elbo  = recon - kl               (a lower bound on log p(x))
  loss  = -(recon - kl_weight * kl), averaged over the batch: what is minimized.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

from vae_jax import models


def per_example_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
  """fold_in(key, i) for every example index i."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)


def _kl_metrics(kl: jax.Array) -> dict[str, jax.Array]:
  """Batch means of the KL of each latent group (n, G), when there is more than one."""
  if kl.shape[-1] < 2:
    return {}
  return {f'kl_group_{g}_nats': jnp.mean(kl[:, g]) for g in range(kl.shape[-1])}


def codebook_use(usage: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Perplexity exp(H) of the share of assignments each code got, and how many codes got any.

  `usage` (..., K): assignments per code, summed over whatever the leading axes hold."""
  counts = jnp.sum(usage.reshape(-1, usage.shape[-1]), axis=0)
  share = counts / jnp.maximum(jnp.sum(counts), 1e-12)
  entropy = -jnp.sum(jnp.where(share > 0, share * jnp.log(jnp.where(share > 0, share, 1.0)), 0.0))
  return jnp.exp(entropy), jnp.sum(counts > 0)


def _extra_metrics(t: dict) -> dict[str, jax.Array]:
  """What a kind adds to the interface's terms: codebook use, and its own per-example figures in nats."""
  out = {k: jnp.mean(v) for k, v in t.items() if k.endswith('_nats')}
  if 'code_usage' in t:
    out['codebook_perplexity'], out['codes_used'] = codebook_use(t['code_usage'])
  if 'aux_loss' in t:
    out['aux_loss'] = jnp.mean(t['aux_loss'])
  return out


def elbo_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight, free_bits: float = 0.0,
                   labels: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """Negative (beta-weighted) ELBO with one reparameterized posterior sample per example.

  With `free_bits` > 0 (nats per latent group), a group whose batch-mean KL
  is below it is charged `free_bits` instead (Kingma et al. 2016), so the
  optimizer gains nothing by collapsing it further. A model that is not
  stochastic (the autoencoder) is trained on -log p(x|z) alone. A kind's
  `aux_loss` (a VQ-VAE's commitment) is added to the loss. `labels`
  (the class of each image) reach the model, which ignores them unless it
  is conditional.
  """
  t = model.apply({'params': params}, x, keys, labels)
  recon = t['log_px_z']
  aux = jnp.mean(t['aux_loss']) if 'aux_loss' in t else 0.0
  if not model.stochastic:
    loss = -jnp.mean(recon) + aux
    return loss, {'loss': loss, 'recon_nats': jnp.mean(recon), **_extra_metrics(t)}
  kl = jnp.sum(t['kl'], axis=-1)
  if free_bits > 0:
    loss = -jnp.mean(recon) + kl_weight * jnp.sum(jnp.maximum(jnp.mean(t['kl'], axis=0), free_bits))
  else:
    loss = -jnp.mean(recon - kl_weight * kl)
  loss = loss + aux
  return loss, {'loss': loss, 'elbo_nats': jnp.mean(recon - kl), 'recon_nats': jnp.mean(recon),
                'kl_nats': jnp.mean(kl), **_kl_metrics(t['kl']), **_extra_metrics(t)}


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


def iwae_objective(model, params, x: jax.Array, keys: jax.Array, kl_weight, num_samples: int,
                   labels: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """Negative importance-weighted bound (Burda et al. 2016) with k = num_samples.

    L_k = E[log (1/k) sum_i w_i],  log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),  z_i ~ q(z|x)

  Differentiated through the reparameterized samples, which gives the IWAE
  gradient: each sample's gradient weighted by its normalized weight. k = 1 is
  the ELBO with a one-sample KL. `kl_weight` scales log p(z) - log q(z|x)
  inside each weight, so warm-up works as for the ELBO.
  """
  ctx = model.apply({'params': params}, x, labels, method=model.infer)
  t = terms_of_samples(model, params, x, ctx, keys, jnp.arange(num_samples))
  log_w = t['log_px_z'] + kl_weight * t['log_ratio']
  bound = jax.nn.logsumexp(log_w, axis=0) - math.log(num_samples)
  loss = -jnp.mean(bound)
  recon, kl_groups = jnp.mean(t['log_px_z'], axis=0), jnp.mean(t['kl'], axis=0)
  kl = jnp.sum(kl_groups, axis=-1)
  return loss, {'loss': loss, 'iwae_bound_nats': jnp.mean(bound), 'elbo_nats': jnp.mean(recon - kl),
                'recon_nats': jnp.mean(recon), 'kl_nats': jnp.mean(kl), **_kl_metrics(kl_groups)}


def make(config) -> Callable:
  """The training objective: f(model, params, x, keys, kl_weight, labels=None) -> (loss, metrics).

  The IWAE bound for a kind whose `objective` is 'iwae', or whenever
  model.num_importance_samples > 1; the (free-bits) ELBO otherwise.
  """
  m = config.model
  if models.MODELS[m.kind].objective == 'iwae' or m.num_importance_samples > 1:
    return functools.partial(iwae_objective, num_samples=m.num_importance_samples)
  return functools.partial(elbo_objective, free_bits=m.free_bits)


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
