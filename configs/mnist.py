"""MLP VAE (784-500-500-50, ReLU) on dynamically binarized MNIST.

  python -m vae_jax.main --config=configs/mnist.py --workdir=runs/mnist

Needs MNIST through TFDS (`pip install -e '.[tfds]'` and internet, once), or IDX
files: `--config.data.idx_dir=DIR` with train-images-idx3-ubyte.gz etc. in DIR.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'mnist'
  return config
