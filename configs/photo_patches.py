"""The convolutional Gaussian VAE of configs/cifar10.py on real 32x32 RGB images offline: patches of
scikit-learn's two sample photographs, through the `array` source.

  python experiments/photo_patches.py runs/photo_patches.npz
  python -m vae_jax.main --config=configs/photo_patches.py --workdir=runs/photo_patches

bits_per_dim is on the 8-bit scale (the density on [0, 1] plus ln 256 a
dimension). Result and schedule: RESULTS.md, "Your own data".
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.build_on(__file__, 'cifar10.py')
  config.data.name = 'array'
  config.data.path = 'runs/photo_patches.npz'
  config.data.num_validation = 2_000
  config.num_epochs = 20
  config.eval.metrics = ('representation',)  # no classifier of these images; the probe needs labels: skipped
  return config
