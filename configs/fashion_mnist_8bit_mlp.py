"""8-bit Fashion-MNIST with the default MLP VAE (784-500-500-50) and a discretized logistic mixture.

  python -m vae_jax.main --config=configs/fashion_mnist_8bit_mlp.py --workdir=runs/fashion_mnist_8bit_mlp

The CPU-sized sibling of configs/fashion_mnist_8bit.py (the conv VAE, which
needs a GPU to train in reasonable time): the same likelihood, a mixture of 10
discretized logistics per pixel over the 256 grey levels, so bits/dim are
exact, with the default run's network. 30 epochs on 2 CPU cores (shared with
the test suite): test NLL 1837.01 nats (k=100) = 3.380 bits/dim, ELBO 3.416
bits/dim (RESULTS.md, "8-bit Fashion-MNIST").
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.build_on(__file__, 'fashion_mnist.py')
  config.data.binarize = 'none'
  config.model.likelihood = 'logistic_mixture'
  config.model.logistic_components = 10
  return config
