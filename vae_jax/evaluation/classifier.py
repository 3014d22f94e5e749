"""The project's own image classifier: a small CNN per dataset, shipped with the package or trained once.

What it is for: checking generated images by what they depict. A
conditional model's class-conditional samples are labelled by it (the share
given their intended class is `conditional_sample_accuracy`), and its
penultimate features are the feature space of sample-quality measures, the
way Inception features are for ImageNet-like data (they do not fit MNIST-like
images).

It is trained on the dataset's whole training split (the run's validation
images included, the test split never) with half of each batch binarized, so
it reads binary images and grey ones (a Bernoulli decoder's pixel
probabilities) alike; its accuracy on the test split (grey) is kept with it.

A Fréchet distance is comparable between two runs only in the same features,
so the weights of the datasets that can be had offline are fixed artifacts
shipped in vae_jax/evaluation/classifier_weights/ (`<dataset>-v<VERSION>.msgpack` and a
`.json` with its SHA-256, test accuracy and how it was trained), made once by

  python -m vae_jax.evaluation.classifier --dataset=fashion_mnist --ship

and checked against their hash whenever they are read: every machine computes
the same features. Other datasets (mnist, cifar10: they need a download) are
trained on first use and cached in $VAE_JAX_CACHE/classifiers/ (default
~/.cache/vae_jax/classifiers/); delete those files to retrain. eval.json names
the classifier a figure used (`classifier`, `classifier_sha256`,
`classifier_source`). Files are written to a temporary name and renamed, so a
crash never leaves a half-written classifier behind.
"""

import dataclasses
import functools
import hashlib
import json
import pathlib
import time

from absl import flags
from absl import logging
from flax import serialization
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import progress
from vae_jax.models import convolution
from vae_jax.runtime import cache
from vae_jax.runtime import files

VERSION = 1  # bump when the network or its training changes, so old caches are not reused
EPOCHS = 10
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
SEED = 0
SHIPPED_DIR = pathlib.Path(__file__).parent / 'classifier_weights'


class Classifier(nn.Module):
  """Three 3x3 convolutions (the last two stride 2), a dense layer of `features`, then the logits."""
  num_classes: int
  features: int = 128

  @nn.compact
  def __call__(self, x: jax.Array, return_features: bool = False) -> jax.Array:
    h = x
    for i, (channels, stride) in enumerate(((32, 1), (64, 2), (64, 2))):
      h = nn.relu(convolution.Conv(channels, (3, 3), strides=stride, name=f'conv_{i}')(h))
    h = nn.relu(nn.Dense(self.features, name='hidden')(h.reshape(h.shape[0], -1)))
    return h if return_features else nn.Dense(self.num_classes, name='logits')(h)


@dataclasses.dataclass(frozen=True)
class Trained:
  """A trained classifier: its parameters, its accuracy on the dataset's test split, and which it is
  (`name`, the SHA-256 of its weights file, and where it came from), for eval.json."""
  model: Classifier
  params: dict
  test_accuracy: float
  info: dict
  name: str = ''
  sha256: str = ''
  source: str = ''

  def describe(self) -> dict:
    """eval.json's keys naming the classifier a figure used."""
    return {'classifier': self.name, 'classifier_sha256': self.sha256, 'classifier_source': self.source,
            'classifier_test_accuracy': self.test_accuracy}

  @functools.cached_property
  def _apply(self):
    return jax.jit(self.model.apply, static_argnames='return_features')

  def _batched(self, images: np.ndarray, return_features: bool, batch_size: int = 1000) -> np.ndarray:
    images = np.asarray(images, np.float32)
    return np.concatenate([np.asarray(self._apply({'params': self.params}, images[i:i + batch_size],
                                                  return_features=return_features))
                           for i in range(0, len(images), batch_size)])

  def predict(self, images) -> np.ndarray:
    """The most likely class of each image (N, H, W, C) in [0, 1]."""
    return np.argmax(self._batched(images, False), axis=-1)

  def features(self, images) -> np.ndarray:
    """The penultimate layer's activations (N, features): the feature space of sample-quality measures."""
    return self._batched(images, True)


def cache_dir() -> pathlib.Path:
  """$VAE_JAX_CACHE/classifiers, by default ~/.cache/vae_jax/classifiers."""
  return cache.root() / 'classifiers'


def train(images: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int = EPOCHS, seed: int = SEED):
  """A Classifier and its parameters, trained with Adam (cosine-decayed) on `images` (N, H, W, C) in [0, 1].

  Every epoch reshuffles; in each batch a random half of the images is
  binarized (pixel ~ Bernoulli(intensity)), the other half stays grey.
  """
  model = Classifier(num_classes)
  key = jax.random.key(seed)
  init_key, key = jax.random.split(key)
  params = model.init(init_key, jnp.zeros((1, *images.shape[1:]), jnp.float32))['params']
  images, labels = jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32)
  batch = min(BATCH_SIZE, len(images))
  steps = len(images) // batch
  tx = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, epochs * steps))
  opt_state = tx.init(params)

  @jax.jit
  def epoch(params, opt_state, epoch_key):
    order = jax.random.permutation(jax.random.fold_in(epoch_key, 0), len(images))[:steps * batch]

    def step(carry, i):
      params, opt_state = carry
      rows = jax.lax.dynamic_slice_in_dim(order, i * batch, batch)
      x, y = images[rows], labels[rows]
      k_pick, k_bits = jax.random.split(jax.random.fold_in(epoch_key, i + 1))
      binary = jax.random.bernoulli(k_bits, x).astype(jnp.float32)
      x = jnp.where(jax.random.bernoulli(k_pick, 0.5, (batch, 1, 1, 1)), binary, x)

      def loss_fn(p):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({'params': p}, x), y).mean()

      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jnp.arange(steps))
    return params, opt_state, jnp.mean(losses)

  shown = progress.Progress('training the classifier', epochs, 'epochs', every_seconds=0)
  for e in range(epochs):
    params, opt_state, loss = epoch(params, opt_state, jax.random.fold_in(key, e))
    logging.info('classifier epoch %d/%d: training cross-entropy %.4f nats', e + 1, epochs, float(loss))
    shown.update(e + 1)
  return model, params


def _stem(dataset: str) -> str:
  return f'{dataset}-v{VERSION}'


def _paths(folder: pathlib.Path, dataset: str) -> tuple[pathlib.Path, pathlib.Path]:
  stem = folder / _stem(dataset)
  return stem.with_suffix('.msgpack'), stem.with_suffix('.json')


def _write_atomic(path: pathlib.Path, payload: bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with files.replacing(path) as tmp:
    tmp.write_bytes(payload)


def _template(model: Classifier, image_shape) -> dict:
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *image_shape), jnp.float32))['params'])


def _read_shipped(dataset: str) -> Trained | None:
  """The weights shipped with the package, checked against their hash; None if there are none."""
  weights, meta = _paths(SHIPPED_DIR, dataset)
  if not weights.exists():
    return None
  fix = 'reinstall vae_jax, or restore the file (git checkout vae_jax/evaluation/classifier_weights)'
  try:
    info = json.loads(meta.read_text())
    payload = weights.read_bytes()
    if hashlib.sha256(payload).hexdigest() != info['sha256']:
      raise ValueError(f'its SHA-256 is not the {info["sha256"]} recorded in {meta.name}')
    model = Classifier(int(info['num_classes']))
    params = serialization.from_bytes(_template(model, info['image_shape']), payload)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.DamagedFileError(f'the shipped {dataset} classifier {weights} is damaged ({e}); {fix}') from None
  return Trained(model, params, float(info['test_accuracy']), info, _stem(dataset), info['sha256'],
                 'shipped with vae_jax')


def _read_cached(folder: pathlib.Path, dataset: str, model: Classifier, template) -> Trained | None:
  weights, meta = _paths(folder, dataset)
  if not (weights.exists() and meta.exists()):
    return None
  try:
    info = json.loads(meta.read_text())
    payload = weights.read_bytes()
    params = serialization.from_bytes(template, payload)
    return Trained(model, params, float(info['test_accuracy']), info, _stem(dataset),
                   hashlib.sha256(payload).hexdigest(), f'trained on this machine, cached in {folder}')
  except (OSError, ValueError, KeyError, TypeError) as e:
    logging.warning('the cached classifier %s is unreadable (%s: %s); training it again', weights,
                    type(e).__name__, e)
    return None


def _data_config(dataset: str):
  """The dataset at full resolution and grey, with no held-out validation split."""
  config = config_lib.base_config()
  config.data.name = dataset
  config.data.binarize = 'none'
  config.data.num_validation = 0
  return config


def train_and_save(dataset: str, folder: pathlib.Path | None, source: str, splits=None) -> Trained:
  """Trains the dataset's classifier afresh, scores it on the test split, and writes it to `folder` (None:
  nowhere) with its hash, accuracy and training settings. `splits`: the dataset, if already loaded."""
  splits = splits or data.load(_data_config(dataset))
  logging.info('training the %s classifier (%d epochs on %d images)%s', dataset, EPOCHS, len(splits.train.images),
               f'; it is kept in {folder}' if folder is not None else '')
  start = time.perf_counter()
  model, params = train(splits.train.images, splits.train.labels, data.NUM_CLASSES[dataset], EPOCHS)
  predicted = Trained(model, params, float('nan'), {}).predict(splits.test.images)
  test_accuracy = float(np.mean(predicted == splits.test.labels))
  payload = serialization.to_bytes(params)
  digest = hashlib.sha256(payload).hexdigest()
  info = dict(dataset=dataset, version=VERSION, sha256=digest, test_accuracy=test_accuracy,
              num_classes=model.num_classes, image_shape=list(splits.image_shape),
              num_train=len(splits.train.images), num_test=len(splits.test.images), epochs=EPOCHS,
              batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=SEED,
              train_seconds=round(time.perf_counter() - start, 1), jax_version=jax.__version__,
              trained_on='the training split, half of each batch binarized; accuracy on the grey test split')
  if folder is not None:
    weights, meta = _paths(folder, dataset)
    _write_atomic(weights, payload)
    _write_atomic(meta, (json.dumps(info, indent=2) + '\n').encode())
  logging.info('%s classifier: test accuracy %.4f, SHA-256 %s', dataset, test_accuracy, digest)
  return Trained(model, params, test_accuracy, info, _stem(dataset), digest, source)


def load_or_train(dataset: str) -> Trained:
  """The dataset's classifier: the shipped one, else the cached one, else trained now (and cached when the
  cache can be written)."""
  if dataset not in data.NUM_CLASSES:
    raise ValueError(f'dataset {dataset!r} has no labels to train a classifier on '
                     f'(labelled: {", ".join(data.NUM_CLASSES)})')
  shipped = _read_shipped(dataset)
  if shipped is not None:
    return shipped
  folder, splits = cache.directory('classifiers'), None
  if folder is not None:
    splits = data.load(_data_config(dataset))
    model = Classifier(data.NUM_CLASSES[dataset])
    cached = _read_cached(folder, dataset, model, _template(model, splits.image_shape))
    if cached is not None:
      return cached
  source = f'trained on this machine, cached in {folder}' if folder else 'trained on this machine for this run'
  logging.info('no classifier is shipped for %s: training one once, as sample measures need it', dataset)
  return train_and_save(dataset, folder, source, splits)


def _command():
  f = flags.FLAGS
  folder = SHIPPED_DIR if f.ship else cache.directory('classifiers')
  if folder is None:
    raise errors.ConfigError(f'the cache {cache_dir()} cannot be written; set VAE_JAX_CACHE to a writable folder')
  trained = train_and_save(f.dataset, folder, 'shipped with vae_jax' if f.ship else 'trained on this machine')
  print(json.dumps(trained.info, indent=2))


if __name__ == '__main__':
  from vae_jax import cli  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum('dataset', None, list(data.NUM_CLASSES), 'The dataset whose classifier to train.')
  flags.DEFINE_bool('ship', False, 'Write the weights into vae_jax/evaluation/classifier_weights/ (to commit), not the cache.')
  flags.mark_flags_as_required(['dataset'])
  cli.run(_command)
