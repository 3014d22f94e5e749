"""Representation and sample measures: the probe, kNN and the Fréchet distance against exact answers,
and what a trained run's eval.json says with them."""

import json

import numpy as np
import pytest

from vae_jax.evaluation import classifier
from vae_jax.evaluation import measures


def test_probe_and_knn_read_separable_classes():
  rng = np.random.default_rng(0)
  centres = rng.normal(0.0, 10.0, (3, 6))
  def draw(n):
    y = rng.integers(0, 3, n)
    return centres[y] + rng.normal(0.0, 1.0, (n, 6)), y
  (train_x, train_y), (test_x, test_y) = draw(300), draw(200)
  assert measures.probe_accuracy(train_x, train_y, test_x, test_y) >= 0.99
  assert measures.knn_accuracy(train_x, train_y, test_x, test_y) >= 0.99
  # labels that have nothing to do with the inputs: chance, not near 100%
  assert measures.knn_accuracy(train_x, rng.integers(0, 3, 300), test_x, rng.integers(0, 3, 200)) < 0.6


def test_frechet_distance_is_zero_on_itself_and_grows_with_noise():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
  assert abs(measures.frechet_distance(a, a)) < 1e-6
  distances = [measures.frechet_distance(a, a + s * rng.normal(size=a.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
  assert all(x < y for x, y in zip(distances, distances[1:])), distances
  # Gaussians with diagonal covariances: |mu_a - mu_b|^2 + sum (sqrt(va) - sqrt(vb))^2, exactly.
  mu_a, mu_b, va, vb = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0]), np.array([1.0, 4.0, 0.25]), \
      np.array([9.0, 1.0, 0.25])
  want = np.sum((mu_a - mu_b)**2) + np.sum((np.sqrt(va) - np.sqrt(vb))**2)
  got = measures.frechet_distance_of_moments(mu_a, np.diag(va), mu_b, np.diag(vb))
  assert got == pytest.approx(want, rel=1e-10)
  # and with correlations: the trace term is basis-free, so a common rotation changes nothing
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  rotated = measures.frechet_distance_of_moments(q @ mu_a, q @ np.diag(va) @ q.T, q @ mu_b, q @ np.diag(vb) @ q.T)
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
