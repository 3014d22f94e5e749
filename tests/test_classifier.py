"""The sample measures' classifiers: shipped weights, checked by hash, the same features everywhere; a cache for
the rest that never stops a run."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from vae_jax import data
from vae_jax import errors
from vae_jax.evaluation import classifier


def test_the_shipped_classifiers_match_their_hash_and_need_no_cache(tmp_path, monkeypatch):
  blocked = tmp_path / 'a_file'
  blocked.write_text('not a folder')
  monkeypatch.setenv('VAE_JAX_CACHE', str(blocked / 'cache'))  # unusable, and never touched
  for dataset in ('fashion_mnist', 'digits'):
    info = json.loads((classifier.SHIPPED_DIR / f'{dataset}-v{classifier.VERSION}.json').read_text())
    payload = (classifier.SHIPPED_DIR / f'{dataset}-v{classifier.VERSION}.msgpack').read_bytes()
    trained = classifier.load_or_train(dataset)
    assert trained.sha256 == info['sha256'] == hashlib.sha256(payload).hexdigest()
    assert trained.describe() == {'classifier': f'{dataset}-v{classifier.VERSION}', 'classifier_sha256': info['sha256'],
                                  'classifier_source': 'shipped with vae_jax',
                                  'classifier_test_accuracy': info['test_accuracy']}
  assert blocked.read_text() == 'not a folder'


def test_the_shipped_digits_classifier_scores_its_recorded_accuracy():
  trained = classifier.load_or_train('digits')
  test = data.load(classifier._data_config('digits')).test  # pylint: disable=protected-access
  assert np.mean(trained.predict(test.images) == test.labels) == pytest.approx(trained.test_accuracy, abs=1 / 300)
  assert trained.features(test.images[:7]).shape == (7, 128)


def test_a_damaged_shipped_classifier_is_refused_not_retrained(tmp_path, monkeypatch):
  shutil.copytree(classifier.SHIPPED_DIR, tmp_path / 'weights')
  weights = tmp_path / 'weights' / f'digits-v{classifier.VERSION}.msgpack'
  payload = bytearray(weights.read_bytes())
  payload[len(payload) // 2] ^= 1
  weights.write_bytes(bytes(payload))
  monkeypatch.setattr(classifier, 'SHIPPED_DIR', tmp_path / 'weights')
  with pytest.raises(errors.DamagedFileError, match='shipped digits classifier .* is damaged .*reinstall vae_jax'):
    classifier.load_or_train('digits')


def test_without_shipped_weights_it_trains_once_and_an_unusable_cache_does_not_stop_it(tmp_path, monkeypatch):
  monkeypatch.setattr(classifier, 'SHIPPED_DIR', tmp_path / 'none')
  monkeypatch.setattr(classifier, 'EPOCHS', 1)
  monkeypatch.setenv('VAE_JAX_CACHE', str(tmp_path / 'cache'))
  first = classifier.load_or_train('digits')
  assert first.source.startswith('trained on this machine, cached in')
  again = classifier.load_or_train('digits')  # from the cache: the same weights, not trained again
  assert again.sha256 == first.sha256 and again.source == first.source
  (tmp_path / 'blocked').write_text('')
  monkeypatch.setenv('VAE_JAX_CACHE', str(tmp_path / 'blocked'))  # a regular file where the cache should be
  alone = classifier.load_or_train('digits')
  assert alone.source == 'trained on this machine for this run' and alone.sha256 == first.sha256
