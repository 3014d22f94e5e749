"""Small MLP VAE on scikit-learn's bundled 8x8 digits: no download, seconds on a CPU.

  python -m vae_jax.main --config=configs/digits.py --workdir=runs/digits

For smoke runs and demos. 1,797 images: 1,297 train, 200 validation, 300 test.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'digits'
  config.data.num_validation = 200
  config.num_epochs = 50
  config.batch_size = 64
  config.model.hidden_sizes = (128, 128)
  config.model.latent_dim = 8
  config.eval.every_epochs = 10
  config.eval.batch_size = 300
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  return config
