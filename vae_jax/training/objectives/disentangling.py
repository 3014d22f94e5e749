"""The objectives of the disentangling kinds (vae_jax/models/disentangling.py), in nats per example.

Each logs the ELBO's parts as the ELBO objective does (elbo_nats, recon_nats,
kl_nats) beside its own terms, so runs of every kind read alike.
"""

import math

import jax
import jax.numpy as jnp
import optax

from vae_jax.models import gaussian
from vae_jax.training.objectives import base
from vae_jax.training.objectives import elbo


def _parts(model, params, batch, keys):
  t, z, mean, log_var = model.apply({'params': params}, batch['x'], keys, batch.get('label'),
                                    method=model.code_terms)
  recon, kl = t['log_px_z'], jnp.sum(t['kl'], axis=-1)
  logged = {'elbo_nats': jnp.mean(recon - kl), 'recon_nats': jnp.mean(recon), 'kl_nats': jnp.mean(kl)}
  return recon, kl, z, mean, log_var, logged


class Annealed(base.Objective):
  """-recon + gamma * |KL - C|, C = capacity_max_nats * min(1, step / capacity_steps) (Burgess et al. 2018)."""

  def loss(self, model, params, batch, keys, kl_weight):
    del kl_weight
    m = self.config.model
    recon, kl, _, _, _, logged = _parts(model, params, batch, keys)
    capacity = m.capacity_max_nats * jnp.minimum(1.0, batch['step'].astype(jnp.float32) / m.capacity_steps)
    loss = -jnp.mean(recon) + m.gamma * jnp.abs(jnp.mean(kl) - capacity)
    return loss, dict(logged, loss=loss, capacity_nats=capacity)


def log_q_pairs(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log q(z_i,d | x_j) for every pair of batch examples (i, j) and dimension d: (n, n, D)."""
  return -0.5 * (gaussian.LOG_2PI + log_var[None] + (z[:, None] - mean[None]) ** 2 * jnp.exp(-log_var[None]))


def log_importance_weights(batch_size: int, num_train: int, estimator: str) -> jax.Array:
  """log w_ij of the batch's estimate of q(z_i) = E_x[q(z_i|x)] (n, n): minibatch-weighted sampling, 1/(N M)
  for every j; or minibatch-stratified sampling (Chen et al.'s appendix), which weights the example itself 1/N,
  one other (N - M)/(N (M - 1)) and the rest 1/(M - 1)."""
  n, big = batch_size, float(num_train)
  if estimator == 'mws' or n < 2:
    return jnp.full((n, n), -math.log(big * n))
  w = jnp.full((n, n), 1.0 / (n - 1))
  w = w.at[jnp.arange(n), jnp.arange(n)].set(1.0 / big)
  w = w.at[jnp.arange(n), (jnp.arange(n) + 1) % n].set((big - n + 1) / (big * (n - 1)))
  return jnp.log(w)


def total_correlation_terms(z, mean, log_var, num_train: int, estimator: str = 'mss') -> dict:
  """Per-example estimates, over the batch, of log q(z), log prod_d q(z_d) and log q(z|x) (Chen et al. 2018)."""
  pairs = log_q_pairs(z, mean, log_var)
  w = log_importance_weights(z.shape[0], num_train, estimator)
  log_qz = jax.scipy.special.logsumexp(w + jnp.sum(pairs, axis=-1), axis=1)
  log_prod_qzd = jnp.sum(jax.scipy.special.logsumexp(w[..., None] + pairs, axis=1), axis=-1)
  log_qz_x = jnp.sum(jnp.diagonal(pairs, axis1=0, axis2=1).T, axis=-1)
  return {'log_qz': log_qz, 'log_prod_qzd': log_prod_qzd, 'log_qz_x': log_qz_x}


class TotalCorrelation(base.Objective):
  """-(recon - [MI + tc_weight * TC + dimension-wise KL]), the parts estimated over the batch; with
  tc_weight = 1 it is the ELBO's KL estimated the same way. KL warm-up scales the penalty."""

  def loss(self, model, params, batch, keys, kl_weight):
    m = self.config.model
    recon, _, z, mean, log_var, logged = _parts(model, params, batch, keys)
    est = total_correlation_terms(z, mean, log_var, self.num_train or z.shape[0], m.tc_estimator)
    log_pz = jnp.sum(-0.5 * (gaussian.LOG_2PI + z ** 2), axis=-1)  # the standard normal prior
    mi, tc = est['log_qz_x'] - est['log_qz'], est['log_qz'] - est['log_prod_qzd']
    dim_kl = est['log_prod_qzd'] - log_pz
    loss = -jnp.mean(recon - kl_weight * (mi + m.tc_weight * tc + dim_kl))
    return loss, dict(logged, loss=loss, total_correlation_nats=jnp.mean(tc), index_code_mi_nats=jnp.mean(mi),
                      dimension_kl_nats=jnp.mean(dim_kl))


def permute_dims(key: jax.Array, z: jax.Array) -> jax.Array:
  """Each dimension of z permuted across the batch on its own: draws of prod_d q(z_d) (Kim & Mnih, Alg. 1)."""
  keys = jax.random.split(key, z.shape[1])
  return jax.vmap(lambda k, column: jax.random.permutation(k, column), in_axes=(0, 1), out_axes=1)(keys, z)


class Discriminated(base.Objective):
  """The negative ELBO plus tc_weight * E[log D(z) / (1 - D(z))] for the VAE's parameters, plus the
  discriminator's cross-entropy on q(z)'s codes against their permutations for its own; each part reaches
  only its own parameters (stop_gradient), and each group has its own Adam."""

  def groups(self, total_steps, steps_per_epoch):
    groups = super().groups(total_steps, steps_per_epoch)
    d = self.config.optim.discriminator
    schedule = optax.constant_schedule(d.learning_rate)
    groups['discriminator'] = (optax.adam(schedule, b1=d.b1, b2=d.b2), schedule)
    return groups

  def group_of(self, path):
    return 'discriminator' if path[0].startswith('discriminator') else 'model'

  def loss(self, model, params, batch, keys, kl_weight):
    m = self.config.model
    t, z, _, _ = model.apply({'params': params}, batch['x'], keys, batch.get('label'), method=model.code_terms)
    loss, metrics = elbo.elbo_loss(model, t, kl_weight, m.free_bits)
    discriminate = lambda p, codes: model.apply({'params': p}, codes, method=model.discriminate)
    logits = discriminate(jax.lax.stop_gradient(params), z)
    tc = jnp.mean(logits[:, 0] - logits[:, 1])
    permuted = permute_dims(jax.random.fold_in(keys[0], 1), jax.lax.stop_gradient(z))
    real, fake = discriminate(params, jax.lax.stop_gradient(z)), discriminate(params, permuted)
    d_loss = 0.5 * jnp.mean(-jax.nn.log_softmax(real)[:, 0] - jax.nn.log_softmax(fake)[:, 1])
    total = loss + m.tc_weight * tc + d_loss
    return total, dict(metrics, loss=total, total_correlation_nats=tc, discriminator_loss=d_loss,
                       discriminator_accuracy=0.5 * (jnp.mean(real[:, 0] > real[:, 1])
                                                     + jnp.mean(fake[:, 1] > fake[:, 0])))


def dip_penalty(mean: jax.Array, log_var: jax.Array, dip_type: str, lambda_od: float, lambda_d: float):
  """Kumar et al.'s penalty on Cov[mean] (i) or Cov_q[z] = Cov[mean] + E[diag var] (ii)."""
  centred = mean - jnp.mean(mean, axis=0)
  cov = centred.T @ centred / mean.shape[0]
  if dip_type == 'ii':
    cov = cov + jnp.diag(jnp.mean(jnp.exp(log_var), axis=0))
  diag = jnp.diagonal(cov)
  off = cov - jnp.diag(diag)
  return lambda_od * jnp.sum(off ** 2) + lambda_d * jnp.sum((diag - 1.0) ** 2)


class Dip(base.Objective):
  """The negative ELBO (beta, warm-up, free bits as for `elbo`) plus the DIP penalty on the batch."""

  def loss(self, model, params, batch, keys, kl_weight):
    m = self.config.model
    t, _, mean, log_var = model.apply({'params': params}, batch['x'], keys, batch.get('label'),
                                      method=model.code_terms)
    loss, metrics = elbo.elbo_loss(model, t, kl_weight, m.free_bits)
    penalty = dip_penalty(mean, log_var, m.dip_type, m.dip_lambda_od, m.dip_lambda_d)
    return loss + penalty, dict(metrics, loss=loss + penalty, dip_penalty=penalty)
