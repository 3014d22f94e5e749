"""Convolutional VAE on CIFAR-10 with a Gaussian decoder (learned shared scale).

  python -m vae_jax.main --config=configs/cifar10.py --workdir=runs/cifar10

Needs CIFAR-10 through TFDS (`pip install -e '.[tfds]'` and internet, once).
bits_per_dim is reported on the 8-bit scale (density on [0, 1] plus log 256 per
dimension), as for other continuous models of 8-bit images.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'cifar10'
  config.data.binarize = 'none'
  config.data.num_validation = 5_000
  config.num_epochs = 100
  config.model.encoder = 'conv'
  config.model.hidden_sizes = (64, 128, 256)
  config.model.latent_dim = 128
  config.model.likelihood = 'gaussian'
  config.model.gaussian_variance = 'learned'
  config.eval.num_importance_samples = 20
  return config
