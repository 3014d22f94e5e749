"""The dataset's classifier's view of a model's samples (labelled image datasets).

In the feature space of the project's own classifier for the dataset
(`vae_jax.evaluation.classifier`: its penultimate layer of 128 ReLU units),
not Inception's, so not comparable with any published FID. Every set is in
the test images' form: model draws x ~ p(x|z) (binary for a Bernoulli model,
as the binarized test images are), training images binarized once when the
run's test images are.
  sample_frechet_distance          prior samples, as many as there are test
                                   images, against the test images;
  train_frechet_distance           as many training images against the test
                                   images: the floor a model can hope to reach;
  reconstruction_frechet_distance  reconstructions x ~ p(x|z), z ~ q(z|x), of
                                   the test images, against the test images.
Fréchet distance between Gaussians fitted to two sets of features:
|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), in squared feature units.

A conditional kind also gets `conditional_sample_accuracy`; a kind that does
not sample (the autoencoder) only the classifier's description.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import progress
from vae_jax.evaluation import classifier
from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure

FEATURES = 'penultimate layer (128 ReLU units) of the vae_jax classifier trained on the dataset'
FEATURE_UNITS = 'squared feature units'


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two sets of feature vectors (n, d)."""
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  return frechet_distance_of_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh(s)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_of_moments(mu_a, cov_a, mu_b, cov_b) -> float:
  """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)); the trace term through the symmetric
  S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues as S_a S_b."""
  root_a = _sqrt_psd(cov_a)
  cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)))
  return float(np.sum((mu_a - mu_b)**2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)


def conditional_sample_accuracy(model, params, key: jax.Array, trained_classifier, per_class: int,
                                batch_size: int = 1000) -> float:
  """The share of class-conditional samples that the dataset's classifier labels with their class.

  For each class y, `per_class` images E[x|z, y] with z ~ p(z|y) at
  temperature 1, drawn from fold_in(key, batch); the classifier reads the
  grey means, as it was trained to.
  """
  sample = jax.jit(functools.partial(model.apply, method=model.sample), static_argnums=(2, 3))
  labels = np.repeat(np.arange(model.num_classes, dtype=np.int32), per_class)
  hits, shown = 0, progress.Progress('drawing and classifying class-conditional samples', len(labels), 'images')
  for i, start in enumerate(range(0, len(labels), batch_size)):
    y = labels[start:start + batch_size]
    drawn = sample({'params': params}, jax.random.fold_in(key, i), len(y), 1.0, jnp.asarray(y))
    hits += int(np.sum(trained_classifier.predict(np.asarray(type(model.likelihood).mean(drawn))) == y))
    shown.update(start + len(y))
  return hits / len(labels)


def _reconstruction_draws(model, params, key: jax.Array, images, labels) -> np.ndarray:
  """x ~ p(x|z), z ~ q(z|x) for each image i, its keys folded from i."""
  k_z, k_x = jax.random.split(key)
  sample = type(model.likelihood).sample

  def draw(x, y, idx):
    per_example = lambda k: jax.vmap(lambda i: jax.random.fold_in(k, i))(idx)
    out = model.apply({'params': params}, x, per_example(k_z), y, method=model.reconstruct)
    one = lambda k, p: sample(k, jax.tree.map(lambda a: a[None], p))[0]
    return jax.vmap(one)(per_example(k_x), out)
  return base.batched(jax.jit(draw), (images, labels, np.arange(len(images), dtype=np.int32)),
                      'drawing reconstructions of the test split')


class Samples(base.Metric):
  name = 'samples'
  needs = frozenset({'classifier'})
  figures = (
      Figure('conditional_sample_accuracy', "share of class-conditional samples the dataset's classifier gives "
             'their class', 'fraction', True),
      Figure('classifier_test_accuracy', "the dataset's classifier's accuracy on the grey test images", 'fraction'),
      Figure('sample_frechet_distance', "Fréchet distance, prior samples vs test images, in the classifier's "
             'features (not Inception FID)', FEATURE_UNITS, False),
      Figure('reconstruction_frechet_distance', 'Fréchet distance, reconstructions vs test images, same features',
             FEATURE_UNITS, False),
      Figure('train_frechet_distance', 'Fréchet distance, training images vs test images (the floor), same '
             'features', FEATURE_UNITS),
  )

  def compute(self, ctx: base.Context) -> dict:
    model, params, key, config, dataset = ctx.model, ctx.params, ctx.key, ctx.config, ctx.dataset
    trained = classifier.load_or_train(dataset.name)
    out = trained.describe()  # which classifier: its name, hash, source and accuracy
    if model.conditional:
      out.update(conditional_sample_accuracy=conditional_sample_accuracy(model, params, key, trained,
                                                                         config.eval.samples_per_class),
                 conditional_samples=model.num_classes * config.eval.samples_per_class)
    if not model.stochastic:
      return out
    test, train = dataset.test, dataset.train
    n = len(test.examples)
    k_samples, k_recon = jax.random.split(jax.random.fold_in(key, 2**31 - 1))  # apart from the batches' fold_ins
    pick = np.random.default_rng(config.eval.binarization_seed).choice(len(train.examples),
                                                                       size=min(n, len(train.examples)),
                                                                       replace=False)
    sets = {'sample': base.prior_draws(model, params, k_samples, n),
            'reconstruction': _reconstruction_draws(model, params, k_recon, test.decoded(), test.labels),
            'train': base.like_test(train.spec.decode(np.asarray(train.examples[np.sort(pick)])), config, 3),
            'test': test.decoded()}
    with progress.stage(f'classifier features of {n:,} prior draws, reconstructions, training and test images '
                        'each'):
      features = {name: trained.features(images) for name, images in sets.items()}
    out.update({f'{name}_frechet_distance': frechet_distance(features[name], features['test'])
                for name in ('sample', 'reconstruction', 'train')}, frechet_features=FEATURES, frechet_samples=n)
    return out
