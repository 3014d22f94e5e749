"""The project's own image classifier: a small CNN per dataset, trained once and cached.

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

Cache: $VAE_JAX_CACHE/classifiers/ (default ~/.cache/vae_jax/classifiers/),
one `<dataset>-v<VERSION>.msgpack` of parameters and a `.json` beside it with
the test accuracy and how it was trained. Delete them to retrain; a damaged
file is retrained with a warning. Files are written to a temporary name and
renamed, so a crash never leaves a half-written classifier behind.
"""

import dataclasses
import functools
import json
import os
import pathlib
import time

from absl import logging
import flax.linen as nn
from flax import serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import config_lib
from vae_jax import convolution
from vae_jax import data

VERSION = 1  # bump when the network or its training changes, so old caches are not reused
EPOCHS = 10
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
SEED = 0


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
  """A trained classifier: its parameters and its accuracy on the dataset's test split."""
  model: Classifier
  params: dict
  test_accuracy: float
  info: dict

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
  root = os.environ.get('VAE_JAX_CACHE') or pathlib.Path.home() / '.cache' / 'vae_jax'
  return pathlib.Path(root) / 'classifiers'


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

  for e in range(epochs):
    params, opt_state, loss = epoch(params, opt_state, jax.random.fold_in(key, e))
    logging.info('classifier epoch %d/%d: training cross-entropy %.4f nats', e + 1, epochs, float(loss))
  return model, params


def _paths(dataset: str) -> tuple[pathlib.Path, pathlib.Path]:
  stem = cache_dir() / f'{dataset}-v{VERSION}'
  return stem.with_suffix('.msgpack'), stem.with_suffix('.json')


def _write_atomic(path: pathlib.Path, payload: bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  tmp.write_bytes(payload)
  tmp.replace(path)


def _read(dataset: str, model: Classifier, template) -> Trained | None:
  weights, meta = _paths(dataset)
  if not (weights.exists() and meta.exists()):
    return None
  try:
    info = json.loads(meta.read_text())
    params = serialization.from_bytes(template, weights.read_bytes())
    return Trained(model, params, float(info['test_accuracy']), info)
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


def load_or_train(dataset: str) -> Trained:
  """The dataset's classifier from the cache, training and caching it first if it is not there."""
  if dataset not in data.NUM_CLASSES:
    raise ValueError(f'dataset {dataset!r} has no labels to train a classifier on '
                     f'(labelled: {", ".join(data.NUM_CLASSES)})')
  splits = data.load(_data_config(dataset))
  model = Classifier(data.NUM_CLASSES[dataset])
  template = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.zeros((1, *splits.image_shape), jnp.float32))['params'])
  cached = _read(dataset, model, template)
  if cached is not None:
    return cached
  weights, meta = _paths(dataset)
  logging.info('training the %s classifier once (%d epochs on %d images); it is cached in %s', dataset, EPOCHS,
               len(splits.train.images), weights)
  start = time.perf_counter()
  model, params = train(splits.train.images, splits.train.labels, model.num_classes)
  predicted = Trained(model, params, float('nan'), {}).predict(splits.test.images)
  test_accuracy = float(np.mean(predicted == splits.test.labels))
  info = dict(dataset=dataset, version=VERSION, test_accuracy=test_accuracy, num_train=len(splits.train.images),
              num_test=len(splits.test.images), epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
              seed=SEED, train_seconds=round(time.perf_counter() - start, 1),
              trained_on='the training split, half of each batch binarized; accuracy on the grey test split')
  _write_atomic(weights, serialization.to_bytes(params))
  _write_atomic(meta, (json.dumps(info, indent=2) + '\n').encode())
  logging.info('%s classifier: test accuracy %.4f', dataset, test_accuracy)
  return Trained(model, params, test_accuracy, info)
