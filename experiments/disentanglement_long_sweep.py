"""The kinds that did not beat the baseline at 2,000 steps, on a schedule three times as long, beside the
baseline on the same schedule: does the gap close with training?

  ./launch.sh sweep experiments/disentanglement_long_sweep.py --parallel=2
  python -m vae_jax.sweep_report runs/disentanglement_long_sweep

9 points of configs/dsprites_mlp.py, each 6,000 Adam steps over 384,000 distinct training images (one pass;
2% of disentanglement_lib's 300,000 steps): the VAE at beta 1, annealed_vae at capacity 5 nats (gamma 1000,
raised over the first half, as in disentanglement_sweep.py) and DIP-VAE-I at lambda_od 10 (lambda_d 100),
the best setting of each in disentanglement_sweep.py; seeds 0, 1 and 2 as the outer loop.
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/dsprites_mlp.py'
FIXED = {'data.num_train': 384_000, 'model.capacity_steps': 3_000}


def get_sweep():
  kinds = sweeps.chain(
      sweeps.sweep('model.beta', [1.0]),
      [{'model.kind': 'annealed_vae', 'model.gamma': 1000.0, 'model.capacity_max_nats': 5.0}],
      [{'model.kind': 'dip_vae', 'model.dip_type': 'i', 'model.dip_lambda_od': 10.0, 'model.dip_lambda_d': 100.0}],
  )
  return sweeps.product(sweeps.sweep('seed', [0, 1, 2]), kinds)
