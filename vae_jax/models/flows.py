"""Posterior flows (`model.posterior_flow`): invertible maps on top of the Gaussian q(z|x).

A flow is a flax module called as flow(z0, context) -> (z, log_det), with
log_det = log |det dz/dz0| per example; log q(z|x) = log N(z0) - log_det.

`iaf`: inverse autoregressive flow (Kingma et al. 2016). Each step has a
MADE network (Germain et al. 2015) give (m, s) with m_i, s_i depending on
z_<i (and on the encoder's context h) only, and updates
z <- sigma * z + (1 - sigma) * m, sigma = sigmoid(s + 2), whose Jacobian is
triangular with log-determinant sum(log sigma). Successive steps alternate
the autoregressive order.

The flow is autoregressive over the last axis of z and applied alike at
every other position: a one-group model's z (n, d) is one vector; a
convolutional hierarchy's group z (n, h, w, c) is autoregressive over its
channels at each position (the IAF paper's ResNet VAE), and the
log-determinant sums over every position.
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_FORGET_BIAS = 2.0  # sigma starts near sigmoid(2) = 0.88: close to the identity


def made_masks(dim: int, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Masks of input->hidden, hidden->hidden and hidden->output such that output i sees inputs < i only."""
  d_in = np.arange(1, dim + 1)
  d_hidden = np.arange(hidden) % max(dim - 1, 1) + 1 if dim > 1 else np.zeros(hidden, int)
  return (d_hidden[None, :] >= d_in[:, None], d_hidden[None, :] >= d_hidden[:, None],
          d_in[None, :] > d_hidden[:, None])


class MaskedDense(nn.Module):
  features: int
  mask: np.ndarray
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    init = nn.initializers.zeros_init() if self.zero_init else nn.initializers.lecun_normal()
    kernel = self.param('kernel', init, (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return x @ (kernel * jnp.asarray(self.mask, kernel.dtype)) + bias


class IAFStep(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, z: jax.Array, context: jax.Array) -> tuple[jax.Array, jax.Array]:
    dim = z.shape[-1]
    in_mask, hidden_mask, out_mask = made_masks(dim, self.hidden)
    h = nn.elu(MaskedDense(self.hidden, in_mask, name='in')(z) + nn.Dense(self.hidden, name='context')(context))
    h = nn.elu(MaskedDense(self.hidden, hidden_mask, name='hidden')(h))
    m = MaskedDense(dim, out_mask, zero_init=True, name='shift')(h)
    s = MaskedDense(dim, out_mask, zero_init=True, name='gate')(h) + _FORGET_BIAS
    sigma = jax.nn.sigmoid(s)
    log_det = jnp.sum(jax.nn.log_sigmoid(s).reshape(s.shape[0], -1), axis=-1)
    return sigma * z + (1.0 - sigma) * m, log_det


class IAF(nn.Module):
  num_steps: int
  hidden: int

  @nn.compact
  def __call__(self, z: jax.Array, context: jax.Array) -> tuple[jax.Array, jax.Array]:
    log_det = jnp.zeros(z.shape[:1], z.dtype)
    for t in range(self.num_steps):
      flip = (lambda a: a[..., ::-1]) if t % 2 else (lambda a: a)
      z, step_log_det = IAFStep(self.hidden, name=f'step_{t}')(flip(z), context)
      z, log_det = flip(z), log_det + step_log_det
    return z, log_det


FLOWS: dict[str, Callable[..., nn.Module] | None] = {
    'none': None,
    'iaf': lambda config: IAF(config.model.flow_steps, config.model.flow_hidden_size),
}


def make(config) -> nn.Module | None:
  """The flow named by `config.model.posterior_flow`, or None."""
  build = FLOWS[config.model.posterior_flow]
  return None if build is None else build(config)


def context_dim(config) -> int:
  """Units of the encoder's context h that the flow reads (0 without a flow): latent_dim, which is
  a one-group model's latent size and a hierarchy's units (dense) or channels (conv) per group."""
  return 0 if FLOWS[config.model.posterior_flow] is None else config.model.latent_dim


KL_NOTE = ('with a posterior flow, q(z|x) has no closed-form KL against any prior: the KL of every latent group '
           'is the single-sample estimate log q - log p at the posterior sample (unbiased; the ELBO stays a bound '
           'in expectation)')
