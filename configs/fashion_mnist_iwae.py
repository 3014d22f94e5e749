"""IWAE (k = 50) with the network of configs/fashion_mnist.py (784-500-500-50, ReLU).

  python -m vae_jax.main --config=configs/fashion_mnist_iwae.py --workdir=runs/fashion_mnist_iwae
  python -m vae_jax.evaluate --workdir=runs/fashion_mnist_iwae --num_importance_samples=5000

Trained on the 50-sample importance-weighted bound; each step costs about 25x
a VAE step on a CPU. The VAE it is compared with in RESULTS.md is
`--config=configs/fashion_mnist.py --config.num_epochs=20`.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'fashion_mnist'
  config.num_epochs = 20
  config.model.kind = 'iwae'
  config.model.num_importance_samples = 50
  config.steps_per_dispatch = 20
  config.log_every_steps = 100
  return config
