"""The number of importance samples k of the IWAE training bound on Fashion-MNIST.

  ./launch.sh sweep experiments/importance_samples_sweep.py --devices=0,1,2,3
  python -m vae_jax.sweep_report runs/importance_samples_sweep

The VAE (k = 1) and IWAEs with k ∈ {5, 50}, each with 20 epochs of
configs/fashion_mnist.py, and the test NLL of every point estimated with the same
1000 importance samples, so the NLLs are comparable. Burda et al. (2016) find the
NLL improving and the number of active units growing with k. A step costs about
k/2 times a VAE step on a CPU: k = 50 is hours there, minutes on a GPU.
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/fashion_mnist.py'

FIXED = {'num_epochs': 20, 'eval.num_importance_samples': 1000}


def get_sweep():
  return sweeps.chain(
      [{'model.kind': 'vae'}],
      sweeps.product([{'model.kind': 'iwae'}], sweeps.sweep('model.num_importance_samples', [5, 50])),
  )
