"""The PyTorch yardstick is the same network as vae_jax's (when torch is installed: `.[benchmark]`); the
larger-than-memory benchmark's file."""

import math

import jax
import numpy as np
import pytest

from vae_jax import data
from vae_jax import models
from vae_jax.training import benchmark
from vae_jax.training import pytorch_baseline

from conftest import tiny_config


@pytest.mark.parametrize('overrides', [
    {},
    {'model.encoder': 'conv', 'model.hidden_sizes': (8, 16)},
    {'model.activation': 'glu', 'model.kind': 'ae'},
])
def test_pytorch_network_has_the_same_parameters(overrides):
  torch = pytest.importorskip('torch')
  config = tiny_config(**overrides)
  shape = (8, 8, 1)
  params = models.init_params(models.make(config, shape), shape, jax.random.key(0))
  encoder, decoder = pytorch_baseline._network(config, shape)  # pylint: disable=protected-access
  ours = sorted(math.prod(p.shape) for p in jax.tree.leaves(params))
  theirs = sorted(p.numel() for p in list(encoder.parameters()) + list(decoder.parameters()))
  assert ours == theirs
  out = decoder(torch.zeros(3, config.model.latent_dim))
  assert tuple(out.shape) == (3, 1, 8, 8)


def test_the_larger_than_memory_file_repeats_the_training_images(tmp_path):
  """`--stream_gigabytes`' file: uint8 images of the dataset's shape, its training images over and over, written
  once and reused."""
  dataset = data.load(tiny_config())
  path, n = benchmark._tiled_file(dataset, 2**-10, tmp_path)  # pylint: disable=protected-access
  stored = np.asarray(dataset.train.examples)
  x = np.load(path, mmap_mode='r')
  assert x.dtype == np.uint8 and x.shape == (n, *stored.shape[1:]) and n == 2**20 // stored[0].size
  np.testing.assert_array_equal(x[len(stored):len(stored) + 5], stored[:5])
  written = path.stat().st_mtime_ns
  assert benchmark._tiled_file(dataset, 2**-10, tmp_path) == (path, n)  # pylint: disable=protected-access
  assert path.stat().st_mtime_ns == written
