"""Shapes and finiteness for every architecture, likelihood and model kind."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import models

CASES = list(itertools.product(['mlp', 'conv'], ['bernoulli', 'gaussian'], ['vae', 'ae'],
                               [(28, 28, 1), (8, 8, 1), (32, 32, 3)]))


@pytest.mark.parametrize('encoder,likelihood,kind,image_shape', CASES)
def test_shapes(make_config, encoder, likelihood, kind, image_shape):
  config = make_config(**{'model.encoder': encoder, 'model.likelihood': likelihood, 'model.kind': kind,
                          'model.hidden_sizes': (8, 16) if encoder == 'conv' else (32, 16),
                          'model.latent_dim': 5, 'model.gaussian_variance': 'learned'})
  model = models.make(config, image_shape)
  params = models.init_params(model, image_shape, jax.random.key(0))
  v = {'params': params}
  x = jax.random.uniform(jax.random.key(1), (3, *image_shape))
  mean, log_var = model.apply(v, x, method=model.encode)
  chex.assert_shape(mean, (3, 5))
  if kind == 'vae':
    chex.assert_shape(log_var, (3, 5))
  else:
    assert log_var is None
  decoded = model.apply(v, mean, method=model.decode)
  if likelihood == 'bernoulli':
    chex.assert_shape(decoded, (3, *image_shape))
  else:
    chex.assert_shape(decoded, [(3, *image_shape)] * 2)
  log_px = model.apply(v, mean, x, method=model.log_px_given_z)
  chex.assert_shape(log_px, (3,))
  chex.assert_tree_all_finite((decoded, log_px))


def test_encode_is_deterministic_and_call_uses_key(make_config):
  model = models.make(make_config(), (8, 8, 1))
  params = {'params': models.init_params(model, (8, 8, 1), jax.random.key(0))}
  x = jnp.ones((2, 8, 8, 1)) * 0.5
  a, _, _ = model.apply(params, x, jax.random.key(1))
  b, _, _ = model.apply(params, x, jax.random.key(1))
  c, _, _ = model.apply(params, x, jax.random.key(2))
  chex.assert_trees_all_equal(a, b)
  assert not jnp.allclose(a, c)


def test_bfloat16_compute_keeps_float32_params_and_outputs(make_config):
  config = make_config(**{'model.dtype': 'bfloat16'})
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
  mean, log_var = model.apply({'params': params}, x, method=model.encode)
  log_px = model.apply({'params': params}, mean, x, method=model.log_px_given_z)
  assert mean.dtype == log_var.dtype == log_px.dtype == jnp.float32
  # The same parameters computed in float32 give nearly the same numbers.
  reference = models.make(make_config(), (8, 8, 1))
  ref_mean, _ = reference.apply({'params': params}, x, method=reference.encode)
  np.testing.assert_allclose(mean, ref_mean, atol=0.05)


@pytest.mark.parametrize('encoder', ['mlp', 'conv'])
def test_glu_layers_gate_half_of_a_doubled_layer(make_config, encoder):
  config = make_config(**{'model.encoder': encoder, 'model.activation': 'glu',
                          'model.hidden_sizes': (8, 16) if encoder == 'conv' else (32, 16),
                          'model.latent_dim': 5})
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1))
  mean, _ = model.apply({'params': params}, x, method=model.encode)
  chex.assert_shape(mean, (3, 5))
  first = 'dense_0' if encoder == 'mlp' else 'conv_0'
  kernel = params['encoder'][first]['kernel']
  assert kernel.shape[-1] == 2 * config.model.hidden_sizes[0]
  if encoder == 'mlp':
    # Each hidden layer is a * sigmoid(b) of the two halves of one dense layer twice its width.
    enc = params['encoder']
    h = x.reshape(3, -1)
    for name in ('dense_0', 'dense_1'):
      a, b = jnp.split(h @ enc[name]['kernel'] + enc[name]['bias'], 2, axis=-1)
      h = a * jax.nn.sigmoid(b)
    np.testing.assert_allclose(model.apply({'params': params}, x, method=lambda m, v: m.encoder(v)),
                               h @ enc['out']['kernel'] + enc['out']['bias'], rtol=1e-5, atol=1e-5)
