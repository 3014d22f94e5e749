"""MLP VAE (784-500-500-50, ReLU) on dynamically binarized Fashion-MNIST.

  python -m vae_jax.main --config=configs/fashion_mnist.py --workdir=runs/fashion_mnist

30 epochs on 2 CPU cores: about 2.5 minutes, test ELBO about -236 nats and
100-sample importance-sampled NLL about -log p(x) = 231 nats (README, "Results").
Runs offline from Debian's dataset-fashion-mnist; elsewhere through TFDS.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'fashion_mnist'
  return config
