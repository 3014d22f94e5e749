"""vae_jax: variational autoencoders in JAX/Flax.

Train with `python -m vae_jax.main --config=configs/fashion_mnist.py --workdir=DIR`;
read a run back with `vae_jax.load_run(DIR)`.
"""

from vae_jax.run import load_run
from vae_jax.run import Run

__all__ = ['load_run', 'Run']
