"""The user's cache: $VAE_JAX_CACHE, by default ~/.cache/vae_jax (classifiers trained on this machine, codec sizes).

A cache only saves time, so one that cannot be written (a read-only home, a
VAE_JAX_CACHE that names a regular file) never stops a run: the work is done
without it, and a warning says so once per folder and process.
"""

import os
import pathlib

from absl import logging

_WARNED: set[str] = set()


def root() -> pathlib.Path:
  return pathlib.Path(os.environ.get('VAE_JAX_CACHE') or pathlib.Path.home() / '.cache' / 'vae_jax')


def directory(name: str) -> pathlib.Path | None:
  """root()/name, created if needed; None (after one warning) when it cannot be."""
  path = root() / name
  try:
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
      raise PermissionError(f'{path} is not writable')
    return path
  except OSError as e:
    if str(path) not in _WARNED:
      _WARNED.add(str(path))
      logging.warning('the cache folder %s cannot be used (%s: %s); going on without it, so its work is redone '
                      'each time. Set VAE_JAX_CACHE to a writable folder to keep it', path, type(e).__name__, e)
    return None
