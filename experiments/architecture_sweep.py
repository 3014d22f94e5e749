"""Encoder architecture × likelihood on Fashion-MNIST.

  ./launch.sh sweep experiments/architecture_sweep.py --devices=0,1,2,3
  python -m vae_jax.sweep_report runs/architecture_sweep

8 points: {MLP 500-500, conv 32-64} × {Bernoulli on dynamically binarized
pixels, Gaussian on grey values} × latent_dim ∈ {10, 50}. `zip` keeps each
encoder with its widths and each likelihood with its binarization. The
Bernoulli and Gaussian NLLs are densities of different data (binary pixels,
grey values in [0, 1]): compare them within a likelihood, not across.
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/fashion_mnist.py'


def get_sweep():
  architectures = sweeps.zip(
      sweeps.sweep('model.encoder', ['mlp', 'conv']),
      sweeps.sweep('model.hidden_sizes', [(500, 500), (32, 64)]),
  )
  likelihoods = sweeps.zip(
      sweeps.sweep('model.likelihood', ['bernoulli', 'gaussian']),
      sweeps.sweep('data.binarize', ['dynamic', 'none']),
  )
  return sweeps.product(architectures, likelihoods, sweeps.sweep('model.latent_dim', [10, 50]))
