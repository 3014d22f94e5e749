"""The VQ-VAE and its PixelCNN prior: quantization, the straight-through gradient, EMA and dead codes,
the prior's causality and normalization, and the two-stage run (resume bit-exact across the stages)."""

import itertools
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_kinds import _saved_tree  # pylint: disable=g-bad-import-order

import vae_jax
from vae_jax import data
from vae_jax import models
from vae_jax.models import pixelcnn
from vae_jax.models import vqvae
from vae_jax.runs import writers
from vae_jax.training import train
from vae_jax.viz import report

VQ = {'model.kind': 'vqvae', 'model.encoder': 'conv', 'model.hidden_sizes': (8, 8), 'model.latent_dim': 4,
      'model.codebook_size': 8, 'model.code_prior_channels': 8, 'model.code_prior_layers': 1}


def _perturbed(params, scale: float, seed: int = 0):
  """params plus independent noise on every entry (the prior's output layer starts at zero)."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def _quantizer(ema=True, num_codes=5, dim=3, seed=0):
  q = vqvae.Quantizer(num_codes, dim, ema)
  params = q.init(jax.random.key(seed), jnp.zeros((1, dim)))
  return q, params


def test_quantization_picks_the_nearest_code():
  q, params = _quantizer()
  z = jax.random.normal(jax.random.key(1), (4, 6, 3))
  codes, z_q = q.apply(params, z)
  book = np.asarray(params['params']['codebook'])
  brute = np.argmin(((np.asarray(z)[..., None, :] - book) ** 2).sum(-1), axis=-1)
  np.testing.assert_array_equal(np.asarray(codes), brute)
  np.testing.assert_array_equal(np.asarray(z_q), book[brute])


def test_ema_moves_codes_toward_their_vectors_and_restarts_dead_ones():
  q, params = _quantizer(ema=True, num_codes=4, dim=2)
  book = np.asarray(params['params']['codebook'])
  # Vectors around codes 0 and 1 only; codes 2 and 3 get nothing.
  z = jnp.asarray(np.stack([book[0] + 0.05, book[1] - 0.04])[None], jnp.float32)  # (1, 2, 2)
  codes, _ = q.apply(params, z)
  np.testing.assert_array_equal(np.asarray(codes), [[0, 1]])
  new = q.apply(params, z, codes, jax.random.key(0), 0.9, 0.0, method=q.updated)
  before = np.abs(book[:2] - np.asarray(z[0])).sum(-1)
  after = np.abs(np.asarray(new['codebook'])[:2] - np.asarray(z[0])).sum(-1)
  assert np.all(after < before)
  np.testing.assert_allclose(np.asarray(new['codebook'])[2:], book[2:], rtol=1e-6)  # unused: unchanged
  np.testing.assert_allclose(np.asarray(new['count']), [0.9 + 0.1, 0.9 + 0.1, 0.9, 0.9], rtol=1e-6)
  # With a threshold above their counts, the unused codes restart at encoder outputs.
  restarted = q.apply(params, z, codes, jax.random.key(0), 0.9, 0.95, method=q.updated)
  for k in (2, 3):
    assert any(np.allclose(restarted['codebook'][k], v) for v in np.asarray(z[0])), k
  np.testing.assert_allclose(np.asarray(restarted['count'])[2:], 1.0)


def test_straight_through_gradient_reaches_the_encoder(make_config):
  config = make_config(**VQ)
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = (jax.random.uniform(jax.random.key(1), (4, 8, 8, 1)) > 0.5).astype(jnp.float32)
  keys = jax.random.split(jax.random.key(2), 4)
  grad = jax.jit(lambda term, p: jax.grad(lambda q: jnp.mean(model.apply({'params': q}, x, keys)[term]))(p),
                 static_argnums=0)
  grads = grad('log_px_z', params)
  assert float(jnp.sum(jnp.abs(grads['encoder']['out']['kernel']))) > 0
  # With an EMA codebook the codebook gets no gradient; the commitment term pulls only the encoder.
  aux = grad('aux_loss', params)
  assert float(jnp.sum(jnp.abs(aux['quantizer']['codebook']))) == 0.0
  assert float(jnp.sum(jnp.abs(aux['encoder']['out']['kernel']))) > 0


def test_masked_convolutions_are_causal():
  # lax's convolution: the CPU's matmul form has a custom VJP, which forward-mode autodiff cannot enter.
  prior = pixelcnn.PixelCNN(num_codes=3, channels=4, num_layers=2, conv_impl='lax')
  codes = jnp.zeros((1, 4, 4), jnp.int32)
  params = prior.init(jax.random.key(0), codes)
  # Give the zero-initialized output layer weights, so the logits depend on the inputs.
  params = _perturbed(params, 0.3)
  h = prior.apply(params, codes, method=prior.embed)
  jac = jax.jacfwd(lambda e: prior.apply(params, e, method=prior.logits_from_embedding))(h)
  dependence = np.abs(np.asarray(jac)).reshape(16, 3, 16, 4).sum(axis=(1, 3))  # (output pos, input pos)
  for i in range(16):
    assert np.all(dependence[i, i:] == 0), i  # never on its own code or later ones
    if i % 4:
      assert dependence[i, i - 1] > 0, i  # ... but on the one to its left
    if i >= 4:
      assert dependence[i, i - 4] > 0, i  # ... and the one above


def test_prior_probabilities_sum_to_one():
  k = 3
  prior = pixelcnn.PixelCNN(num_codes=k, channels=4, num_layers=2)
  params = _perturbed(prior.init(jax.random.key(0), jnp.zeros((1, 2, 2), jnp.int32)), 0.5)
  grids = jnp.asarray(list(itertools.product(range(k), repeat=4)), jnp.int32).reshape(-1, 2, 2)
  log_p = np.asarray(prior.apply(params, grids, method=prior.log_prob), np.float64)
  assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-5)
  assert np.ptp(log_p) > 0.1  # not uniform: the sum tests the factorization
  untrained = prior.init(jax.random.key(0), grids)
  np.testing.assert_allclose(prior.apply(untrained, grids, method=prior.log_prob), -4 * np.log(k), rtol=1e-6)


@pytest.fixture(scope='module')
def vq_run(tmp_path_factory):
  """Two stages of 20 steps each, a checkpoint every 10 (so one at the boundary, step 20)."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(num_epochs=1, checkpoint_every_steps=10, **VQ, **{'model.code_prior_epochs': 1.0})
  workdir = tmp_path_factory.mktemp('vqvae')
  return workdir, config, train.train_and_evaluate(config, workdir)


def test_stage_two_trains_only_the_prior(vq_run):
  workdir, _, results = vq_run
  first, last = _saved_tree(workdir, 20), _saved_tree(workdir, 40)
  for name in ('encoder', 'decoder', 'quantizer'):
    jax.tree.map(np.testing.assert_array_equal, first['params'][name], last['params'][name])
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: np.any(a != b), first['params']['prior'],
                                         last['params']['prior']))
  assert any(changed)
  # The prior improves on log K per code, and both bounds are reported.
  assert results['nll_bound_nats'] < results['nll_bound_uniform_prior_nats']
  assert results['nll_nats'] == pytest.approx(results['nll_bound_nats'], rel=1e-6)
  assert results['num_importance_samples'] == 1
  assert 1.0 <= results['codebook_perplexity'] <= 8 and 1 <= results['codes_used'] <= 8
  logged = [r for r in writers.read_metrics(workdir) if 'train/codebook_perplexity' in r]
  assert logged and all(1.0 <= r['train/codebook_perplexity'] <= 8 for r in logged)


@pytest.mark.parametrize('keep', [20, 30])  # at the boundary, inside stage 2 (test_kinds: inside a stage)
def test_resume_is_bit_exact_across_the_stages(vq_run, tmp_path, keep):
  workdir, config, results = vq_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  for p in (copy / 'checkpoints').iterdir():
    if p.name.isdigit() and int(p.name) > keep:
      shutil.rmtree(p)
  (copy / 'eval.json').unlink()
  resumed = train.train_and_evaluate(config, copy)
  jax.tree.map(np.testing.assert_array_equal, _saved_tree(workdir, 40), _saved_tree(copy, 40))
  assert resumed['nll_bound_nats'] == results['nll_bound_nats']


def test_load_run_samples_and_reports_a_vqvae(vq_run):
  workdir, config, _ = vq_run
  run = vae_jax.load_run(workdir)
  images = run.sample(jax.random.key(0), 3)
  assert images.shape == (3, 8, 8, 1) and np.all((0 <= images) & (images <= 1))
  cold = run.sample(jax.random.key(1), 3, temperature=0.0)
  np.testing.assert_array_equal(cold[0], cold[1])  # the most likely code everywhere: one image
  x = data.load(config).test.images[:4]
  code, none = run.encode(x)
  assert none is None and code.shape == (4, run.model.latent_dim)
  assert run.reconstruct(x, jax.random.key(2)).shape == x.shape
  md = report.write_report(workdir).read_text()
  assert 'codebook' in md.lower() and 'prior_samples.png' in md
