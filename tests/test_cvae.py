"""The conditional VAE: labels reach the encoder, the prior and the decoder; samples follow their
labels; the class prior's KL is exact; the run's eval.json, load_run and report serve it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vae_jax
from vae_jax import data
from vae_jax import models
from vae_jax.models import gaussian
from vae_jax.models import priors
from vae_jax.runtime import keys as keys_lib
from vae_jax.training import objectives
from vae_jax.training import train
from vae_jax.viz import report


def test_samples_follow_their_labels(make_config):
  # Ten classes, each one fixed random 8x8 binary pattern: a CVAE must learn to draw label y's pattern.
  config = make_config(**{'model.kind': 'cvae', 'model.prior': 'class_gaussian'})
  model = models.make(config, (8, 8, 1))
  rng = np.random.default_rng(0)
  patterns = (rng.random((10, 8, 8, 1)) < 0.5).astype(np.float32)
  labels = jnp.asarray(np.tile(np.arange(10), 10), jnp.int32)
  x = jnp.asarray(patterns[np.asarray(labels)])
  params = models.init_params(model, (8, 8, 1), jax.random.key(0))
  tx = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state, i):
    keys = keys_lib.per_example_keys(jax.random.key(i), jnp.arange(len(x)))
    grads = jax.grad(lambda p: objectives.elbo_objective(model, p, x, keys, 1.0, labels=labels)[0])(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  opt_state = tx.init(params)
  for i in range(400):
    params, opt_state = step(params, opt_state, i)
  wanted = jnp.asarray(np.repeat(np.arange(10), 5), jnp.int32)
  drawn = model.apply({'params': params}, jax.random.key(1), len(wanted), 1.0, wanted, method=model.sample)
  images = np.asarray(type(model.likelihood).mean(drawn))
  distance = np.abs(images[:, None] - patterns[None]).mean(axis=(2, 3, 4))  # (samples, classes)
  np.testing.assert_array_equal(np.argmin(distance, axis=1), np.asarray(wanted))
  # Without labels, the classes in turn.
  default = model.apply({'params': params}, jax.random.key(1), 10, 1.0, method=model.sample)
  np.testing.assert_array_equal(
      np.argmin(np.abs(np.asarray(type(model.likelihood).mean(default))[:, None] - patterns[None]).mean(
          axis=(2, 3, 4)), axis=1), np.arange(10))


def test_class_prior_kl_is_closed_form():
  prior = priors.ClassGaussian(num_classes=3, dim=4)
  rng = np.random.default_rng(1)
  p = {'params': {'means': jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                  'log_vars': jnp.asarray(rng.normal(size=(3, 4)) * 0.3, jnp.float32)}}
  cond = jax.nn.one_hot(jnp.array([0, 2]), 3)
  mean, log_var = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32), jnp.asarray(rng.normal(size=(2, 4)) * 0.3,
                                                                                  jnp.float32)
  kl = np.asarray(prior.apply(p, mean, log_var, cond, method=prior.kl_per_dim)).sum(-1)
  z = mean[None] + jnp.exp(0.5 * log_var)[None] * jax.random.normal(jax.random.key(0), (200_000, 2, 4))
  log_q = gaussian.log_prob(z, mean[None], log_var[None])
  log_p = jax.vmap(lambda zz: prior.apply(p, zz, None, cond, method=prior.log_prob))(z)
  np.testing.assert_allclose(np.mean(log_q - log_p, axis=0), kl, rtol=0.01, atol=0.01)


def test_a_prior_of_y_needs_a_conditional_kind(make_config):
  from vae_jax import config_lib  # pylint: disable=g-import-not-at-top
  from vae_jax import errors  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.ConfigError, match='needs a conditional kind'):
    config_lib.validate(make_config(**{'model.prior': 'class_gaussian'}))
  with pytest.raises(errors.ConfigError, match='pseudo-inputs that carry no label'):
    config_lib.validate(make_config(**{'model.kind': 'cvae', 'model.prior': 'vampprior'}))


@pytest.fixture(scope='module')
def cvae_run(tmp_path_factory):
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(**{'model.kind': 'cvae', 'eval.samples_per_class': 20, 'eval.measures': True})
  workdir = tmp_path_factory.mktemp('cvae')
  return workdir, config, train.train_and_evaluate(config, workdir)


def test_eval_json_of_a_conditional_run(cvae_run):
  _, _, results = cvae_run
  assert results['likelihood_of'] == 'log p(x|y)'
  assert results['conditional_samples'] == 200
  assert 0.0 <= results['conditional_sample_accuracy'] <= 1.0
  assert results['classifier_test_accuracy'] > 0.8  # digits' own classifier, trained for this session


def test_load_run_and_report_serve_a_conditional_run(cvae_run):
  workdir, config, results = cvae_run
  run = vae_jax.load_run(workdir)
  assert run.conditional
  test = data.load(config).test
  images = run.sample(jax.random.key(0), 4, labels=[3, 3, 7, 7])
  assert images.shape == (4, 8, 8, 1)
  with pytest.raises(ValueError, match=r'integers in \[0, 10\)'):
    run.sample(jax.random.key(0), 2, labels=[3, 10])
  with pytest.raises(ValueError, match='pass the labels y'):
    run.encode(test.images[:2])
  log_px = run.log_likelihood(test.images, jax.random.key(2), labels=test.labels)
  assert -np.mean(log_px) == pytest.approx(results['nll_nats'], abs=0.5)
  # Another label makes x less likely under p(x|y): the label is used.
  wrong = run.log_likelihood(test.images, jax.random.key(2), labels=(test.labels + 1) % 10)
  assert np.mean(wrong) < np.mean(log_px)
  md = report.write_report(workdir).read_text()
  assert 'samples_by_class.png' in md and 'log p(x|y)' in md and 'conditional_sample_accuracy' in md
