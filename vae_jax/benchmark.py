"""Training throughput: vae_jax against a plain jitted loop and against PyTorch.

  python -m vae_jax.benchmark                                  # the MLP and the conv Fashion-MNIST configs
  python -m vae_jax.benchmark --config=configs/fashion_mnist.py [--config.batch_size=1024]
  python -m vae_jax.benchmark --conv_layers                    # each conv layer: lax's convolution vs matmuls
  python -m vae_jax.benchmark --config=configs/fashion_mnist_conv.py --stream_gigabytes=6 [--stream_dir=DIR]
                                  # also trained streamed from a 6 GiB memory-mapped file, from a cold page cache

What is timed and how: `vae_jax.training.benchmark`. Figures for this
project's machines are in BENCHMARKS.md.
"""

from absl import flags
from absl import logging
from ml_collections import config_flags

from vae_jax import cli
from vae_jax.training import benchmark

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file in configs/; default: the '
                                          'MLP and the conv Fashion-MNIST configs.', lock_config=True)
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Minimum timed duration of each loop (over all its rounds).')
_TORCH = flags.DEFINE_bool('torch', True, 'Time the PyTorch yardstick when torch is installed.')
_LAYERS = flags.DEFINE_bool('conv_layers', False, "Instead, time each conv layer of the configs' conv models "
                            "alone, forward and backward, with lax's convolution and as matmuls.")
_STREAM = flags.DEFINE_bool('stream', True, 'Also time the training set streamed by Grain from the host '
                            '(data.feed=stream, data.workers processes) against on the device, and what bounds it.')
_STREAM_GB = flags.DEFINE_float('stream_gigabytes', 0.0, 'Also train each config streamed from a memory-mapped uint8 '
                                '.npy of this many GiB (its images repeated; written once to --stream_dir and '
                                'reused), evicted from the page cache first. 0: not.')
_STREAM_DIR = flags.DEFINE_string('stream_dir', None, 'Where --stream_gigabytes writes its file (default: the '
                                  'temporary directory). It stays there for later runs.')


def _benchmark():
  configs = [cli.config_value(_CONFIG)] if _CONFIG.value is not None else benchmark.default_configs()
  benchmark.run(configs, _SECONDS.value, _TORCH.value, _LAYERS.value, _STREAM.value, _STREAM_GB.value,
                _STREAM_DIR.value)


if __name__ == '__main__':
  logging.set_verbosity(logging.WARNING)
  cli.run(_benchmark)
