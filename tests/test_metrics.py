"""Metrics: the probe, kNN and the Fréchet distance against exact answers, what a trained run's eval.json
says with them, and a metric registered here reaching eval.json, metrics.jsonl, report.md and a sweep report."""

import csv
import json
import re

import numpy as np
import pytest

import vae_jax
from vae_jax import data
from vae_jax import errors
from vae_jax import models
from vae_jax.evaluation import classifier
from vae_jax.evaluation import metrics
from vae_jax.evaluation import results as results_lib
from vae_jax.evaluation.metrics import base as metrics_base
from vae_jax.evaluation.metrics import representation
from vae_jax.evaluation.metrics import samples
from vae_jax.experiments import report as experiment_report
from vae_jax.figures import Figure
from vae_jax.runs import evaluate as evaluate_lib
from vae_jax.training import train
from vae_jax.viz import report


def test_probe_and_knn_read_separable_classes():
  rng = np.random.default_rng(0)
  centres = rng.normal(0.0, 10.0, (3, 6))
  def draw(n):
    y = rng.integers(0, 3, n)
    return centres[y] + rng.normal(0.0, 1.0, (n, 6)), y
  (train_x, train_y), (test_x, test_y) = draw(300), draw(200)
  assert representation.probe_accuracy(train_x, train_y, test_x, test_y) >= 0.99
  assert representation.knn_accuracy(train_x, train_y, test_x, test_y) >= 0.99
  # labels that have nothing to do with the inputs: chance, not near 100%
  assert representation.knn_accuracy(train_x, rng.integers(0, 3, 300), test_x, rng.integers(0, 3, 200)) < 0.6


def test_frechet_distance_is_zero_on_itself_and_grows_with_noise():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
  assert abs(samples.frechet_distance(a, a)) < 1e-6
  distances = [samples.frechet_distance(a, a + s * rng.normal(size=a.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
  assert all(x < y for x, y in zip(distances, distances[1:])), distances
  # Gaussians with diagonal covariances: |mu_a - mu_b|^2 + sum (sqrt(va) - sqrt(vb))^2, exactly.
  mu_a, mu_b, va, vb = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0]), np.array([1.0, 4.0, 0.25]), \
      np.array([9.0, 1.0, 0.25])
  want = np.sum((mu_a - mu_b)**2) + np.sum((np.sqrt(va) - np.sqrt(vb))**2)
  got = samples.frechet_distance_of_moments(mu_a, np.diag(va), mu_b, np.diag(vb))
  assert got == pytest.approx(want, rel=1e-10)
  # and with correlations: the trace term is basis-free, so a common rotation changes nothing
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  rotated = samples.frechet_distance_of_moments(q @ mu_a, q @ np.diag(va) @ q.T, q @ mu_b, q @ np.diag(vb) @ q.T)
  assert rotated == pytest.approx(want, rel=1e-8)


def test_a_trained_run_reports_its_representations_and_samples(tiny_vae_run):
  workdir, results = tiny_vae_run
  saved = json.loads((workdir / 'eval.json').read_text())
  for key in ('probe_accuracy', 'knn_accuracy', 'sample_frechet_distance', 'train_frechet_distance',
              'reconstruction_frechet_distance', 'classifier_test_accuracy'):
    assert saved[key] == pytest.approx(results[key]), key
  # a 4-unit latent after 80 steps holds little (KL 1.3 nats), but more than chance (0.1 +- 0.02 on 300 images)
  assert 0.15 < results['probe_accuracy'] <= 1.0 and 0.15 < results['knn_accuracy'] <= 1.0
  # the floor (training images) is below the reconstructions, which are below the prior samples
  assert results['train_frechet_distance'] < results['reconstruction_frechet_distance'] \
      < results['sample_frechet_distance'], results
  assert 'vae_jax classifier' in results['frechet_features'] and results['frechet_samples'] == 300
  # which classifier made the features: the one shipped for digits, named with its hash
  assert saved['classifier'] == 'digits-v1' and saved['classifier_source'] == 'shipped with vae_jax'
  assert saved['classifier_sha256'] == json.loads(
      (classifier.SHIPPED_DIR / 'digits-v1.json').read_text())['sha256']


class MeanAbsLatent(metrics.Metric):
  """A metric defined here only: the mean |E_q[z]| over the test examples and latent dimensions."""
  name = 'mean_abs_latent'
  figures = (Figure('mean_abs_latent', 'mean absolute posterior mean over test examples and latent dimensions',
                    'latent units'),)
  needs = frozenset({'samples'})

  def compute(self, ctx):
    test = ctx.dataset.test
    z = metrics_base.encodings(ctx.model, ctx.params, test.decoded(), test.labels)
    return {'mean_abs_latent': float(np.mean(np.abs(z))), 'mean_abs_latent_of': 'encode(x) of the test split'}


@pytest.fixture
def toy_metric():
  metrics.register(MeanAbsLatent)
  yield MeanAbsLatent.figures[0]
  del metrics.METRICS[MeanAbsLatent.name]


def test_a_registered_metric_reaches_every_output(toy_metric, make_config, tmp_path):
  """Registered here and named in eval.metrics, with no edit anywhere else: eval.json, metrics.jsonl (as
  TensorBoard gets it), vae_jax.evaluate's file, report.md and a sweep report all carry it."""
  workdir = tmp_path / 'sweep' / 'toy'
  results = train.train_and_evaluate(make_config(num_epochs=1, **{'eval.measures': True,
                                                                   'eval.metrics': ('mean_abs_latent',)}), workdir)
  value = results['mean_abs_latent']
  run = vae_jax.load_run(workdir)
  test = data.load(run.config).test
  assert value == pytest.approx(float(np.mean(np.abs(np.asarray(run.encode(test.decoded())[0])))), rel=1e-5)
  assert json.loads((workdir / 'eval.json').read_text())['mean_abs_latent'] == value
  assert 'probe_accuracy' not in results  # eval.metrics chose this metric alone
  last = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()][-1]
  assert last['test/mean_abs_latent'] == pytest.approx(value)
  assert 'test/mean_abs_latent_of' not in last and 'test/num_importance_samples' not in last

  again = evaluate_lib.evaluate_run(workdir, 2, num_examples=50)
  assert again['mean_abs_latent'] == pytest.approx(value)  # the metric reads the whole split

  md = report.write_report(workdir).read_text()
  assert f'| {toy_metric.description} | {value:.2f} | latent units | `mean_abs_latent` |' in md

  experiment_report.write_report(tmp_path / 'sweep')
  table = (tmp_path / 'sweep' / 'results.md').read_text()
  assert '| mean_abs_latent |' in table.splitlines()[4] and f'| {value:.2f} |' in table
  assert f'- mean_abs_latent (`mean_abs_latent`): {toy_metric.description}; latent units' in table
  with open(tmp_path / 'sweep' / 'results.csv', encoding='utf-8') as f:
    [row] = list(csv.DictReader(f))
  assert float(row['mean_abs_latent']) == pytest.approx(value)


def test_metric_names_are_checked(make_config):
  metrics.check_config(make_config(**{'eval.metrics': ('representation,samples',)}))  # a shell's comma list
  for value, message in ((('probes',), "eval.metrics: 'probes' is not allowed; use any of representation, samples"),
                         (('samples', 'samples'), 'eval.metrics names samples twice'),
                         (('likelihood',), 'eval.metrics: likelihood is computed by every evaluation')):
    with pytest.raises(errors.ConfigError, match=re.escape(message)):
      metrics.check_config(make_config(**{'eval.metrics': value}))


def test_figures_name_what_tensorboard_and_the_validation_log_get():
  """The test scalars are today's (*_nats, *_accuracy, bits/dim, active units) and the Fréchet distances, never
  a setting; the validation figures are the ELBO's terms, active units and a VQ-VAE's codebook use."""
  figures = metrics.all_figures(models.MODELS['vqvae'])
  scalar = {f.key for f in figures if f.scalar}
  assert {'elbo_nats', 'nll_nats', 'nll_stderr_nats', 'bits_per_dim', 'active_units', 'probe_accuracy',
          'classifier_test_accuracy', 'sample_frechet_distance', 'nll_bound_nats'} <= scalar
  assert not scalar & {'num_importance_samples', 'num_examples', 'step', 'eval_seconds', 'frechet_samples',
                       'kl_per_group_nats', 'kl_per_dim_nats'}
  assert [f.key for f in figures if f.validation] == ['elbo_nats', 'recon_nats', 'kl_nats', 'active_units',
                                                       'codebook_perplexity', 'codes_used']
  assert not any(f.validation for f in metrics.all_figures(models.MODELS['vae']) if f.key.startswith('code'))
  results = {'elbo_nats': -80.0, 'kl_per_group_nats': [1.0, 2.0], 'active_units_per_group': [3, 4],
             'num_importance_samples': 10, 'codes_used': 7, 'likelihood_of': 'log p(x)'}
  assert results_lib.scalars(results, models.MODELS['vqvae'], validation=True) == {
      'elbo_nats': -80.0, 'codes_used': 7, 'kl_group_0_nats': 1.0, 'kl_group_1_nats': 2.0,
      'active_units_group_0': 3, 'active_units_group_1': 4}
