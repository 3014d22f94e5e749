"""8-bit Fashion-MNIST: the conv VAE of configs/fashion_mnist_conv.py with a discretized logistic mixture.

  python -m vae_jax.main --config=configs/fashion_mnist_8bit.py --workdir=runs/fashion_mnist_8bit
  python -m vae_jax.evaluate --workdir=runs/fashion_mnist_8bit --num_importance_samples=1000

The images keep their 256 grey levels (data.binarize=none) and p(x|z) is a
mixture of 10 discretized logistics per pixel (PixelCNN++'s likelihood), so
its probabilities of the 256 values sum to 1 and bits/dim are exact: no
"+ D ln 256" convention. model.likelihood=categorical swaps in a 256-way
softmax per pixel. Not trained to the end yet: it ran at about 340 images/s on 2 CPU
cores beside an evaluation (about 1.2 h of training steps for its 30 epochs, before its
evaluations, whose mixture head is slow on a CPU), so it is meant for a GPU; its CPU-sized
sibling configs/fashion_mnist_8bit_mlp.py reaches 3.380 bits/dim, and with a pixel context
(configs/fashion_mnist_8bit_context.py) 3.085, both NLLs with 100 importance samples
(RESULTS.md, "8-bit Fashion-MNIST"). --config.model.pixel_context=2 adds the
context here too.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.build_on(__file__, 'fashion_mnist_conv.py')
  config.data.binarize = 'none'
  config.model.likelihood = 'logistic_mixture'
  config.model.logistic_components = 10
  config.optim.ema_decay = 0.999
  return config
