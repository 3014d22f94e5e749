"""Each disentangling kind at two or three settings of its knob, three seeds each, beside the plain VAE, on dSprites.

  ./launch.sh sweep experiments/disentanglement_sweep.py --parallel=2   # 2 cores: one point on each
  python -m vae_jax.sweep_report runs/disentanglement_sweep

45 points of configs/dsprites_mlp.py (about 6 minutes each on one core): the VAE at beta 1 (the baseline),
4 and 16 (beta-VAE); annealed_vae with capacity 5, 10 and 25 nats (gamma 1000); beta_tcvae with tc_weight 4
and 10; factor_vae with gamma 10 and 40; DIP-VAE-I (lambda_od 2, 10 and 50, lambda_d 10 lambda_od) and DIP-VAE-II
(lambda_od 2 and 10, lambda_d = lambda_od). The knob values are from Locatello et al. (2019)'s grid. Seeds
are the outer loop, so a sweep stopped early has whole seeds. RESULTS.md, "Disentanglement on dSprites",
tabulates the result beside the published figures that are tabulated (Locatello et al. only plot theirs).
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/dsprites_mlp.py'


def get_sweep():
  kinds = sweeps.chain(
      sweeps.sweep('model.beta', [1.0, 4.0, 16.0]),
      sweeps.product([{'model.kind': 'annealed_vae', 'model.gamma': 1000.0}],
                     sweeps.sweep('model.capacity_max_nats', [5.0, 10.0, 25.0])),
      sweeps.product([{'model.kind': 'beta_tcvae'}], sweeps.sweep('model.tc_weight', [4.0, 10.0])),
      sweeps.product([{'model.kind': 'factor_vae'}], sweeps.sweep('model.tc_weight', [10.0, 40.0])),
      sweeps.product([{'model.kind': 'dip_vae', 'model.dip_type': 'i'}],
                     sweeps.zip(sweeps.sweep('model.dip_lambda_od', [2.0, 10.0, 50.0]),
                                sweeps.sweep('model.dip_lambda_d', [20.0, 100.0, 500.0]))),
      sweeps.product([{'model.kind': 'dip_vae', 'model.dip_type': 'ii'}],
                     sweeps.zip(sweeps.sweep('model.dip_lambda_od', [2.0, 10.0]),
                                sweeps.sweep('model.dip_lambda_d', [2.0, 10.0]))),
  )
  return sweeps.product(sweeps.sweep('seed', [0, 1, 2]), kinds)
