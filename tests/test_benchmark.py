"""The PyTorch yardstick is the same network as vae_jax's (when torch is installed: `.[benchmark]`)."""

import math

import jax
import pytest

from vae_jax import models
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
