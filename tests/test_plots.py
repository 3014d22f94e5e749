"""The standard pictures of vae_jax.viz.plots on tiny digits runs: each figure shows
what its title says (checked on the pixels it draws), saves a PNG, and pictures
that do not apply to a run raise NotApplicable. Also: load_run takes str,
pathlib and epath workdirs alike."""

import json
import pathlib

from etils import epath
import jax
import matplotlib.image
import numpy as np
import pytest
from sklearn import decomposition

import vae_jax
from vae_jax import data
from vae_jax.runs import checkpoints
from vae_jax.runs import writers
from vae_jax.training import train
from vae_jax.viz import plots


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Three runs: a VAE with latent_dim=4, one with latent_dim=2, and an autoencoder."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  configs = {'vae4': tiny_config(num_epochs=2), 'vae2': tiny_config(num_epochs=2, **{'model.latent_dim': 2}),
             'ae': tiny_config(num_epochs=1, **{'model.kind': 'ae'})}
  out = {}
  for name, config in configs.items():
    workdir = tmp_path_factory.mktemp(name)
    train.train_and_evaluate(config, workdir)
    out[name] = vae_jax.load_run(workdir)
  out['test'] = data.load(configs['vae4']).test
  return out


def _grid(fig, axes_index: int = 0) -> np.ndarray:
  """The image drawn on the figure's axes, as (rows, cols) or (rows, cols, C)."""
  images = fig.axes[axes_index].get_images()
  assert len(images) == 1
  return np.asarray(images[0].get_array())


def _cell(grid: np.ndarray, row: int, col: int, size: int = 8, pad: int = 1) -> np.ndarray:
  r, c = pad + row * (size + pad), pad + col * (size + pad)
  return grid[r:r + size, c:c + size]


def _labels(ticklabels) -> list[str]:
  return [t.get_text() for t in ticklabels]


def test_prior_samples_temperature_and_png(runs, tmp_path):
  run = runs['vae4']
  path = tmp_path / 'sub' / 'samples.png'
  fig = plots.prior_samples(run, jax.random.key(0), num_samples=16, temperature=0.5, path=path)
  grid = _grid(fig)
  assert grid.shape == (4 * 9 + 1, 4 * 9 + 1)  # 16 grey 8x8 images, 4 by 4, 1 pixel apart
  assert 'N(0, 0.5² I)' in fig.axes[0].get_title()
  # The cells are E[x|z] for z = T * eps with the key's eps.
  eps = jax.random.normal(jax.random.key(0), (16, 4))
  expected = np.asarray(run.mean_image(0.5 * eps))
  np.testing.assert_allclose(_cell(grid, 1, 2), expected[6, ..., 0], atol=1e-5)
  # Temperature 0 decodes z = 0 sixteen times.
  cold = _grid(plots.prior_samples(run, jax.random.key(0), num_samples=16, temperature=0.0))
  np.testing.assert_allclose(_cell(cold, 0, 0), _cell(cold, 3, 3), atol=1e-6)
  assert not np.allclose(_cell(grid, 0, 0), _cell(grid, 3, 3), atol=1e-3)
  png = matplotlib.image.imread(path)
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and path.stat().st_size > 5000
  assert png.shape[:2] == (round(fig.get_figheight() * 100), round(fig.get_figwidth() * 100))
  assert png[..., :3].std() > 0.1  # not a blank page


def test_reconstructions_pair_inputs_with_their_reconstructions(runs):
  run, x = runs['vae4'], runs['test'].images[:16]
  fig = plots.reconstructions(run, x, jax.random.key(1))
  grid = _grid(fig)
  assert grid.shape == (4 * 9 + 1, 8 * 9 + 1)
  assert _labels(fig.axes[0].get_yticklabels()) == ['input', 'reconstruction'] * 2
  np.testing.assert_array_equal(_cell(grid, 2, 3), x[11, ..., 0])  # row pair 1, column 3: example 8 + 3
  recon = np.asarray(run.reconstruct(x, jax.random.key(1)))
  np.testing.assert_allclose(_cell(grid, 3, 3), recon[11, ..., 0], atol=1e-6)


def test_interpolation_runs_between_posterior_means(runs):
  run, x = runs['vae4'], runs['test'].images
  fig = plots.interpolation(run, x[:3], x[3:6], num_steps=5)
  grid = _grid(fig)
  assert grid.shape == (3 * 9 + 1, 7 * 9 + 1)  # input a, 5 steps, input b
  assert _labels(fig.axes[0].get_xticklabels()) == ['input a', 't=0.00', 't=0.25', 't=0.50', 't=0.75', 't=1.00',
                                                    'input b']
  mu_a, mu_b = np.asarray(run.encode(x[1:2])[0]), np.asarray(run.encode(x[4:5])[0])
  np.testing.assert_array_equal(_cell(grid, 1, 0), x[1, ..., 0])
  np.testing.assert_allclose(_cell(grid, 1, 1), np.asarray(run.mean_image(mu_a))[0, ..., 0], atol=1e-5)
  np.testing.assert_allclose(_cell(grid, 1, 3), np.asarray(run.mean_image((mu_a + mu_b) / 2))[0, ..., 0], atol=1e-5)
  np.testing.assert_allclose(_cell(grid, 1, 5), np.asarray(run.mean_image(mu_b))[0, ..., 0], atol=1e-5)
  np.testing.assert_array_equal(_cell(grid, 1, 6), x[4, ..., 0])


def test_latent_kl_closed_form_and_eval_json(runs):
  run, x = runs['vae4'], runs['test'].images
  mean, log_var = (np.asarray(a, np.float64) for a in run.encode(x))
  expected = np.mean(0.5 * (np.exp(log_var) + mean**2 - 1 - log_var), axis=0)
  np.testing.assert_allclose(plots.latent_kl(run, x, batch_size=128), expected, rtol=1e-5)
  # eval.json's kl_per_dim_nats is the same quantity over the same (binarized once) test images.
  np.testing.assert_allclose(plots.latent_kl(run), expected, rtol=1e-4)
  results = json.loads((run.workdir / 'eval.json').read_text())
  assert plots.latent_kl(run).sum() == pytest.approx(results['kl_nats'], rel=1e-4)
  np.testing.assert_array_equal(plots.dims_by_kl([0.1, 5.0, 2.0, 0.01]), [1, 2, 0, 3])


def test_latent_traversal_rows_follow_kl(runs):
  run, x = runs['vae4'], runs['test'].images
  fig = plots.latent_traversal(run, x[0], kl_per_dim=[0.1, 5.0, 2.0, 0.01], num_steps=5, span=2.0)
  assert len(fig.axes) == 2  # the input, and the traversal
  np.testing.assert_array_equal(_grid(fig, 0)[1:9, 1:9], x[0, ..., 0])
  grid = _grid(fig, 1)
  assert grid.shape == (4 * 9 + 1, 5 * 9 + 1)
  rows = _labels(fig.axes[1].get_yticklabels())
  assert [r.split(':')[0] for r in rows] == ['z[1]', 'z[2]', 'z[0]', 'z[3]']
  assert rows[0] == 'z[1]: KL 5.00 nats'
  assert _labels(fig.axes[1].get_xticklabels()) == ['-2.0', '-1.0', '+0.0', '+1.0', '+2.0']
  mean = np.asarray(run.encode(x[:1])[0])
  np.testing.assert_allclose(_cell(grid, 0, 2), np.asarray(run.mean_image(mean))[0, ..., 0], atol=1e-5)
  moved = mean.copy()
  moved[0, 2] += 2.0  # row 1 is z[2]; the last column is +2 prior standard deviations
  np.testing.assert_allclose(_cell(grid, 1, 4), np.asarray(run.mean_image(moved))[0, ..., 0], atol=1e-5)
  # Default KL: eval.json's, so the rows are ordered as it says.
  kl = plots.latent_kl(run)
  rows = _labels(plots.latent_traversal(run, x[0], num_dims=2).axes[1].get_yticklabels())
  assert [r.split(':')[0] for r in rows] == [f'z[{d}]' for d in np.argsort(-kl)[:2]]


def test_latent_manifold_only_for_two_dimensions(runs):
  run = runs['vae2']
  fig = plots.latent_manifold(run, num_per_side=5)
  grid = _grid(fig)
  assert grid.shape == (5 * 9 + 1, 5 * 9 + 1)
  q05, q95 = -1.6448536, 1.6448536  # the 5% and 95% quantiles of N(0, 1)
  top_left = np.asarray(run.mean_image(np.array([[q05, q95]], np.float32)))[0, ..., 0]  # z[0] low, z[1] high
  bottom_right = np.asarray(run.mean_image(np.array([[q95, q05]], np.float32)))[0, ..., 0]
  np.testing.assert_allclose(_cell(grid, 0, 0), top_left, atol=1e-5)
  np.testing.assert_allclose(_cell(grid, 4, 4), bottom_right, atol=1e-5)
  assert fig.axes[0].get_xlabel().startswith('z[0]') and fig.axes[0].get_ylabel().startswith('z[1]')
  assert _labels(fig.axes[0].get_yticklabels())[0] == '1.64'
  with pytest.raises(plots.NotApplicable, match='latent_dim=2; this run has latent_dim=4'):
    plots.latent_manifold(runs['vae4'])


def test_latent_scatter_uses_pca_above_two_dimensions(runs):
  test = runs['test']
  fig = plots.latent_scatter(runs['vae4'], test.images, test.labels)
  ax = fig.axes[0]
  assert ax.get_xlabel().startswith('principal component 1') and 'PCA of the 4-D' in ax.get_title()
  means = np.asarray(runs['vae4'].encode(test.images)[0])
  xy = decomposition.PCA(n_components=2, random_state=0).fit_transform(means)
  points = ax.collections[0].get_offsets()
  assert len(points) == len(test.images) == 300
  np.testing.assert_allclose(np.sort(np.abs(points[:, 0])), np.sort(np.abs(xy[:, 0])), rtol=1e-4, atol=1e-5)
  assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(c) for c in range(10)]

  ax2 = plots.latent_scatter(runs['vae2'], test.images, test.labels).axes[0]
  assert ax2.get_xlabel() == 'z[0]' and ax2.get_ylabel() == 'z[1]'
  means2 = np.asarray(runs['vae2'].encode(test.images)[0])
  np.testing.assert_allclose(np.sort(ax2.collections[0].get_offsets()[:, 1]), np.sort(means2[:, 1]), atol=1e-6)


def test_training_curves_show_train_and_validation_in_nats(runs):
  run = runs['vae4']
  fig = plots.training_curves(run)
  assert len(fig.axes) == 3
  assert [ax.get_title().split(' ')[0] for ax in fig.axes] == ['ELBO', 'Reconstruction', 'KL(q(z|x)']
  metrics = writers.read_metrics(run.workdir)
  for ax, key in zip(fig.axes, ('elbo_nats', 'recon_nats', 'kl_nats')):
    assert ax.get_ylabel() == 'nats per example' and ax.get_xlabel() == 'training step'
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {'train', 'validation'}
    val = [(r['step'], r[f'validation/{key}']) for r in metrics if f'validation/{key}' in r]
    np.testing.assert_allclose(lines['validation'].get_xdata(), [s for s, _ in val])
    np.testing.assert_allclose(lines['validation'].get_ydata(), [v for _, v in val])
  # The autoencoder logs no ELBO or KL: one panel, the reconstruction.
  ae = plots.training_curves(runs['ae'].workdir)
  assert [ax.get_title().split(' ')[0] for ax in ae.axes] == ['Reconstruction']


def test_autoencoder_skips_what_needs_a_prior(runs):
  run, x = runs['ae'], runs['test'].images
  for draw in (lambda: plots.prior_samples(run, jax.random.key(0)), lambda: plots.latent_traversal(run, x[0]),
               lambda: plots.latent_manifold(run), lambda: plots.latent_kl(run, x)):
    with pytest.raises(plots.NotApplicable, match="model.kind='ae'"):
      draw()
  assert 'z = encoder(x)' in plots.reconstructions(run, x[:8], jax.random.key(0)).axes[0].get_title()
  assert _grid(plots.interpolation(run, x[0], x[1], num_steps=3)).shape == (10, 5 * 9 + 1)
  assert plots.latent_scatter(run, x, runs['test'].labels).axes[0].get_xlabel().startswith('principal component')


def test_load_run_takes_str_pathlib_and_epath(runs):
  workdir = pathlib.Path(runs['vae4'].workdir)
  loaded = [vae_jax.load_run(p) for p in (str(workdir), workdir, epath.Path(workdir))]
  for run in loaded:
    assert isinstance(run.workdir, epath.Path) and str(run.workdir) == str(workdir)
    jax.tree.map(np.testing.assert_array_equal, run.params, loaded[0].params)
  assert checkpoints.read_config(epath.Path(workdir)).model.latent_dim == 4
  params, step = checkpoints.restore_params(str(workdir), 20)
  assert step == 20
  assert vae_jax.load_run(epath.Path(workdir), step=20).step == 20
  with pytest.raises(FileNotFoundError, match='not a vae_jax run directory'):
    vae_jax.load_run(epath.Path(workdir) / 'nothing')
