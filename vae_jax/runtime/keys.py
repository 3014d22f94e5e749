"""The streams of randomness of a run: each a fold_in of the root key jax.random.key(config.seed).

Training, its evaluations, `vae_jax.evaluate` and the metrics draw from the
same streams, so the same seed gives the same numbers wherever they are
computed, and a resumed run draws what an uninterrupted one would.
"""

import jax

# Streams of the run's root key.
INIT, TRAIN, EVAL, IMAGES, SHUFFLE, MEASURES = range(6)


def eval_key(seed: int, split: str) -> jax.Array:
  """The key of every evaluation of `split`: the same draws each time, in training and in vae_jax.evaluate."""
  key = jax.random.fold_in(jax.random.key(seed), EVAL)
  return key if split == 'validation' else jax.random.fold_in(key, 1)


def measures_key(seed: int) -> jax.Array:
  """The key of the metrics (`vae_jax.evaluation.metrics.Context.key`), in training and in vae_jax.evaluate."""
  return jax.random.fold_in(jax.random.key(seed), MEASURES)


def per_example_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
  """fold_in(key, i) for every example index i: example i's draws then depend on nothing else."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
