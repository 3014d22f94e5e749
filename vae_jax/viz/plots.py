"""The standard pictures of a run, as matplotlib Figures.

`image_grid`, `save_grid` and `reconstruction_grid` are what training writes
into the workdir. The rest take a `Run` (from `vae_jax.load_run`) and return a
`matplotlib.figure.Figure`, saved as a PNG when given a `path` (local or
gs://). They never touch pyplot's global state, so they work headless (CI, a
report command); in a notebook (after `%matplotlib inline`) a cell that ends
with one shows it:

  run = vae_jax.load_run(workdir)
  plots.prior_samples(run, jax.random.key(0), temperature=0.7)
  plots.latent_traversal(run, test_images[0])

A picture that does not apply to a run (prior samples of an autoencoder, the
2-D manifold of a 50-D latent space) raises `NotApplicable` saying why.
"""

from __future__ import annotations  # Figure in annotations, matplotlib imported where it draws

import math
import os
import statistics
from typing import TYPE_CHECKING

from etils import epath
import jax
import numpy as np

from vae_jax.runs import names
from vae_jax.runs import writers
from vae_jax.runtime import files

if TYPE_CHECKING:
  from matplotlib.figure import Figure

EVAL_FILE = names.EVAL_FILE
NATS = 'nats per example'
_CELL_INCHES = 0.75  # displayed size of one image in a grid
_DPI = 100

# Label names where the dataset has them; other datasets show the label number.
CLASS_NAMES = {
    'fashion_mnist': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
                      'Bag', 'Ankle boot'),
    'cifar10': ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'),
}


class NotApplicable(ValueError):
  """The picture asked for does not exist for this run (e.g. prior samples of an autoencoder)."""


# ---------------------------------------------------------------- grids, as training writes them


def image_grid(images: np.ndarray, num_cols: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles (N, H, W, C) images into one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  num_cols = num_cols or math.ceil(math.sqrt(n))
  num_rows = math.ceil(n / num_cols)
  grid = np.ones((num_rows * (h + pad) + pad, num_cols * (w + pad) + pad, c), np.float32)
  for i in range(n):
    r, col = divmod(i, num_cols)
    grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
  return grid


def save_grid(path: str | os.PathLike, grid: np.ndarray, title: str) -> None:
  """Saves a grid from `image_grid` as a PNG with a title."""
  h, w, c = grid.shape
  scale = max(4.0, 8.0 * max(h, w) / 300.0) / max(h, w)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(max(w * scale, 4.0), h * scale + 0.6), dpi=100)
  ax = fig.add_subplot()
  ax.imshow(grid[..., 0] if c == 1 else grid, cmap='gray' if c == 1 else None, vmin=0, vmax=1,
            interpolation='nearest')
  ax.set_axis_off()
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, num_cols: int = 8) -> np.ndarray:
  """Rows alternate: a row of originals, then the row of their reconstructions."""
  n = (len(originals) // num_cols) * num_cols or len(originals)
  num_cols = min(num_cols, n)
  rows = []
  for start in range(0, n, num_cols):
    rows.append(originals[start:start + num_cols])
    rows.append(reconstructions[start:start + num_cols])
  return image_grid(np.concatenate(rows), num_cols)


# ---------------------------------------------------------------- helpers


def _figure(width: float, height: float) -> Figure:
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  return Figure(figsize=(width, height), dpi=_DPI, layout='constrained')


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
  """Saves `fig` as a PNG at `path` (any epath: local or gs://) when given; returns it."""
  if path is not None:
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('wb') as f:
      fig.savefig(f, format='png', dpi=_DPI)
  return fig


def _describe(run) -> str:
  """One line naming the run, for the second line of every title."""
  m, name, dataset = run.config.model, epath.Path(run.workdir).name, run.config.data.name
  what = f'{m.kind} {m.encoder} on {dataset}, latent_dim={run.model.latent_dim}, step {run.step}'
  return what if name == dataset else f'{name}: {what}'  # the default workdir is named for its dataset


def _show_grid(ax, grid: np.ndarray) -> None:
  """Draws an `image_grid` with grey values on a grey scale (0 black, 1 white), pixels unsmoothed."""
  grey = grid.shape[-1] == 1
  ax.imshow(grid[..., 0] if grey else grid, cmap='gray' if grey else None, vmin=0.0, vmax=1.0,
            interpolation='nearest')
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.set_xticks([])
  ax.set_yticks([])


def _centers(count: int, size: int, pad: int = 1) -> np.ndarray:
  """Pixel coordinates of the middle of each of `count` cells of an `image_grid`."""
  return pad + np.arange(count) * (size + pad) + (size - 1) / 2


def _as_batch(images) -> np.ndarray:
  images = np.asarray(images, np.float32)
  return images[None] if images.ndim == 3 else images


def _require_stochastic(run, what: str) -> None:
  if not run.model.stochastic:
    raise NotApplicable(f'{what} needs a VAE; this run is model.kind={run.config.model.kind!r} '
                        '(no prior, no posterior)')


def _require_images(run, what: str) -> None:
  """`what` shows examples as pictures: NotApplicable for a run whose examples are not images."""
  spec = getattr(run, 'spec', None)
  if spec is not None and spec.kind != 'image':
    raise NotApplicable(f'{what} shows images; this run\'s data are {spec.describe()}')


def _rows(labels, start: int, stop: int):
  return None if labels is None else np.asarray(labels)[start:stop]


def encode_means(run, images, batch_size: int = 1000, labels=None) -> np.ndarray:
  """Posterior means E_q[z|x] (the codes, for the autoencoder) of `images` (with their `labels`), in batches."""
  images = _as_batch(images)
  return np.concatenate([np.asarray(run.encode(images[i:i + batch_size], _rows(labels, i, i + batch_size))[0])
                         for i in range(0, len(images), batch_size)])


def read_eval(workdir: epath.PathLike) -> dict | None:
  """The run's eval.json, or None when it has not been evaluated yet."""
  path = epath.Path(workdir) / EVAL_FILE
  fix = f'python -m vae_jax.evaluate --workdir={workdir} writes it again'
  return files.read_json(path, fix) if path.exists() else None


def _no_per_dim_kl(run) -> NotApplicable:
  m = run.config.model
  return NotApplicable(f'the KL of this model (model.kind={m.kind}, prior={m.prior}, '
                       f'posterior_flow={m.posterior_flow}) does not split over latent dimensions')


def latent_kl(run, images=None, batch_size: int = 1000, labels=None) -> np.ndarray:
  """KL(q(z_i|x) || p(z_i)) per latent dimension i, in nats per example, averaged over examples.

  From `images` when given (the model's closed-form per-dimension KL),
  otherwise from the run's eval.json (`kl_per_dim_nats`, over the test set).
  Only models whose KL splits over dimensions in closed form have it (a VAE
  with the standard normal prior and no flow); others raise NotApplicable.
  """
  _require_stochastic(run, 'the KL per latent dimension')
  if images is None:
    results = read_eval(run.workdir) or {}
    if 'kl_per_dim_nats' in results and results['kl_per_dim_nats'] is None:
      raise _no_per_dim_kl(run)
    if not results.get('kl_per_dim_nats'):
      raise ValueError(f'{epath.Path(run.workdir) / EVAL_FILE} has no kl_per_dim_nats: pass test images '
                       'to compute it from them')
    return np.asarray(results['kl_per_dim_nats'], np.float64)
  images = _as_batch(images)
  total = np.zeros(run.model.latent_dim, np.float64)
  for i in range(0, len(images), batch_size):
    terms = run.terms(images[i:i + batch_size], jax.random.key(0), _rows(labels, i, i + batch_size))
    if 'kl_per_dim' not in terms:
      raise _no_per_dim_kl(run)
    total += np.sum(np.asarray(terms['kl_per_dim'], np.float64), axis=0)
  return total / len(images)


def dims_by_kl(kl_per_dim) -> np.ndarray:
  """Latent dimensions ordered by KL, highest first (ties keep their index order)."""
  return np.argsort(-np.asarray(kl_per_dim, np.float64), kind='stable')


# ---------------------------------------------------------------- pictures of images


def _prior_text(run, temperature) -> str:
  """How the prior draws were made, for a title (`temperature` a number or a symbol)."""
  t = f'{temperature:g}' if isinstance(temperature, (int, float)) else str(temperature)
  m, groups = run.config.model, len(run.model.group_sizes)
  if m.prior == 'standard_normal' and groups == 1:
    return f'z ~ N(0, {t}² I)'
  where = f', top-down over {groups} latent groups' if groups > 1 else ''
  return f'z ~ p(z) ({m.prior} prior{where}), every spread × {t}'


def prior_samples(run, key: jax.Array, num_samples: int = 64, temperature: float = 1.0,
                  num_cols: int | None = None, path: str | os.PathLike | None = None) -> Figure:
  """E[x|z] for z from the prior at `temperature`: T < 1 trades variety for typicality."""
  _require_images(run, 'a grid of prior samples')
  _require_stochastic(run, 'prior samples')
  images = np.asarray(run.sample(key, num_samples, temperature))
  num_cols = num_cols or math.ceil(math.sqrt(num_samples))
  num_rows = math.ceil(num_samples / num_cols)
  fig = _figure(num_cols * _CELL_INCHES + 0.4, num_rows * _CELL_INCHES + 0.8)
  ax = fig.add_subplot()
  _show_grid(ax, image_grid(images, num_cols))
  ax.set_title(f'{num_samples} samples from the prior: E[x|z], {_prior_text(run, temperature)}\n{_describe(run)}',
               fontsize=10)
  return _finish(fig, path)


def samples_by_temperature(run, key: jax.Array, temperatures=(1.0, 0.85, 0.7, 0.5), num_cols: int = 10,
                           path: str | os.PathLike | None = None) -> Figure:
  """One row of prior samples per temperature, the same key in every row."""
  _require_images(run, 'a grid of prior samples')
  _require_stochastic(run, 'prior samples')
  rows = [np.asarray(run.sample(key, num_cols, t)) for t in temperatures]
  fig = _figure(num_cols * _CELL_INCHES + 1.2, len(rows) * _CELL_INCHES + 0.9)
  ax = fig.add_subplot()
  _show_grid(ax, image_grid(np.concatenate(rows), num_cols))
  ax.set_yticks(_centers(len(rows), rows[0].shape[1]), [f'T = {t:g}' for t in temperatures], fontsize=8)
  ax.tick_params(length=0)
  ax.set_title(f'Prior samples E[x|z] at several temperatures T: {_prior_text(run, "T")}\n{_describe(run)}',
               fontsize=10)
  return _finish(fig, path)


def samples_by_class(run, key: jax.Array, per_class: int = 10, temperature: float = 1.0, class_names=None,
                     path: str | os.PathLike | None = None) -> Figure:
  """One row per class of a conditional model: E[x|z, y] with z ~ p(z|y)."""
  _require_images(run, 'a grid of samples by class')
  _require_stochastic(run, 'prior samples')
  if not run.conditional:
    raise NotApplicable(f'samples by class need a conditional model (model.kind=cvae); this run is '
                        f'model.kind={run.config.model.kind!r}')
  k = run.model.num_classes
  images = np.asarray(run.sample(key, k * per_class, temperature, labels=np.repeat(np.arange(k), per_class)))
  names = class_names or CLASS_NAMES.get(run.config.data.name) or [str(c) for c in range(k)]
  fig = _figure(per_class * _CELL_INCHES + 1.6, k * _CELL_INCHES + 0.9)
  ax = fig.add_subplot()
  _show_grid(ax, image_grid(images, per_class))
  ax.set_yticks(_centers(k, images.shape[1]), [f'{c}: {names[c]}' for c in range(k)], fontsize=8)
  ax.tick_params(length=0)
  ax.set_title(f'Samples by class: E[x|z, y], z ~ p(z|y) ({run.config.model.prior}), temperature {temperature:g}, '
               f'one row per class y\n{_describe(run)}', fontsize=10)
  return _finish(fig, path)


def reconstructions(run, images, key: jax.Array, num_cols: int = 8,
                    path: str | os.PathLike | None = None, labels=None) -> Figure:
  """Inputs and their reconstructions in alternating rows, so each pair is one above the other."""
  _require_images(run, 'a grid of reconstructions')
  images = _as_batch(images)
  num_cols = min(num_cols, len(images))
  images = images[:(len(images) // num_cols) * num_cols]
  recon = np.asarray(run.reconstruct(images, key, _rows(labels, 0, len(images))))
  grid = reconstruction_grid(images, recon, num_cols)
  num_rows = 2 * len(images) // num_cols
  fig = _figure(num_cols * _CELL_INCHES + 1.4, num_rows * _CELL_INCHES + 0.8)
  ax = fig.add_subplot()
  _show_grid(ax, grid)
  ax.set_yticks(_centers(num_rows, images.shape[1]), ['input', 'reconstruction'] * (num_rows // 2), fontsize=8)
  ax.tick_params(length=0)
  how = 'z ~ q(z|x)' if run.model.stochastic else 'z = encoder(x)'
  ax.set_title(f'{len(images)} images and their reconstructions E[x|z], {how}\n{_describe(run)}', fontsize=10)
  return _finish(fig, path)


def interpolation(run, start, end, num_steps: int = 8, path: str | os.PathLike | None = None,
                  labels=None) -> Figure:
  """Decodes z = (1 - t) mu(a) + t mu(b) between the posterior means of inputs a and b (one row per pair).

  `labels`: the class of each pair (a conditional run), which both ends are
  encoded with and the path is decoded with.
  """
  _require_images(run, 'an interpolation grid')
  start, end = _as_batch(start), _as_batch(end)
  if start.shape != end.shape:
    raise ValueError(f'start and end must have the same shape, got {start.shape} and {end.shape}')
  mu_a, mu_b = encode_means(run, start, labels=labels), encode_means(run, end, labels=labels)
  t = np.linspace(0.0, 1.0, num_steps, dtype=np.float32)
  z = (1.0 - t)[None, :, None] * mu_a[:, None] + t[None, :, None] * mu_b[:, None]  # (pairs, steps, latent)
  path_labels = None if labels is None else np.repeat(np.asarray(labels), num_steps)
  decoded = np.asarray(run.mean_image(z.reshape(-1, z.shape[-1]), path_labels))
  decoded = decoded.reshape(len(start), num_steps, *start.shape[1:])
  rows = np.concatenate([start[:, None], decoded, end[:, None]], axis=1)  # input a, the path, input b
  num_cols = num_steps + 2
  fig = _figure(num_cols * _CELL_INCHES + 0.4, len(start) * _CELL_INCHES + 1.2)
  ax = fig.add_subplot()
  _show_grid(ax, image_grid(rows.reshape(-1, *start.shape[1:]), num_cols))
  ax.set_xticks(_centers(num_cols, start.shape[2]), ['input a'] + [f't={v:.2f}' for v in t] + ['input b'],
                fontsize=8)
  ax.tick_params(length=0)
  what = 'posterior means' if run.model.stochastic else 'codes'
  ax.set_title(f'Interpolation between the {what} of images a and b: E[x|z], z = (1−t)·μ(a) + t·μ(b)\n'
               f'{_describe(run)}', fontsize=10)
  return _finish(fig, path)


def latent_traversal(run, image, kl_per_dim=None, num_dims: int = 10, num_steps: int = 9, span: float = 3.0,
                     path: str | os.PathLike | None = None, label: int | None = None) -> Figure:
  """Moves one latent dimension at a time around an input's posterior mean, highest-KL dimensions first.

  Row i decodes z = mu(x) + delta * e_i for delta in [-span, span] (prior
  standard deviations), so the middle column is the reconstruction from the
  mean; rows show the `num_dims` dimensions with the most KL (default: the
  run's eval.json; see `latent_kl`), which are the ones the decoder uses.
  A conditional run encodes and decodes with the image's `label`.
  """
  _require_images(run, 'a latent traversal')
  _require_stochastic(run, 'a latent traversal')
  image = _as_batch(image)[:1]
  kl = np.asarray(latent_kl(run) if kl_per_dim is None else kl_per_dim, np.float64)
  if kl.shape != (run.model.latent_dim,):
    raise ValueError(f'kl_per_dim has shape {kl.shape}; this run has latent_dim={run.model.latent_dim}')
  dims = dims_by_kl(kl)[:num_dims]
  mean = encode_means(run, image, labels=None if label is None else [label])[0]
  deltas = np.linspace(-span, span, num_steps, dtype=np.float32)
  z = np.repeat(mean[None, None], len(dims), axis=0).repeat(num_steps, axis=1)  # (dims, steps, latent)
  z[np.arange(len(dims))[:, None], np.arange(num_steps)[None, :], dims[:, None]] += deltas[None, :]
  decoded = np.asarray(run.mean_image(z.reshape(-1, z.shape[-1]),
                                      None if label is None else np.full(z.shape[0] * z.shape[1], label)))
  h, w = image.shape[1:3]
  fig = _figure((num_steps + 1) * _CELL_INCHES + 1.6, len(dims) * _CELL_INCHES + 1.4)
  grid_spec = fig.add_gridspec(1, 2, width_ratios=(1, num_steps))
  ax_input = fig.add_subplot(grid_spec[0])
  _show_grid(ax_input, image_grid(image, 1))
  ax_input.set_title('input x', fontsize=9)
  ax = fig.add_subplot(grid_spec[1])
  _show_grid(ax, image_grid(decoded, num_steps))
  ax.set_yticks(_centers(len(dims), h), [f'z[{d}]: KL {kl[d]:.2f} nats' for d in dims], fontsize=8)
  ax.set_xticks(_centers(num_steps, w), [f'{v:+.1f}' for v in deltas], fontsize=8)
  ax.tick_params(length=0)
  ax.set_xlabel('δ: change of z[i] from μ_i(x), in prior standard deviations', fontsize=9)
  fig.suptitle(f'Latent traversal: E[x|z], z = μ(x) + δ·e_i, for the {len(dims)} of {run.model.latent_dim} '
               f'dimensions i with the most KL ({NATS})\n{_describe(run)}', fontsize=10)
  return _finish(fig, path)


def mutual_information(run, images, factors, factor_names, labels=None, kl_per_dim=None,
                       path: str | os.PathLike | None = None) -> Figure:
  """The mutual information between each latent dimension's posterior mean and each known factor, in nats.

  `factors`: (n, K) factor indices of `images` (a split's `factors`). Each
  mean is discretized into equal-width bins as MIG does
  (`evaluation.disentanglement.mutual_information_matrix`); rows are the
  dimensions by KL when `kl_per_dim` is given (else the run's eval.json,
  else index order), each labelled with its KL. A disentangled code has
  one bright cell per row and per column.
  """
  from vae_jax.evaluation import disentanglement  # pylint: disable=g-import-not-at-top
  _require_images(run, 'the latent-factor mutual information')
  _require_stochastic(run, 'the latent-factor mutual information')
  if factors is None:
    raise NotApplicable(f'{run.config.data.name} has no known factors of variation')
  means = encode_means(run, images, labels=labels)
  mi = disentanglement.mutual_information_matrix(means, np.asarray(factors))
  try:
    kl = np.asarray(latent_kl(run) if kl_per_dim is None else kl_per_dim, np.float64)
  except (NotApplicable, ValueError):
    kl = None
  dims = dims_by_kl(kl) if kl is not None else np.arange(mi.shape[0])
  fig = _figure(1.2 * len(factor_names) + 3.0, 0.38 * len(dims) + 1.8)
  ax = fig.add_subplot()
  shown = mi[dims]
  im = ax.imshow(shown, cmap='viridis', vmin=0.0, aspect='auto', interpolation='nearest')
  for (i, k), value in np.ndenumerate(shown):
    ax.text(k, i, f'{value:.2f}', ha='center', va='center', fontsize=7,
            color='black' if value > 0.6 * max(float(shown.max()), 1e-9) else 'white')
  ax.set_xticks(range(len(factor_names)), list(factor_names), fontsize=8)
  ax.set_yticks(range(len(dims)), [f'z[{d}]' + ('' if kl is None else f': KL {kl[d]:.2f}') for d in dims],
                fontsize=8)
  fig.colorbar(im, ax=ax, label='I(z_i; factor) (nats)')
  fig.suptitle(f'Mutual information between posterior means and factors, {len(means):,} test images\n'
               f'{_describe(run)}', fontsize=10)
  return _finish(fig, path)


def figure_image(fig: Figure) -> np.ndarray:
  """A drawn Figure as an (H, W, 3) float image in [0, 1], for the run's writers (TensorBoard)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0


def latent_manifold(run, num_per_side: int = 15, path: str | os.PathLike | None = None,
                    label: int | None = None) -> Figure:
  """Kingma & Welling's figure for a 2-D latent space: E[x|z] on a grid of z at Gaussian quantiles.

  Equal steps in probability under the prior, not in z, so every cell covers
  as much of the prior's mass as any other. A conditional run decodes the
  grid as class `label` (default 0).
  """
  _require_images(run, 'the latent manifold')
  _require_stochastic(run, 'the latent manifold')
  if run.model.latent_dim != 2:
    raise NotApplicable(f'the 2-D latent manifold needs latent_dim=2; this run has latent_dim={run.model.latent_dim}')
  quantiles = np.linspace(0.05, 0.95, num_per_side)
  values = np.array([statistics.NormalDist().inv_cdf(q) for q in quantiles], np.float32)
  z1, z0 = np.meshgrid(values[::-1], values, indexing='ij')  # rows: z[1] from high (top) to low
  label = label or 0
  decoded = np.asarray(run.mean_image(np.stack([z0.ravel(), z1.ravel()], axis=-1), np.full(z0.size, label)))
  h, w = decoded.shape[1:3]
  size = num_per_side * 0.5 + 1.2
  fig = _figure(size, size + 0.3)
  ax = fig.add_subplot()
  _show_grid(ax, image_grid(decoded, num_per_side))
  every = max(1, num_per_side // 7)
  ticks = np.arange(0, num_per_side, every)
  ax.set_xticks(_centers(num_per_side, w)[ticks], [f'{values[i]:.2f}' for i in ticks], fontsize=8)
  ax.set_yticks(_centers(num_per_side, h)[ticks], [f'{values[::-1][i]:.2f}' for i in ticks], fontsize=8)
  ax.set_xlabel('z[0] (Gaussian quantiles 5% to 95%)', fontsize=9)
  ax.set_ylabel('z[1] (Gaussian quantiles 5% to 95%)', fontsize=9)
  ax.set_title(f'Learned 2-D manifold: E[x|z] on a {num_per_side}×{num_per_side} grid of z\n{_describe(run)}',
               fontsize=10)
  return _finish(fig, path)


# ---------------------------------------------------------------- the latent space, and training


def latent_scatter(run, images, labels, class_names=None, path: str | os.PathLike | None = None) -> Figure:
  """The posterior means of `images`, colored by label; PCA to 2-D when latent_dim > 2.

  `class_names` defaults to the dataset's (CLASS_NAMES) or the label numbers.
  """
  from sklearn import decomposition  # pylint: disable=g-import-not-at-top
  if labels is None:
    raise NotApplicable(f'the latent scatter colors examples by label; {run.config.data.name} has no labels')
  labels = np.asarray(labels)
  means = encode_means(run, images, labels=labels)
  what = 'posterior means μ(x)' if run.model.stochastic else 'codes z = encoder(x)'
  latent_dim = means.shape[1]
  if latent_dim > 2:
    pca = decomposition.PCA(n_components=2, random_state=0).fit(means)
    xy = pca.transform(means)
    share = 100 * pca.explained_variance_ratio_
    axis_labels = [f'principal component {i + 1} ({share[i]:.0f}% of the variance)' for i in range(2)]
    how = f'PCA of the {latent_dim}-D {what}'
  elif latent_dim == 2:
    xy, axis_labels, how = means, ['z[0]', 'z[1]'], f'the 2-D {what}'
  else:  # one dimension: spread the classes out on the other axis
    xy = np.stack([means[:, 0], labels + np.random.default_rng(0).uniform(-0.3, 0.3, len(labels))], axis=-1)
    axis_labels, how = ['z[0]', 'label (jittered)'], f'the 1-D {what}'
  classes = np.unique(labels)
  names = class_names or CLASS_NAMES.get(run.config.data.name)
  fig = _figure(7.5, 5.6)
  ax = fig.add_subplot()
  order = np.random.default_rng(0).permutation(len(xy))  # no class drawn entirely on top of another
  size = 12 if len(xy) <= 2000 else 3
  if len(classes) <= 10:
    import matplotlib  # pylint: disable=g-import-not-at-top
    cmap = matplotlib.colormaps['tab10']
    colors = np.asarray([cmap(int(np.searchsorted(classes, c))) for c in labels])
    ax.scatter(xy[order, 0], xy[order, 1], c=colors[order], s=size, alpha=0.7, linewidths=0)
    for i, c in enumerate(classes):
      name = names[c] if names is not None and 0 <= c < len(names) else str(c)
      ax.scatter([], [], color=cmap(i), s=30, label=name)
    ax.legend(title='label', fontsize=8, title_fontsize=9, loc='center left', bbox_to_anchor=(1.0, 0.5),
              frameon=False)
  else:
    points = ax.scatter(xy[order, 0], xy[order, 1], c=labels[order], cmap='viridis', s=size, alpha=0.7,
                        linewidths=0)
    fig.colorbar(points, ax=ax, label='label')
  ax.set_xlabel(axis_labels[0], fontsize=9)
  ax.set_ylabel(axis_labels[1], fontsize=9)
  ax.set_title(f'{how[0].upper()}{how[1:]} of {len(xy)} images, colored by label\n{_describe(run)}',
               fontsize=10)
  return _finish(fig, path)


_CURVES = (
    ('elbo_nats', 'ELBO (higher is better)'),
    ('recon_nats', 'Reconstruction E_q[log p(x|z)]'),
    ('kl_nats', 'KL(q(z|x) ‖ N(0, I))'),
)


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of `key`, leaving out records without it and non-finite values (stored as strings)."""
  pairs = [(r['step'], r[key]) for r in records
           if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
  return np.asarray([p[0] for p in pairs]), np.asarray([p[1] for p in pairs], np.float64)


def training_curves(run, path: str | os.PathLike | None = None) -> Figure:
  """ELBO, reconstruction and KL against step from metrics.jsonl, train and validation.

  `run` is a Run or a workdir. One panel per quantity the run logged (the
  autoencoder logs only the reconstruction). The y range leaves out the first
  tenth of training, whose large early values would flatten the rest.
  """
  workdir = epath.Path(getattr(run, 'workdir', run))
  records = writers.read_metrics(workdir)
  panels = [(key, title, {split: _series(records, f'{split}/{key}') for split in ('train', 'validation')})
            for key, title in _CURVES]
  panels = [p for p in panels if any(len(s[0]) for s in p[2].values())]
  if not panels:
    raise NotApplicable(f'{workdir / writers.METRICS_FILE} has no train/ or validation/ ELBO, recon or KL yet')
  fig = _figure(max(7.0, 4.2 * len(panels)), 3.9)
  last_step = max(int(r['step']) for r in records)
  for i, (key, title, series) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    shown = []
    for split, style in (('train', dict(lw=1.0, alpha=0.8)), ('validation', dict(marker='o', ms=3, lw=1.2))):
      steps, values = series[split]
      if len(steps):
        ax.plot(steps, values, label=split, **style)
        shown.append(values[steps >= 0.1 * last_step] if np.any(steps >= 0.1 * last_step) else values)
    low, high = float(min(v.min() for v in shown)), float(max(v.max() for v in shown))
    margin = 0.08 * (high - low) or 0.5
    ax.set_ylim(low - margin, high + margin)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('training step', fontsize=9)
    ax.set_ylabel(NATS, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f'Training curves of {workdir.name}, in {NATS}\n'
               'train: mean over each logging interval; y range fitted to the last 90% of training', fontsize=10)
  return _finish(fig, path)

