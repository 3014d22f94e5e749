"""β × latent size on Fashion-MNIST: the rate–distortion trade-off of the MLP VAE.

  ./launch.sh sweep experiments/beta_sweep.py --devices=0,1,2,3
  python -m vae_jax.sweep_report runs/beta_sweep

18 points, β ∈ {0.25, 0.5, 1, 2, 4, 8} × latent_dim ∈ {2, 10, 32}, each the 30
epochs of configs/fashion_mnist.py (about 2 min 13 s on 2 CPU cores, README.md; far less
on a GPU). Expect KL to fall and reconstruction to worsen as β grows, and the
NLL to be best near β = 1, where the training loss is the ELBO.
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/fashion_mnist.py'


def get_sweep():
  return sweeps.product(
      sweeps.sweep('model.beta', [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]),
      sweeps.sweep('model.latent_dim', [2, 10, 32]),
  )
