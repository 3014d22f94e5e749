"""A metric is one class: the figures it returns, what it needs, and how it computes them (`Metric`).
Beside the metrics, outputs: files a finished run writes next to eval.json (`register_output`).

A metric reads a trained model through a `Context` and returns a dict of
eval.json keys: its figures (`vae_jax.figures.Figure`, each with its unit and
direction) and, if it likes, words that say how they were made. Registered
in `METRICS` (`register`), its name is a valid entry of config.eval.metrics,
and TensorBoard, report.md and the sweep report show its figures.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import data
from vae_jax import progress
from vae_jax.figures import Figure

# What a metric may need, and the line it is skipped with when the run does not have it.
NEEDS = ('labels', 'classifier', 'samples', 'factors')

# name -> output(ctx, results, workdir) -> images: what a finished run writes beside eval.json when its data
# have what the output needs (a table's samples.csv, the factors' representation.npz). Each writes its file
# whole or not at all and returns images (tag -> (H, W, C) floats in [0, 1]) for the run's writers, or {} when it
# does not apply. Called on process 0 after the final evaluation, whether or not a metric is chosen.
OUTPUTS: dict[str, Callable[..., dict]] = {}


def register_output(name: str):
  """Registers an output function under `name` (a decorator)."""
  def add(fn):
    OUTPUTS[name] = fn
    return fn
  return add


@dataclasses.dataclass(frozen=True)
class Context:
  """What a metric reads: the model, its evaluated parameters (replicated on the mesh), the run's config,
  the dataset and a key of its own (`setup.measures_key`; fold_in it to draw apart from other metrics)."""
  model: Any
  params: Any
  config: ml_collections.ConfigDict
  dataset: data.Dataset
  key: jax.Array


class Metric:
  """A registered measure of a trained model, computed after the final test evaluation (and by
  vae_jax.evaluate) when config.eval.measures is on and config.eval.metrics names it.

  name: its name in config.eval.metrics;
  figures: the eval.json keys it returns that are numbers to show (tuple of Figure);
  needs: frozenset of NEEDS: 'labels' (the dataset's), 'classifier' (the dataset's own image classifier,
    `vae_jax.evaluation.classifier`), 'samples' (a kind that draws from its prior), 'factors' (the dataset's
    known factors of variation, `dataset.factors`, to draw images by factor value). A run without one is
    skipped with one log line (`applies`), and eval.json does not get the figures.
  """

  name: str = ''
  figures: tuple[Figure, ...] = ()
  needs: frozenset[str] = frozenset()
  selectable = True  # False: computed by every evaluation, not named in config.eval.metrics

  def applies(self, ctx: Context) -> str | None:
    """None when the metric can be computed for this run, else one line saying why not."""
    dataset, model = ctx.dataset, ctx.model
    if 'labels' in self.needs and (dataset.train.labels is None or dataset.test.labels is None):
      return f'{dataset.name} has no labels'
    if 'classifier' in self.needs and (dataset.spec.kind != 'image' or dataset.name not in data.NUM_CLASSES):
      return f'vae_jax has a classifier for labelled image datasets only, and {dataset.name} is not one'
    if 'classifier' in self.needs and ctx.config.data.get('image_size') is not None:
      return f'the classifier of {dataset.name} reads its images at their own size, not data.image_size'
    if 'samples' in self.needs and not model.stochastic:
      return f'model.kind={ctx.config.model.kind} draws no samples'
    if 'factors' in self.needs and getattr(dataset, 'factors', None) is None:
      return f'the {self.name} metric draws images by factor value, and {dataset.name} has no factors'
    return None

  def check_config(self, config) -> None:
    """Raises errors.ConfigError for a config this metric cannot serve, before anything is read or trained
    (a missing label or classifier is found later, by `applies`, and skipped)."""

  def compute(self, ctx: Context) -> dict:
    """eval.json's keys of this metric: its figures, and any words on how they were made."""
    raise NotImplementedError(f'{type(self).__name__}.compute')


METRICS: dict[str, Metric] = {}


def register(metric):
  """Adds a Metric (an instance, or a class, which is instantiated) to METRICS under its name; returns what
  it was given, so it also serves as a class decorator."""
  instance = metric() if isinstance(metric, type) else metric
  if not instance.name:
    raise ValueError(f'{type(instance).__name__} has no name')
  unknown = set(instance.needs) - set(NEEDS)
  if unknown:
    raise ValueError(f'metric {instance.name} needs {sorted(unknown)}; a metric may need {", ".join(NEEDS)}')
  METRICS[instance.name] = instance
  return metric


# Helpers a metric module shares.

def batched(fn, arrays, what: str, batch_size: int = 1000) -> np.ndarray:
  """fn over the arrays in batches (the last one shorter), outputs concatenated, with progress lines as `what`."""
  n, parts = len(arrays[0]), []
  shown = progress.Progress(what, n, 'examples')
  for i in range(0, n, batch_size):
    parts.append(np.asarray(fn(*(None if a is None else jnp.asarray(a[i:i + batch_size]) for a in arrays))))
    shown.update(min(i + batch_size, n))
  return np.concatenate(parts)


def prior_draws(model, params, key: jax.Array, n: int, unit: str = 'images', batch_size: int = 1000) -> np.ndarray:
  """n draws x ~ p(x|z), z ~ p(z) (a table's rows in its stored form), batch i from fold_in(key, i) (a
  conditional kind draws the classes in turn)."""
  def draw(k, m):
    k_z, k_x = jax.random.split(k)
    return type(model.likelihood).sample(k_x, model.apply({'params': params}, k_z, m, method=model.sample))
  fn = jax.jit(draw, static_argnums=1)
  parts, shown = [], progress.Progress('drawing from the prior', n, unit)
  for i, start in enumerate(range(0, n, batch_size)):
    parts.append(np.asarray(fn(jax.random.fold_in(key, i), min(batch_size, n - start))))
    shown.update(start + len(parts[-1]))
  return np.concatenate(parts)


def encoder(model, params):
  """`encode`'s representation, jitted once: (x, y) -> (n, latent_dim) (a VAE's posterior means)."""
  return jax.jit(lambda x, y: model.apply({'params': params}, x, y, method=model.encode)[0])


def encodings(model, params, examples: np.ndarray, labels: np.ndarray | None, what: str = 'encoding') -> np.ndarray:
  """`encode`'s representation of every example: (n, latent_dim)."""
  return batched(encoder(model, params), (examples, labels), what)


def like_test(examples: np.ndarray, config, seed_offset: int) -> np.ndarray:
  """Training examples in the test examples' form: binarized once when the run's data are binarized
  dynamically (static: already binary; none: grey)."""
  if config.data.binarize == 'dynamic':
    return data.binarize(examples, config.eval.binarization_seed + seed_offset)
  return examples
