"""vae_jax: variational autoencoders in JAX/Flax.

Train with `python -m vae_jax.main --config=configs/fashion_mnist.py --workdir=DIR`, or from Python with
`vae_jax.train_and_evaluate(config, DIR)`; read a run back with `vae_jax.load_run(DIR)`.
"""

from vae_jax.runs.run import Run
from vae_jax.runs.run import load_run

__all__ = ['load_run', 'Run', 'train_and_evaluate']


def __getattr__(name):
  # Imported on first use: the trainer brings the plots and measures, which reading a run does not need.
  if name == 'train_and_evaluate':
    from vae_jax.training.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
    return train_and_evaluate
  raise AttributeError(f'module vae_jax has no attribute {name!r}')
