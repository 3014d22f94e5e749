"""The KL, the reparameterization gradient and the importance-sampled estimator, each against an exact
answer; and the objective door: a kind with its own objective and two optimizers, defined and registered in
this file alone, through training, `evaluate`, `load_run`, the report and a sweep report."""

import json
import math
import shutil

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import vae_jax
from vae_jax import data
from vae_jax import models
from vae_jax.evaluation import estimators
from vae_jax.experiments import report as sweep_report
from vae_jax.models import gaussian
from vae_jax.models import vae
from vae_jax.runs import evaluate as evaluate_lib
from vae_jax.runtime import keys as keys_lib
from vae_jax.training import objectives
from vae_jax.training import setup as setup_lib
from vae_jax.training import train
from vae_jax.viz import report


def test_kl_closed_form_matches_monte_carlo():
  mean = jnp.array([[0.5, -1.0, 2.0]])
  log_var = jnp.array([[0.3, -1.2, 0.7]])
  z = gaussian.reparameterize(jax.random.key(0), jnp.broadcast_to(mean, (400_000, 3)),
                                jnp.broadcast_to(log_var, (400_000, 3)))
  log_q = gaussian.log_prob(z, mean, log_var)
  log_p = gaussian.log_prob(z, jnp.zeros(3), jnp.zeros(3))
  monte_carlo = float(jnp.mean(log_q - log_p))
  closed = float(gaussian.kl_standard_normal(mean, log_var)[0])
  assert abs(monte_carlo - closed) < 0.02, (monte_carlo, closed)
  assert float(gaussian.kl_standard_normal(jnp.zeros((1, 5)), jnp.zeros((1, 5)))[0]) == 0.0


def test_diag_normal_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  z, mean, log_var = rng.normal(size=(3, 4, 5))
  expected = stats.multivariate_normal(mean[0], np.diag(np.exp(log_var[0]))).logpdf(z[0])
  got = gaussian.log_prob(jnp.asarray(z[:1]), jnp.asarray(mean[:1]), jnp.asarray(log_var[:1]))
  np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_reparameterization_gradient_is_unbiased():
  # E_q[z^2] = mean^2 + exp(log_var): d/dmean = 2 mean, d/dlog_var = exp(log_var).
  mean, log_var = 0.7, -0.4

  def expectation(m, lv):
    z = gaussian.reparameterize(jax.random.key(3), jnp.full((200_000, 1), m), jnp.full((200_000, 1), lv))
    return jnp.mean(z**2)

  d_mean, d_log_var = jax.grad(expectation, argnums=(0, 1))(mean, log_var)
  assert abs(float(d_mean) - 2 * mean) < 0.02
  assert abs(float(d_log_var) - math.exp(log_var)) < 0.02


def _z_independent_model(config):
  """A VAE whose q(z|x) is the prior and whose p(x|z) ignores z: log p(x) is known exactly."""
  model = models.make(config, (4, 4, 1))
  params = models.init_params(model, (4, 4, 1), jax.random.key(0))
  params = jax.tree.map(jnp.zeros_like, params)
  bias = jax.random.normal(jax.random.key(1), params['decoder']['out']['bias'].shape)
  params['decoder']['out']['bias'] = bias
  return model, params, bias


def test_importance_sampling_is_exact_when_every_weight_is_equal(make_config):
  config = make_config(**{'model.hidden_sizes': (8,), 'model.latent_dim': 3})
  model, params, bias = _z_independent_model(config)
  x = (jax.random.uniform(jax.random.key(2), (5, 4, 4, 1)) < 0.5).astype(jnp.float32)
  p = 1 / (1 + np.exp(-np.asarray(bias, np.float64)))
  exact = stats.bernoulli.logpmf(np.asarray(x).reshape(5, -1), p).sum(-1)
  # 10 samples in chunks of 4: the last chunk overhangs and must be masked out.
  keys = jax.random.split(jax.random.key(3), 5)
  terms = estimators.importance_sampled_terms(model, params, x, keys, num_samples=10, chunk=4)
  np.testing.assert_allclose(terms['log_px'], exact, rtol=1e-5)
  np.testing.assert_allclose(terms['elbo'], exact, rtol=1e-5)
  np.testing.assert_allclose(terms['kl'], 0.0, atol=1e-6)


def test_importance_sampling_bounds(make_config):
  config = make_config()
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = (jax.random.uniform(jax.random.key(1), (50, 8, 8, 1)) < 0.3).astype(jnp.float32)
  keys = jax.random.split(jax.random.key(2), 50)
  one = estimators.importance_sampled_terms(model, params, x, keys, num_samples=1)
  many = estimators.importance_sampled_terms(model, params, x, keys, num_samples=64, chunk=16)
  assert float(jnp.mean(many['log_px'])) > float(jnp.mean(many['elbo']))
  assert float(jnp.mean(many['log_px'])) > float(jnp.mean(one['log_px']))
  chex.assert_tree_all_finite(many)
  # Sample s of example j depends on (keys[j], s) only, not on how the samples are chunked.
  other_chunking = estimators.importance_sampled_terms(model, params, x, keys, num_samples=64, chunk=5)
  np.testing.assert_allclose(other_chunking['log_px'], many['log_px'], rtol=1e-5)


def test_vae_objective_terms(make_config):
  config = make_config()
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = jnp.ones((4, 8, 8, 1))
  loss, m = objectives.elbo_objective(model, params, x, jax.random.split(jax.random.key(1), 4), kl_weight=2.0)
  np.testing.assert_allclose(m['elbo_nats'], m['recon_nats'] - m['kl_nats'], rtol=1e-6)
  np.testing.assert_allclose(loss, -(m['recon_nats'] - 2.0 * m['kl_nats']), rtol=1e-6)


def test_free_bits_charge_a_group_at_least_its_allowance(make_config):
  config = make_config(**{'model.kind': 'hvae', 'model.hidden_sizes': (16,), 'model.latent_dim': 3})
  model = models.make(config, (8, 8, 1))
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  x = (jax.random.uniform(jax.random.key(1), (6, 8, 8, 1)) < 0.3).astype(jnp.float32)
  keys = jax.random.split(jax.random.key(2), 6)
  _, plain = objectives.elbo_objective(model, params, x, keys, 1.0)
  kl_groups = [float(plain[f'kl_group_{g}_nats']) for g in range(2)]
  allowance = max(kl_groups) + 1.0  # above both groups' KL: each is charged the allowance
  loss, m = objectives.elbo_objective(model, params, x, keys, 1.0, free_bits=allowance)
  np.testing.assert_allclose(loss, -m['recon_nats'] + 2 * allowance, rtol=1e-6)
  np.testing.assert_allclose(m['elbo_nats'], plain['elbo_nats'], rtol=1e-6)  # the reported ELBO is unchanged
  # Below the allowance the gradient no longer pushes the KL: the encoder's output gets no KL gradient.
  grads = jax.grad(lambda p: objectives.elbo_objective(model, p, x, keys, 1.0, free_bits=allowance)[0])(params)
  grads_recon = jax.grad(lambda p: -jnp.mean(model.apply({'params': p}, x, keys)['log_px_z']))(params)
  chex.assert_trees_all_close(grads, grads_recon, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the door: a kind with its own objective


class AdversarialVAE(vae.VAE):
  """A VAE whose aggregate posterior a critic compares with the prior (an adversarial regularizer)."""
  objective = 'toy_adversarial'
  options = {'critic_weight': 0.1}  # its own config field, model.critic_weight

  @nn.compact
  def criticize(self, z):
    return nn.Dense(1, name='critic_out')(nn.relu(nn.Dense(8, name='critic_hidden')(z)))[:, 0]

  def __call__(self, x, keys, labels=None):
    self.criticize(jnp.zeros((1, self.latent_dim)))  # the critic's parameters exist from init on
    return super().__call__(x, keys, labels)


CRITIC_LR = 0.1


class Adversarial(objectives.Objective):
  """ELBO + a term fooling the critic (the encoder's), + the critic's logistic loss (the critic's): one loss,
  each part reaching only its own parameters; Adam for the VAE, plain SGD for the critic."""

  def groups(self, total_steps, steps_per_epoch):
    schedule = optax.constant_schedule(self.config.learning_rate)
    return {'model': (optax.adam(schedule), schedule), 'critic': (optax.sgd(CRITIC_LR), schedule)}

  def group_of(self, path):
    return 'critic' if path[0].startswith('critic') else 'model'

  def loss(self, model, params, batch, keys, kl_weight):
    elbo, m = objectives.elbo_objective(model, params, batch['x'], keys, kl_weight, labels=batch.get('label'))
    mean, _ = model.apply({'params': params}, batch['x'], method=model.encode)
    prior = jax.random.normal(keys[0], mean.shape)
    critic = lambda p, z: model.apply({'params': p}, z, method=model.criticize)
    fool = jnp.mean(jax.nn.softplus(critic(jax.lax.stop_gradient(params), mean)))
    critic_loss = jnp.mean(jax.nn.softplus(-critic(params, jax.lax.stop_gradient(mean)))
                           + jax.nn.softplus(critic(params, prior)))
    return elbo + self.config.model.critic_weight * fool + critic_loss, dict(m, critic_loss=critic_loss)


@pytest.fixture
def adversarial(monkeypatch):
  monkeypatch.setitem(models.MODELS, 'adversarial_vae', AdversarialVAE)
  monkeypatch.setitem(objectives.OBJECTIVES, 'toy_adversarial', Adversarial)


def test_a_kind_brings_its_objective_and_two_optimizers(adversarial, make_config, tmp_path):
  config = make_config(**{'model.kind': 'adversarial_vae', 'data.binarize': 'static', 'num_epochs': 2,
                          'model.critic_weight': 0.5})
  setup = setup_lib.make_setup(config, data.load(config))
  state = setup.initial_state()
  assert set(state.opt_state.inner_states) == {'model', 'critic'}

  # One step: the critic moves by exactly -lr * its gradient (SGD), the VAE by Adam's first step (about lr).
  n = config.batch_size
  batch = {'x': jnp.asarray(setup.dataset.train.decoded()[:n]), 'label': jnp.asarray(setup.dataset.train.labels[:n])}
  keys = keys_lib.per_example_keys(jax.random.fold_in(setup.train_key, 0), jnp.arange(n))
  _, sample_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
  grads = jax.grad(lambda p: setup.objective.loss(setup.model, p, batch, sample_keys, 1.0)[0])(state.params)
  after, step_metrics = jax.jit(setup.train_step)(state, batch, setup.train_key)
  assert int(step_metrics['skipped']) == 0 and float(step_metrics['critic_loss']) > 0
  for name in ('critic_hidden', 'critic_out'):
    np.testing.assert_allclose(after.params[name]['kernel'],
                               state.params[name]['kernel'] - CRITIC_LR * grads[name]['kernel'], rtol=1e-5, atol=1e-7)
  moved = np.abs(np.asarray(after.params['decoder']['out']['kernel'] - state.params['decoder']['out']['kernel']))
  assert moved.max() == pytest.approx(config.learning_rate, rel=1e-3)

  workdir = tmp_path / 'sweep' / 'a'
  results = train.train_and_evaluate(config, workdir)
  logged = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert any('train/critic_loss' in line for line in logged)
  assert results['nll_nats'] > 0 and results['elbo_nats'] < 0
  evaluated = evaluate_lib.evaluate_run(workdir, num_importance_samples=3)
  assert evaluated['nll_nats'] == pytest.approx(results['nll_nats'], rel=0.05)
  run = vae_jax.load_run(workdir)
  assert set(run.params) >= {'critic_hidden', 'critic_out', 'encoder', 'decoder'}
  assert run.config.model.critic_weight == 0.5  # the kind's own field, stored and read back
  x = data.load(run.config).test.examples[:4]
  assert np.isfinite(np.asarray(run.log_likelihood(x, jax.random.key(0), num_samples=2))).all()
  assert '`nll_nats`' in report.write_report(workdir).read_text()
  shutil.copytree(workdir, tmp_path / 'sweep' / 'b')  # a second point, differing in one field as a sweep's do
  config_file = tmp_path / 'sweep' / 'b' / 'config.json'
  config_file.write_text(json.dumps(dict(json.loads(config_file.read_text()), seed=1)))
  sweep_report.write_report(tmp_path / 'sweep')
  table = (tmp_path / 'sweep' / sweep_report.RESULTS_MD).read_text()
  assert f'{evaluated["nll_nats"]:.2f}' in table and '2 of 2 points finished' in table  # evaluate rewrote eval.json
