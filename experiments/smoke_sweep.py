"""Smoke test of the sweep machinery: 4 points on scikit-learn's digits, seconds each.

  ./launch.sh sweep experiments/smoke_sweep.py --parallel=2
  python -m vae_jax.sweep_report runs/smoke_sweep

β ∈ {0.5, 2} × latent_dim ∈ {2, 4}, 3 epochs of a 64-32-z MLP VAE, NLL with 5
importance samples. Used by tests/test_sweeps.py; the numbers mean little.
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/digits.py'

FIXED = {  # shared by every point, and not part of the point names
    'num_epochs': 3,
    'model.hidden_sizes': (32,),
    'eval.every_epochs': 1,
    'eval.num_importance_samples': 5,
    'eval.num_images': 16,
    'eval.measures': False,  # the probes and Frechet distances are not what a smoke test checks
    'steps_per_dispatch': 10,
    'log_every_steps': 10,
    'checkpoint_every_steps': 20,
}


def get_sweep():
  return sweeps.product(
      sweeps.sweep('model.beta', [0.5, 2.0]),
      sweeps.sweep('model.latent_dim', [2, 4]),
  )
