"""Shapes and finiteness for every architecture, likelihood and model kind."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import data
from vae_jax import errors
from vae_jax import config_lib
from vae_jax import figures
from vae_jax import models
from vae_jax.training import objectives

# (name, config overrides, example shape: (H, W, C) an image, (D,) a vector): every kind, prior, flow and
# likelihood at least once; the conv hierarchy is tests/test_kinds.py's trained run.
CASES = [
    ('vae-mlp', {}, (28, 28, 1)),
    ('vae-conv-gaussian-rgb', {'model.encoder': 'conv', 'model.likelihood': 'gaussian', 'data.binarize': 'none'},
     (8, 8, 3)),
    ('ae-conv', {'model.kind': 'ae', 'model.encoder': 'conv'}, (8, 8, 1)),
    ('iwae-iaf', {'model.kind': 'iwae', 'model.posterior_flow': 'iaf', 'model.flow_hidden_size': 12}, (8, 8, 1)),
    ('vae-vampprior', {'model.prior': 'vampprior', 'model.prior_components': 7}, (8, 8, 1)),
    ('vae-mog-logistic-rgb-context', {'model.prior': 'mog', 'model.prior_components': 3, 'data.binarize': 'none',
                                      'model.likelihood': 'logistic_mixture', 'model.logistic_components': 2,
                                      'model.pixel_context': 1}, (8, 8, 3)),
    ('vae-categorical', {'model.likelihood': 'categorical', 'data.binarize': 'none'}, (8, 8, 1)),
    ('hvae-mlp-vampprior-context', {'model.kind': 'hvae', 'model.groups_per_stage': (1, 2),
                                    'model.prior': 'vampprior', 'model.prior_components': 5,
                                    'model.pixel_context': 1}, (8, 8, 1)),
    ('hvae-conv-iaf', {'model.kind': 'hvae', 'model.encoder': 'conv', 'model.groups_per_stage': (1, 1),
                       'model.activation': 'gelu', 'model.posterior_flow': 'iaf', 'model.flow_hidden_size': 8},
     (8, 8, 1)),
    ('cvae-class-prior', {'model.kind': 'cvae', 'model.prior': 'class_gaussian'}, (8, 8, 1)),
    ('vqvae', {'model.kind': 'vqvae', 'model.encoder': 'conv', 'model.codebook_size': 6}, (8, 8, 1)),
    ('vae-mlp-vector-vampprior', {'model.prior': 'vampprior', 'model.prior_components': 3}, (8,)),
    ('hvae-mlp-vector-gaussian', {'model.kind': 'hvae', 'model.groups_per_stage': (1, 1),
                                  'model.likelihood': 'gaussian', 'data.binarize': 'none'}, (8,)),
    ('annealed_vae-conv', {'model.kind': 'annealed_vae', 'model.encoder': 'conv'}, (8, 8, 1)),
    ('beta_tcvae', {'model.kind': 'beta_tcvae'}, (8, 8, 1)),
    ('factor_vae', {'model.kind': 'factor_vae', 'model.discriminator_sizes': (8, 8)}, (8, 8, 1)),
    ('dip_vae-ii-vector', {'model.kind': 'dip_vae', 'model.dip_type': 'ii', 'model.likelihood': 'gaussian',
                           'data.binarize': 'none'}, (8,)),
    ('seqvae-beam', {'model.kind': 'seqvae', 'data.binarize': 'none', 'model.embed_dim': 8, 'model.rnn_size': 8,
                     'model.decoding': 'beam', 'model.beam_size': 2}, ('tokens', 6)),
    ('lm', {'model.kind': 'lm', 'data.binarize': 'none', 'model.embed_dim': 8, 'model.rnn_size': 8}, ('tokens', 6)),
]


def _spec(shape):
  """(H, W, C): an image; (D,): a vector; ('tokens', L): sequences of at most L ids of 11 tokens."""
  if shape[0] == 'tokens':
    return data.SequenceSpec(vocab_size=11, max_length=shape[1])
  return data.ImageSpec.of_shape(shape) if len(shape) == 3 else data.VectorSpec.continuous(shape[0])


def _examples(spec, n: int, key) -> jax.Array:
  """n examples of `spec`: values in [0, 1], or token rows of lengths 1, 2, ... (tokens 4.., EOS, pads)."""
  if spec.kind != 'sequence':
    return jax.random.uniform(key, (n, *spec.shape))
  tokens = jax.random.randint(key, (n, spec.max_length), 4, spec.vocab_size)
  position, length = jnp.arange(spec.max_length)[None], jnp.arange(n)[:, None] % (spec.max_length - 1) + 1
  return jnp.where(position < length - 1, tokens, jnp.where(position == length - 1, 2, 0)).astype(jnp.int32)


def test_every_registered_kind_is_a_kind_with_a_case():
  """The interface as code: every kind in the registry subclasses models.Kind, gives the members Kind leaves
  open, keeps its class attributes in range, and has a case above, so the shape test runs over it too."""
  covered = {overrides.get('model.kind', 'vae') for _, overrides, _ in CASES}
  assert set(models.MODELS) <= covered, sorted(set(models.MODELS) - covered)
  for name, cls in models.MODELS.items():
    assert issubclass(cls, models.Kind), name
    for member in ('build', 'infer', 'terms', 'encode', 'decode', 'sample', 'reconstruct'):
      assert getattr(cls, member) is not getattr(models.Kind, member), f'{name} does not give {member}'
    assert isinstance(cls.stochastic, bool) and isinstance(cls.conditional, bool), name
    assert cls.objective in objectives.OBJECTIVES, name
    assert all(isinstance(f, figures.Figure) for f in cls.figures), name
    assert isinstance(cls.options, dict) and all(k in config_lib.base_config().model for k in cls.options), name
    assert cls.max_importance_samples is None or cls.max_importance_samples >= 1, name


@pytest.mark.parametrize('name,overrides,shape', CASES, ids=[c[0] for c in CASES])
def test_interface_shapes(make_config, name, overrides, shape):
  del name
  hidden = (8, 16) if overrides.get('model.encoder') == 'conv' else (32, 16)
  config = make_config(**{'model.hidden_sizes': hidden, 'model.latent_dim': 5, **overrides})
  spec = _spec(shape)
  model = models.make(config, spec)
  params = models.init_params(model, spec, jax.random.key(0))
  v = {'params': params}
  n, latent = 3, model.latent_dim
  assert latent == sum(model.group_sizes)
  x = _examples(spec, n, jax.random.key(1))
  keys = jax.random.split(jax.random.key(2), n)
  lik = type(model.likelihood)

  labels = jnp.arange(n, dtype=jnp.int32) % 10  # every kind takes them; an unconditional one ignores them

  @jax.jit  # every member in one program: one compilation instead of one per eager op
  def everything(v):
    mean, log_var = model.apply(v, x, labels, method=model.encode)
    out = {'mean': mean, 'log_var': log_var,
           'decoded': lik.mean(model.apply(v, mean, labels, method=model.decode)),
           'terms': model.apply(v, x, model.apply(v, x, labels, method=model.infer), keys, method=model.terms),
           # example j's draws come from keys[j] alone: the first example on its own gives the same terms
           'first_alone': model.apply(v, x[:1], keys[:1], labels[:1]),
           'recon': lik.mean(model.apply(v, x, keys, labels, method=model.reconstruct))}
    if model.stochastic:
      out['drawn'] = lik.mean(model.apply(v, jax.random.key(3), 4, 0.5, method=model.sample))
    return out

  out = everything(v)
  for key in ('log_px_z', 'kl', 'log_ratio'):
    if key in out['terms']:
      np.testing.assert_allclose(out['first_alone'][key], out['terms'][key][:1], rtol=1e-5, atol=1e-5)
  examples = [out[k] for k in ('decoded', 'recon', 'drawn') if k in out]
  assert all(leaf.dtype == (jnp.int32 if spec.kind == 'sequence' else jnp.float32) for leaf in examples)
  assert all(leaf.dtype == jnp.float32 for k in ('mean', 'terms') for leaf in jax.tree.leaves(out[k]))
  chex.assert_shape(out['mean'], (n, latent))
  point_mass = not model.stochastic or model.max_importance_samples == 1  # ae, vqvae: (code, None)
  assert (out['log_var'] is None) == point_mass
  chex.assert_shape([out['decoded'], out['recon']], (n, *spec.shape))
  chex.assert_shape(out['terms']['log_px_z'], (n,))
  chex.assert_shape(out['terms']['kl'], (n, len(model.group_sizes)))
  chex.assert_tree_all_finite(out)
  if model.stochastic:
    chex.assert_shape(out['terms']['log_ratio'], (n,))
    chex.assert_shape(out['drawn'], (4, *spec.shape))
    high = spec.vocab_size - 1 if spec.kind == 'sequence' else 1.0  # token ids; values in [0, 1]
    assert float(jnp.min(out['decoded'])) >= 0.0 and float(jnp.max(out['decoded'])) <= high


def test_terms_are_a_function_of_the_keys(make_config):
  model = models.make(make_config(), (8, 8, 1))
  params = {'params': models.init_params(model, (8, 8, 1), jax.random.key(0))}
  x = jnp.ones((2, 8, 8, 1)) * 0.5
  a = model.apply(params, x, jax.random.split(jax.random.key(1), 2))['log_px_z']
  b = model.apply(params, x, jax.random.split(jax.random.key(1), 2))['log_px_z']
  c = model.apply(params, x, jax.random.split(jax.random.key(2), 2))['log_px_z']
  chex.assert_trees_all_equal(a, b)
  assert not jnp.allclose(a, c)
  # Example j's draw depends on keys[j] alone: the first example alone gives the same number.
  alone = model.apply(params, x[:1], jax.random.split(jax.random.key(1), 2)[:1])['log_px_z']
  np.testing.assert_allclose(alone, a[:1], rtol=1e-6)


def test_hierarchical_sample_temperature_is_per_group(make_config):
  config = make_config(**{'model.kind': 'hvae', 'model.hidden_sizes': (16,), 'model.latent_dim': 3})
  model = models.make(config, (8, 8, 1))
  params = {'params': models.init_params(model, (8, 8, 1), jax.random.key(0))}
  key = jax.random.key(5)
  cold = model.apply(params, key, 6, (0.0, 0.0), method=model.sample)
  one_cold = model.apply(params, key, 6, (1.0, 0.0), method=model.sample)
  # With every group at temperature 0 all samples are the same image; warming the top group varies them.
  assert float(jnp.max(jnp.std(cold, axis=0))) < 1e-6
  assert float(jnp.max(jnp.std(one_cold, axis=0))) > 1e-3
  with pytest.raises(ValueError, match='2 latent groups'):
    model.apply(params, key, 6, (1.0, 1.0, 1.0), method=model.sample)


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


@pytest.mark.parametrize('overrides,match', [
    ({'model.encoder': 'conv'}, 'model.encoder=conv convolves images; this data holds vectors of shape \\(8,\\)'),
    ({'model.kind': 'hvae', 'model.encoder': 'conv', 'model.activation': 'gelu'}, 'model.kind=hvae with'),
    ({'model.kind': 'vqvae', 'model.encoder': 'conv'}, 'model.kind=vqvae convolves images'),
    ({'model.likelihood': 'logistic_mixture', 'data.binarize': 'none'}, 'use bernoulli or gaussian'),
    ({'model.pixel_context': 1}, 'with model.pixel_context=1 models images'),
], ids=['conv', 'hvae-conv', 'vqvae', 'logistic', 'context'])
def test_image_only_parts_refuse_vectors_in_one_line(make_config, overrides, match):
  with pytest.raises(errors.ConfigError, match=match) as info:
    models.make(make_config(**overrides), data.VectorSpec.continuous(8))
  assert '\n' not in str(info.value)
