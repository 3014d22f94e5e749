"""The Fashion-MNIST MLP VAE trained to convergence: 200 epochs, KL warm-up.

  python -m vae_jax.main --config=configs/fashion_mnist_long.py --workdir=runs/fashion_mnist_long
  python -m vae_jax.evaluate --workdir=runs/fashion_mnist_long --num_importance_samples=5000

Results (test NLL with 5000 importance samples) are in RESULTS.md.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'fashion_mnist'
  config.num_epochs = 200
  config.model.kl_warmup_epochs = 10.0
  config.eval.every_epochs = 10
  config.checkpoint_every_steps = 10_000
  return config
