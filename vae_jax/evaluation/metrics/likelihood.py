"""The figures of every evaluation: the ELBO, its terms, the importance-sampled NLL and active units.

`vae_jax.evaluation.Evaluator` computes them, at every validation and in the
final test evaluation, for every kind; this metric only declares them, so
that the writers and reports know their units and directions. A kind's own
figures (a VQ-VAE's codebook use) are declared by the kind (`Kind.figures`).
"""

from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure

NATS = 'nats per example'


class Likelihood(base.Metric):
  name = 'likelihood'
  selectable = False
  figures = (
      Figure('elbo_nats', 'ELBO, E_q[log p(x|z)] − KL (a lower bound on log p(x))', NATS, True, validation=True,
             label='ELBO (nats)'),
      Figure('nll_nats', "−log p(x), importance-sampled (a table's rows: in the data's own units, the "
             "standardization's Jacobian included; a probability at a column's atoms)", NATS, False,
             label='NLL (nats)', error='nll_stderr_nats'),
      Figure('nll_stderr_nats', 'standard error of the NLL over the test examples', NATS),
      Figure('recon_nats', 'reconstruction, E_q[log p(x|z)]', NATS, True, validation=True, label='recon (nats)'),
      Figure('kl_nats', 'KL(q(z|x) ‖ p(z)), summed over latent groups', NATS, validation=True, label='KL (nats)'),
      Figure('kl_per_group_nats', 'KL of each latent group, top first', NATS, scalar=False),
      Figure('kl_per_dim_nats', 'KL of each latent dimension, in closed form', NATS, scalar=False),
      Figure('bits_per_dim', 'NLL in bits per dimension', 'bits per dimension', False, label='bits/dim',
             decimals=3),
      Figure('active_units', 'active latent dimensions (Cov_x E_q[z_i] > 0.01)', 'count', True, validation=True,
             label='active units'),
      Figure('active_units_per_group', 'active dimensions of each latent group, top first', 'count', scalar=False),
      Figure('num_importance_samples', 'importance samples per example for the NLL', 'count', scalar=False),
  )

  def compute(self, ctx: base.Context) -> dict:
    raise NotImplementedError('the likelihood figures are computed by vae_jax.evaluation.Evaluator')
