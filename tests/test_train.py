"""End to end on digits: training lowers the validation loss, resuming reproduces an
uninterrupted run, a finished run is not retrained, and load_run reads it back."""

import json
import shutil

import jax
import numpy as np
import pytest

import vae_jax
from vae_jax import data
from vae_jax import errors
from vae_jax.runs import checkpoints
from vae_jax.runs import writers
from vae_jax.training import train


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('run')
  config = tiny_config()
  results = train.train_and_evaluate(config, workdir)
  return workdir, config, results


def test_training_lowers_validation_loss(finished_run):
  workdir, _, _ = finished_run
  val = [r['validation/elbo_nats'] for r in writers.read_metrics(workdir) if 'validation/elbo_nats' in r]
  assert len(val) == 4
  assert val[-1] > val[0] + 1.0, val  # ELBO up by more than a nat: the loss went down


def test_workdir_contents(finished_run):
  workdir, config, results = finished_run
  for name in ('config.json', 'metrics.jsonl', 'eval.json', 'samples.png', 'reconstructions.png'):
    assert (workdir / name).is_file(), name
  assert list(workdir.glob('events.out.tfevents.*'))
  assert all('step' in r for r in writers.read_metrics(workdir))
  saved = json.loads((workdir / 'eval.json').read_text())
  assert saved == results
  for key in ('elbo_nats', 'nll_nats', 'recon_nats', 'kl_nats', 'bits_per_dim'):
    assert np.isfinite(saved[key]), key
  assert saved['num_importance_samples'] == config.eval.num_importance_samples
  # The importance-sampled bound is at least as tight as the ELBO; the terms add up.
  assert -saved['nll_nats'] >= saved['elbo_nats']
  assert saved['elbo_nats'] == pytest.approx(saved['recon_nats'] - saved['kl_nats'], rel=1e-5)
  assert saved['bits_per_dim'] == pytest.approx(saved['nll_nats'] / (64 * np.log(2)))
  on_disk = checkpoints.read_config(workdir)
  assert on_disk.model.latent_dim == config.model.latent_dim
  assert on_disk.resolved.image_shape == [8, 8, 1]
  assert data.ExampleSpec.from_json(on_disk.resolved.example_spec) == data.ImageSpec(8, 8, 1, levels=17)


def test_finished_run_is_not_retrained(finished_run):
  workdir, config, results = finished_run
  before = (workdir / 'metrics.jsonl').read_text()
  assert train.train_and_evaluate(config, workdir) == results
  assert (workdir / 'metrics.jsonl').read_text() == before


def test_resume_matches_uninterrupted_run(finished_run, tmp_path):
  workdir, config, results = finished_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  steps = sorted(int(p.name) for p in (copy / 'checkpoints').iterdir() if p.name.isdigit())
  final, earlier = steps[-1], steps[-3]
  for step in steps:  # as if the job had been killed just after saving `earlier`
    if step > earlier:
      shutil.rmtree(copy / 'checkpoints' / str(step))
  (copy / 'eval.json').unlink()
  resumed = train.train_and_evaluate(config, copy)
  a, _ = checkpoints.restore_params(workdir, final)
  b, _ = checkpoints.restore_params(copy, final)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6), a, b)
  assert resumed['elbo_nats'] == pytest.approx(results['elbo_nats'], abs=1e-4)
  logged = [r['step'] for r in writers.read_metrics(copy) if 'train/loss' in r]
  assert logged == sorted(set(logged)), 'a resumed run must not log a step twice'


def test_other_config_on_same_workdir_is_refused(finished_run):
  workdir, config, _ = finished_run
  other = config.copy_and_resolve_references()
  other.model.latent_dim = 7
  message = 'holds a run with model.latent_dim=4, but this config has model.latent_dim=7'
  with pytest.raises(errors.WorkdirError, match=message):
    train.train_and_evaluate(other, workdir)


def test_load_run(finished_run):
  workdir, config, results = finished_run
  run = vae_jax.load_run(workdir)
  assert run.config.model.latent_dim == config.model.latent_dim
  assert run.step == config.num_epochs * (1297 // config.batch_size)
  x = data.load(config).test.images
  mean, log_var = run.encode(x[:5])
  assert mean.shape == log_var.shape == (5, config.model.latent_dim)
  assert run.decode(mean).shape == (5, 8, 8, 1)
  samples = run.sample(jax.random.key(0), 6)
  assert samples.shape == (6, 8, 8, 1) and 0 <= float(samples.min()) and float(samples.max()) <= 1
  assert run.reconstruct(x[:5], jax.random.key(1)).shape == (5, 8, 8, 1)
  log_px = run.log_likelihood(x, jax.random.key(2), num_samples=config.eval.num_importance_samples)
  assert log_px.shape == (300,)
  # Same model, same test set, other random draws: the same NLL up to Monte Carlo error.
  assert -np.mean(log_px) == pytest.approx(results['nll_nats'], abs=0.3)


def test_a_run_from_before_example_specs_loads(finished_run, tmp_path):
  """A config.json with resolved.image_shape and no resolved.example_spec: its model is built for those images."""
  workdir, _, _ = finished_run
  old = tmp_path / 'old'
  shutil.copytree(workdir, old)
  saved = json.loads((old / 'config.json').read_text())
  del saved['resolved']['example_spec']
  (old / 'config.json').write_text(json.dumps(saved))
  run, new = vae_jax.load_run(old), vae_jax.load_run(workdir)
  assert run.spec == data.ImageSpec(8, 8, 1) and run.image_shape == (8, 8, 1)
  z = np.zeros((2, new.model.latent_dim), np.float32)
  np.testing.assert_array_equal(run.mean_image(z), new.mean_image(z))


@pytest.mark.parametrize('overrides', [
    {'model.kind': 'ae'},
    {'model.encoder': 'conv', 'model.hidden_sizes': (8, 16), 'model.likelihood': 'gaussian',
     'model.gaussian_variance': 'learned', 'data.binarize': 'none'},
    {'model.beta': 4.0, 'model.kl_warmup_epochs': 0.5, 'data.binarize': 'static'},
    {'model.kind': 'iwae', 'model.num_importance_samples': 5},
])
def test_variants_train_and_evaluate(make_config, tmp_path, overrides):
  config = make_config(num_epochs=1, **overrides)
  results = train.train_and_evaluate(config, tmp_path)
  assert np.isfinite(results['recon_nats'])
  if config.model.kind == 'ae':
    assert results['nll_nats'] is None and results['elbo_nats'] is None
    assert not (tmp_path / 'samples.png').exists()
    assert vae_jax.load_run(tmp_path).encode(np.zeros((2, 8, 8, 1), np.float32))[1] is None
  else:
    assert np.isfinite(results['nll_nats'])
  metrics = writers.read_metrics(tmp_path)
  if config.model.kl_warmup_epochs:
    weights = [r['train/kl_weight'] for r in metrics if 'train/kl_weight' in r]
    assert weights[0] < config.model.beta and weights[-1] == pytest.approx(config.model.beta)


def test_iwae_with_one_sample_trains_like_the_vae(make_config, tmp_path):
  vae = train.train_and_evaluate(make_config(), tmp_path / 'vae')
  iwae = train.train_and_evaluate(make_config(**{'model.kind': 'iwae', 'model.num_importance_samples': 1}),
                                  tmp_path / 'iwae')
  assert iwae['elbo_nats'] == pytest.approx(vae['elbo_nats'], abs=1.0)
  assert iwae['nll_nats'] == pytest.approx(vae['nll_nats'], abs=1.0)
