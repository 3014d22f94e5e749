"""What every layer shares about the machine and the process a run lives in.

  parallel   the device mesh, shardings, and device memory;
  dispatch   how a step function is called many times (a fused scan,
             unrolled blocks, or one call a step) and timing them;
  keys       the streams of randomness every run folds from its seed;
  signals    SIGTERM / SIGINT turned into a checkpoint and exit 75;
  files      writes that land whole or not at all, damaged files as one line;
  cache      the user's cache directory ($VAE_JAX_CACHE).

Nothing here knows a model, a dataset or a run directory, so data, models,
evaluation, runs and training all build on it.
"""
