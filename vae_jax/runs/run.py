"""Reading a finished (or running) run back, for notebooks:

  run = vae_jax.load_run('runs/fashion_mnist')
  images = run.sample(jax.random.key(0), 16)                 # or temperature=0.7 (one per group for hvae)
  log_px = run.log_likelihood(x, jax.random.key(1), num_samples=1000)
  images = run.sample(jax.random.key(0), 10, labels=range(10))  # a conditional run (cvae): one per class

Only the workdir is needed: the config comes from its config.json and the
parameters from its latest checkpoint. The workdir may be local or anything
etils.epath reads (gs://bucket/run), so Colab can open a run on a bucket.
Examples go in and come out as the dataset gives them (`run.spec`): images
float32 in [0, 1], shape (N, H, W, C); vectors (N, D). A conditional run
(`run.conditional`) takes the examples' class labels wherever it takes
examples (`encode(x, labels)`, ...); without labels, `sample` and `decode`
take the classes in turn. Other runs ignore the labels (but refuse
`sample(..., labels=)`, which they cannot do).
"""

import functools

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import data
from vae_jax import evaluation
from vae_jax import models
from vae_jax.runs import checkpoints


class Run:
  """A trained model with its config and parameters, and jitted ways to use it."""

  def __init__(self, workdir: epath.Path, config: ml_collections.ConfigDict, params, step: int):
    self.workdir = workdir
    self.config = config
    self.params = params
    self.step = step
    self.spec = run_spec(config)
    self.image_shape = tuple(self.spec.shape) if self.spec.kind == 'image' else None  # (H, W, C) of images
    self.model = models.make(config, self.spec)
    self._likelihood = type(self.model.likelihood)
    self._encode = jax.jit(functools.partial(self.model.apply, method=self.model.encode))
    self._decode = jax.jit(functools.partial(self.model.apply, method=self.model.decode))
    self._terms = jax.jit(self.model.apply)
    self._reconstruct = jax.jit(functools.partial(self.model.apply, method=self.model.reconstruct))
    self._sample = jax.jit(functools.partial(self.model.apply, method=self.model.sample), static_argnums=(2,))

  def __repr__(self):
    m = self.config.model
    return (f'Run({str(self.workdir)!r}, step={self.step}, {m.kind} {m.encoder} {tuple(m.hidden_sizes)} '
            f'latent_dim={self.model.latent_dim} groups={tuple(self.model.group_sizes)} prior={m.prior} '
            f'likelihood={m.likelihood}, data={self.config.data.name})')

  @property
  def _variables(self):
    return {'params': self.params}

  @property
  def conditional(self) -> bool:
    """Whether the model is conditioned on the class label (its likelihood is log p(x|y))."""
    return self.model.conditional

  def _labels(self, labels, n: int) -> jax.Array | None:
    """The classes of n images, checked, for a conditional run; None for the rest, which ignore them."""
    if labels is None or not self.conditional:
      return None
    labels = np.asarray(list(labels) if isinstance(labels, range) else labels)
    k = self.model.num_classes
    if (labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or
        np.any(labels < 0) or np.any(labels >= k)):
      raise ValueError(f'labels must be {n} integers in [0, {k}), one per image; got shape {labels.shape}, '
                       f'dtype {labels.dtype}')
    return jnp.asarray(labels, jnp.int32)

  def _binarize(self, x, key):
    """Binarizes as training did; images that are already binary are unchanged."""
    x = jnp.asarray(x, jnp.float32)
    if self.config.data.binarize == 'none':
      return x
    return jax.random.bernoulli(key, x).astype(jnp.float32)

  def _require_stochastic(self, what: str):
    if not self.model.stochastic:
      raise ValueError(f'{what} needs a VAE; this run is model.kind={self.config.model.kind!r}, '
                       'which has no prior or posterior')

  def encode(self, x, labels=None) -> tuple[jax.Array, jax.Array | None]:
    """The mean and log-variance of q(z|x), (n, latent_dim) each (for the autoencoder: the code and None).

    For a hierarchy: every group flattened, top group first, along the path
    where each group sits at its posterior mean."""
    return self._encode(self._variables, jnp.asarray(x, jnp.float32), self._labels(labels, len(x)))

  def decode(self, z, labels=None):
    """The parameters of p(x|z) (logits for Bernoulli, (mean, log_std) for Gaussian, ...) for a flat z."""
    return self._decode(self._variables, jnp.asarray(z, jnp.float32), self._labels(labels, len(z)))

  def mean_image(self, z, labels=None) -> jax.Array:
    """E[x|z]: pixel probabilities (Bernoulli) or means (Gaussian)."""
    return self._likelihood.mean(self.decode(z, labels))

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels=None) -> jax.Array:
    """n images E[x|z] with z from the prior, shape (n, H, W, C).

    `temperature` scales each latent group's spread: one number, or one per
    group (top group first) for a hierarchical model. `labels` (a conditional
    run): the class of each image; by default the classes in turn.
    """
    self._require_stochastic('sample')
    if labels is not None and not self.conditional:
      raise ValueError(f'labels were given, but this run (model.kind={self.config.model.kind!r}) does not '
                       'sample by class; only a conditional kind (cvae) does')
    temperature = float(temperature) if np.ndim(temperature) == 0 else tuple(float(t) for t in temperature)
    return self._likelihood.mean(self._sample(self._variables, key, n, temperature, self._labels(labels, n)))

  def reconstruct(self, x, key: jax.Array, labels=None) -> jax.Array:
    """E[x|z] with z ~ q(z|x) (binarizing x first when the run was trained on binary data)."""
    binarize_key, sample_key = jax.random.split(key)
    x = self._binarize(x, binarize_key)
    return self._likelihood.mean(self._reconstruct(self._variables, x, jax.random.split(sample_key, len(x)),
                                                   self._labels(labels, len(x))))

  def terms(self, x, key: jax.Array, labels=None) -> dict[str, jax.Array]:
    """The ELBO's parts of x for one posterior sample each (`vae_jax.models`: log_px_z, kl per group, ...)."""
    x = jnp.asarray(x, jnp.float32)
    return self._terms(self._variables, x, jax.random.split(key, len(x)), self._labels(labels, len(x)))

  def log_likelihood(self, x, key: jax.Array, num_samples: int | None = None, batch_size: int = 500,
                     labels=None) -> np.ndarray:
    """Per-example importance-sampled estimate of log p(x) (a conditional run: log p(x|y)), in nats.

    Defaults to the run's `eval.num_importance_samples`. Grey images are
    binarized first with `key` when the run was trained on binary data.
    """
    self._require_stochastic('log_likelihood')
    num_samples = num_samples or self.config.eval.num_importance_samples
    binarize_key, sample_key = jax.random.split(key)
    x = np.asarray(self._binarize(x, binarize_key))
    evaluator = evaluation.Evaluator(self.model, min(batch_size, len(x)), num_samples,
                                     self.config.eval.sample_chunk,
                                     memory_budget_gb=self.config.eval.memory_budget_gb)
    labels = self._labels(labels, len(x))
    return evaluator.per_example(self.params, x, sample_key, None if labels is None else np.asarray(labels))['log_px']


def run_spec(config: ml_collections.ConfigDict) -> data.ExampleSpec:
  """What the run's examples are: config.json's resolved.example_spec, or for a run written before specs, the
  8-bit images of its resolved.image_shape."""
  recorded = config.resolved.get('example_spec')
  if recorded is not None:
    return data.ExampleSpec.from_json(recorded)
  return data.ImageSpec.of_shape(config.resolved.image_shape)


def load_run(workdir: epath.PathLike, step: int | None = None) -> Run:
  """Loads the run in `workdir` (a local path or a gs:// URI) at its latest checkpoint (or at `step`)."""
  workdir = epath.Path(workdir)
  config = checkpoints.read_config(workdir)
  params, step = checkpoints.restore_params(workdir, step)
  return Run(workdir, config, params, step)
