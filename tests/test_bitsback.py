"""Bits-back compression: exact round trips for every codable model shape, a code length at the
model's -ELBO, the probabilities it codes with against exact answers, and one-line refusals."""

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import models
from vae_jax.coding import bitsback
from vae_jax.models import likelihoods
from vae_jax.models import seqvae
from vae_jax.runs import run as run_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_round_trip_is_exact_and_costs_the_elbo(tiny_vae_run, tmp_path):
  workdir, results = tiny_vae_run
  run = run_lib.load_run(workdir)
  images = data.load(run.config).test.images  # binarized once, as the evaluation reads them
  figures = bitsback.compress_run(run, images, tmp_path / 'test.vbb', batch_size=64)
  restored, _ = bitsback.decompress_run(run, tmp_path / 'test.vbb')
  assert restored.dtype == images.dtype and np.array_equal(restored, images)
  nats = (figures['payload_bits'] - figures['seed_bits']) * math.log(2) / len(images)
  assert nats == pytest.approx(-results['elbo_nats'], rel=0.03), (nats, results['elbo_nats'])


def _untrained(make_config, image_shape, **overrides):
  config = make_config(**{'model.hidden_sizes': (16,), 'model.latent_dim': 3, **overrides})
  model = models.make(config, image_shape)
  return model, models.init_params(model, image_shape, jax.random.key(0))


@pytest.mark.parametrize('overrides,uint8', [
    ({'model.kind': 'hvae', 'model.groups_per_stage': (1, 1)}, False),  # two groups, top-down order
    ({'model.prior': 'vampprior', 'model.prior_components': 3}, False),  # a mixture prior, bits back on its component
    ({'model.kind': 'hvae', 'model.groups_per_stage': (1, 1), 'model.prior': 'mog', 'model.prior_components': 4},
     False),
    ({'model.likelihood': 'logistic_mixture', 'model.logistic_components': 3, 'data.binarize': 'none'}, True),
    ({'model.likelihood': 'categorical', 'data.binarize': 'none'}, False),
    # pixels that read the pixels before them: coded one pixel at a time
    ({'model.likelihood': 'logistic_mixture', 'model.logistic_components': 2, 'model.pixel_context': 1,
      'data.binarize': 'none'}, True),
    ({'model.pixel_context': 2}, False),
])
def test_every_codable_shape_round_trips_exactly(make_config, overrides, uint8):
  shape = (4, 4, 1)
  model, params = _untrained(make_config, shape, **overrides)
  rng = np.random.default_rng(0)
  head = type(model.likelihood)
  symbols = rng.integers(0, head.num_symbols, size=(9, *shape))
  images = symbols.astype(np.uint8) if uint8 else (symbols / (head.num_symbols - 1)).astype(np.float32)
  coder = bitsback.Coder(model, params, shape, bucket_bits=6, batch_size=4)
  coded, _ = bitsback.to_symbols(head, images, shape)
  words = coder.compress(coded)
  assert np.array_equal(coder.decompress(words, len(images)), coded)


def test_bucket_masses_against_scipy():
  prior_mean, prior_log_var = jnp.array([0.5, -1.0]), jnp.array([0.0, 0.8])
  q_mean, q_log_var = jnp.array([0.9, -3.5]), jnp.array([-2.0, -4.0])
  got = np.asarray(bitsback.bucket_masses(prior_mean, prior_log_var, q_mean, q_log_var, 4))
  edges = stats.norm.ppf(np.arange(17) / 16)[None] * np.exp(0.5 * np.asarray(prior_log_var))[:, None] \
      + np.asarray(prior_mean)[:, None]
  want = np.diff(stats.norm.cdf(edges, np.asarray(q_mean)[:, None], np.exp(0.5 * np.asarray(q_log_var))[:, None]))
  np.testing.assert_allclose(got, want, atol=2e-6)
  # every bucket has mass 1/16 under the prior, and its value is the prior's median within it
  uniform = bitsback.bucket_masses(prior_mean, prior_log_var, prior_mean, prior_log_var, 4)
  np.testing.assert_allclose(uniform, 1 / 16, atol=1e-6)
  value = bitsback.bucket_values(prior_mean, prior_log_var, jnp.array([3, 15]), 4)
  np.testing.assert_allclose(stats.norm.cdf(value, np.asarray(prior_mean), np.exp(0.5 * np.asarray(prior_log_var))),
                             [3.5 / 16, 15.5 / 16], rtol=1e-5)


@pytest.mark.parametrize('name', ['bernoulli', 'logistic_mixture', 'categorical'])
def test_symbol_probabilities_are_the_likelihood(make_config, name):
  config = make_config(**{'model.likelihood': name, 'model.logistic_components': 3})
  head = likelihoods.make(config, 1)
  outputs = 3.0 * jax.random.normal(jax.random.key(0), (2, 3, 3, head.output_channels(1)))
  params = head.apply({}, outputs)
  probs = head.symbol_probs(params)  # (2, 3, 3, 1, V)
  np.testing.assert_allclose(jnp.sum(probs, -1), 1.0, atol=1e-5)
  symbols = jax.random.randint(jax.random.key(1), (2, 3, 3, 1), 0, head.num_symbols)
  picked = jnp.take_along_axis(probs, symbols[..., None], -1)[..., 0]
  want = head.log_prob(params, head.from_symbols(symbols))
  np.testing.assert_allclose(jnp.sum(jnp.log(picked).reshape(2, -1), -1), want, rtol=1e-4, atol=1e-4)


def test_the_component_codec_costs_the_exact_box_mass():
  """A mixture group is coded with bits back on the component: q(k | b) and each component's bucket masses
  are the exact ones, and for every box b and every k, -log P_k(b) - log pi_k + log q(k | b) is
  -log P(b), the mixture's exact mass on the box."""
  rng = np.random.default_rng(0)
  k, d, bits = 3, 3, 2
  log_w = np.log(rng.dirichlet(np.ones(k)))[None].astype(np.float32)
  means = rng.normal(size=(1, k, d)).astype(np.float32)
  log_vars = rng.normal(scale=0.5, size=(1, k, d)).astype(np.float32)
  ref_mean, ref_log_var = (np.asarray(a, np.float64) for a in bitsback.reference_gaussian(log_w, means, log_vars))
  quantiles = stats.norm.ppf(np.arange(2**bits + 1) / 2**bits)
  edges = ref_mean[0, :, None] + np.exp(0.5 * ref_log_var[0, :, None]) * quantiles
  want_masses = np.diff(stats.norm.cdf(edges[None], means[0, ..., None], np.exp(0.5 * log_vars[0, ..., None])))
  masses = np.stack([np.asarray(bitsback.component_masses(log_w, means, log_vars, jnp.array([j]), bits))[0]
                     for j in range(k)])  # (K, D, 2^bits)
  np.testing.assert_allclose(masses, want_masses, atol=1e-6)
  np.testing.assert_allclose(masses.sum(-1), 1.0, atol=1e-5)
  for box in np.ndindex(*(2**bits,) * d):
    posterior = np.asarray(bitsback.component_posterior(log_w, means, log_vars, jnp.array([box]), bits))[0]
    component_box = np.prod(want_masses[:, np.arange(d), box], axis=-1)  # P_k(b), (K,)
    box_mass = np.sum(np.exp(log_w[0]) * component_box)
    np.testing.assert_allclose(posterior, np.exp(log_w[0]) * component_box / box_mass, rtol=1e-4, atol=1e-7)
    coded = -np.log(np.prod(masses[:, np.arange(d), box], axis=-1)) - log_w[0] + np.log(posterior)
    np.testing.assert_allclose(coded, -np.log(box_mass), rtol=1e-4)


@pytest.mark.parametrize('overrides', [
    {'model.prior': 'vampprior', 'model.prior_components': 5},
    {'model.likelihood': 'logistic_mixture', 'model.logistic_components': 2, 'model.pixel_context': 1,
     'data.binarize': 'none'},
])
def test_a_mixture_prior_or_a_pixel_context_codes_at_its_elbo(make_config, overrides):
  """With a VampPrior the file costs the model's -ELBO, as with N(0, I): the component's bits come back.
  So it does when each pixel is coded given the pixels before it."""
  shape = (4, 4, 1)
  model, params = _untrained(make_config, shape, **overrides)
  rng = np.random.default_rng(1)
  if model.likelihood.discrete and type(model.likelihood).num_symbols == 256:
    images = (rng.integers(0, 256, size=(300, *shape)) / 255).astype(np.float32)
  else:
    images = (rng.random((300, *shape)) < 0.3).astype(np.float32)
  coder = bitsback.Coder(model, params, shape, batch_size=100)
  coded, _ = bitsback.to_symbols(type(model.likelihood), images, shape)
  words = coder.compress(coded)
  nats = 32 * (len(words) - len(bitsback.seed_words(coder.latent_dim, coder.bits))) * math.log(2) / len(images)
  keys = jax.random.split(jax.random.key(2), 20 * len(images))
  x = jnp.tile(jnp.asarray(images), (20, 1, 1, 1))
  terms = model.apply({'params': params}, x, keys)
  elbo = float(jnp.mean(terms['log_px_z'] - jnp.sum(terms['kl'], -1)))
  assert nats == pytest.approx(-elbo, rel=0.02), (nats, elbo)


@pytest.mark.parametrize('overrides,expected', [
    ({'model.posterior_flow': 'iaf', 'model.flow_hidden_size': 8}, 'posterior flow'),
    ({'model.likelihood': 'gaussian', 'data.binarize': 'none'}, 'is a density'),
    ({'model.kind': 'ae'}, 'no bits to get back'),
])
def test_models_it_cannot_code_are_refused_in_one_line(make_config, overrides, expected):
  model, params = _untrained(make_config, (4, 4, 1), **overrides)
  with pytest.raises(errors.UserError, match=expected):
    bitsback.Coder(model, params, (4, 4, 1))


def test_values_outside_the_alphabet_are_refused():
  with pytest.raises(errors.DataError, match='values other than 0 and 1'):
    bitsback.to_symbols(likelihoods.Bernoulli, np.full((2, 4, 4, 1), 0.5, np.float32), (4, 4, 1))
  with pytest.raises(errors.DataError, match='shape'):
    bitsback.to_symbols(likelihoods.Bernoulli, np.zeros((2, 5, 4, 1)), (4, 4, 1))


def _decompress_cli(workdir, path, out):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'vae_jax.decompress', f'--workdir={workdir}', f'--in={path}',
                         f'--out={out}'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_another_run_or_a_damaged_file_is_refused(tiny_vae_run, tmp_path):
  workdir, _ = tiny_vae_run
  run = run_lib.load_run(workdir)
  images = data.load(run.config).test.images[:20]
  path = tmp_path / 'a.vbb'
  bitsback.compress_run(run, images, path)
  other = run_lib.load_run(workdir, step=run.step - 20)  # the same config at an earlier checkpoint
  with pytest.raises(bitsback.CompressedFileError, match='made with another run .parameters hash'):
    bitsback.decompress_run(other, path)
  blob = bytearray(path.read_bytes())
  blob[-3] ^= 0x10
  (tmp_path / 'flipped.vbb').write_bytes(bytes(blob))
  (tmp_path / 'cut.vbb').write_bytes(bytes(blob[:30]))
  with pytest.raises(bitsback.CompressedFileError, match='damaged header'):
    bitsback.decompress_run(run, tmp_path / 'cut.vbb')
  proc = _decompress_cli(workdir, tmp_path / 'flipped.vbb', tmp_path / 'out.npy')
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and 'is damaged' in last, last
  assert not list(tmp_path.glob('out*'))


def _with_version(run, examples, version, out):
  """A file of `version` (1 to 3: a JSON header, the fixed chunk schedule) of `examples`, made with `run`."""
  path = out.with_suffix('.new')
  bitsback.compress_run(run, examples, path)
  header, _ = bitsback.read_file(path)
  coder = bitsback.Coder(run.model, run.params, run.spec)
  words = coder.compress(coder.codec.symbols(examples)[0], version=min(version, 3))
  meta = json.dumps(dict(dataclasses.asdict(header), format_version=version, num_words=len(words),
                         payload_sha256=hashlib.sha256(np.asarray(words, '<u4').tobytes()).hexdigest()),
                    sort_keys=True).encode()
  out.write_bytes(bitsback.JSON_MAGIC + struct.pack('<I', len(meta)) + meta + np.asarray(words, '<u4').tobytes())
  return out


def test_older_files_decode_where_their_coding_is_unchanged(tiny_vae_run, make_config, tmp_path):
  """Versions 2 and 3 changed the coding of mixture priors and of the logistic mixture only: an older
  file of another model still decodes, one of those is refused in one line naming the commit that reads
  it, and a newer version is refused."""
  run = run_lib.load_run(tiny_vae_run[0])
  images = data.load(run.config).test.images[:10]
  bitsback.compress_run(run, images, tmp_path / 'a.vbb')
  restored, _ = bitsback.decompress_run(run, _with_version(run, images, 1, tmp_path / 'v1.vbb'))
  assert np.array_equal(restored, images)
  with pytest.raises(bitsback.CompressedFileError, match='format version 5; this vae_jax reads versions 1, 2, 3, 4'):
    bitsback.decompress_run(run, _with_version(run, images, 5, tmp_path / 'v5.vbb'))
  overrides = {'model.likelihood': 'logistic_mixture', 'model.logistic_components': 2, 'data.binarize': 'none'}
  model, params = _untrained(make_config, (4, 4, 1), **overrides)
  logistic = types.SimpleNamespace(model=model, params=params, spec=data.ImageSpec.of_shape((4, 4, 1)), step=0,
                                   config=make_config(**overrides))
  pixels = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1)).astype(np.uint8)
  bitsback.compress_run(logistic, pixels, tmp_path / 'b.vbb')
  assert np.array_equal(bitsback.decompress_run(logistic, tmp_path / 'b.vbb')[0], pixels)
  with pytest.raises(bitsback.CompressedFileError, match='coding of a logistic-mixture likelihood .* commit 740e27b'):
    bitsback.decompress_run(logistic, _with_version(logistic, pixels, 2, tmp_path / 'b2.vbb'))


def _sequence_model(kind='seqvae'):
  spec = data.SequenceSpec(vocab_size=9, max_length=6)
  config = config_lib.base_config()
  config.data.binarize = 'none'
  config.model.kind, config.model.latent_dim, config.model.embed_dim, config.model.rnn_size = kind, 3, 5, 7
  model = models.make(config, spec)
  return model, models.init_params(model, spec, jax.random.key(0)), spec


def _sequences(n: int, max_length: int, vocab: int, seed: int = 0) -> np.ndarray:
  """Rows of every length from 0 tokens (the EOS alone) to max_length - 1 (the EOS at the last position)."""
  rng = np.random.default_rng(seed)
  rows = np.zeros((n, max_length), np.int32)
  for row, length in zip(rows, rng.integers(0, max_length, n)):
    row[:length], row[length] = rng.integers(3, vocab, length), 2
  return rows


@pytest.mark.parametrize('kind', ['seqvae', 'lm'])
def test_token_sequences_round_trip_exactly_and_cost_the_elbo(kind):
  """Each row codes its tokens and its EOS under p(x_i | x_<i, z), and decoding stops a row at its EOS; the
  file costs the model's -ELBO, as for images, though each example's pops (3 x 12 bits) are several times its
  net cost: each chunk is only as large as the bits on the stack can pay for. The language model, with no
  latent, codes at -log p(x)."""
  model, params, spec = _sequence_model(kind)
  x = _sequences(1500, spec.max_length, spec.vocab_size)
  coder = bitsback.Coder(model, params, spec, bucket_bits=12, batch_size=100)
  words = coder.compress(bitsback.sequence_symbols(spec, x))
  assert np.array_equal(coder.decompress(words, len(x)), x)
  nats = 32 * (len(words) - len(bitsback.seed_words(coder.latent_dim, coder.bits))) * math.log(2) / len(x)
  keys = jax.random.split(jax.random.key(2), 10 * len(x))
  terms = jax.jit(model.apply)({'params': params}, jnp.tile(jnp.asarray(x), (10, 1)), keys)
  elbo = float(jnp.mean(terms['log_px_z'] - jnp.sum(terms['kl'], -1)))
  assert nats == pytest.approx(-elbo, rel=0.015), (nats, elbo)


def test_the_token_probabilities_are_the_likelihood():
  """Stepping the decoder one position at a time gives the probabilities whose logs the training loss sums."""
  model, params, spec = _sequence_model()
  x = jnp.asarray(_sequences(5, spec.max_length, spec.vocab_size, seed=3))
  z = jax.random.normal(jax.random.key(1), (5, model.latent_dim))
  carry = model.apply({'params': params}, z, method=model.decoder_start)
  token, total = jnp.full((5,), spec.bos_id), jnp.zeros(5)
  step = jax.jit(lambda c, t, i: model.apply({'params': params}, c, t, z, i, method=model.next_token_probs))
  for i in range(spec.max_length):
    carry, probs = step(carry, token, i)
    np.testing.assert_allclose(jnp.sum(probs, -1), 1.0, rtol=1e-5)
    total += jnp.where(x[:, i] != spec.pad_id, jnp.log(probs[jnp.arange(5), x[:, i]]), 0.0)
    token = x[:, i]
  logits = model.apply({'params': params}, seqvae.decoder_inputs(x), z, method=lambda m, a, b: m.decoder(a, b))
  np.testing.assert_allclose(total, seqvae.masked_log_prob(logits, x, spec.pad_id), rtol=1e-5)


@pytest.mark.parametrize('rows,expected', [
    ([[4, 5, 2, 0, 0, 0]] * 2 + [[4, 5, 0, 2, 0, 0]], 'sequence 2 is not tokens'),  # a pad before the EOS
    ([[4, 5, 6, 7, 8, 4]], 'sequence 0'),  # no EOS
    ([[4, 2, 5, 0, 0, 0]], 'sequence 0'),  # a token after the EOS
    ([[4, 9, 2, 0, 0, 0]], 'sequence 0'),  # outside the vocabulary
    ([[4, 2, 0, 0, 0]], 'shape'),
])
def test_sequences_out_of_the_spec_form_are_refused(rows, expected):
  spec = data.SequenceSpec(vocab_size=9, max_length=6)
  with pytest.raises(errors.DataError, match=expected):
    bitsback.sequence_symbols(spec, np.asarray(rows))
