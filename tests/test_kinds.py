"""Every kind, prior, flow and likelihood through the same trainer on tiny digits: one step lowers
the loss; resume is bit-exact, EMA included; load_run and the report serve them unchanged."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import vae_jax
from vae_jax import data
from vae_jax.runs import checkpoints
from vae_jax.runs import writers
from vae_jax.training import setup as setup_lib
from vae_jax.training import train
from vae_jax.viz import report

KINDS = {
    'vae': {},
    'ae-categorical': {'model.kind': 'ae', 'data.binarize': 'none', 'model.likelihood': 'categorical'},
    'iwae-logistic-context': {'model.kind': 'iwae', 'model.num_importance_samples': 3, 'data.binarize': 'none',
                              'model.likelihood': 'logistic_mixture', 'model.logistic_components': 3,
                              'model.pixel_context': 1},
    'vae-iaf-mog': {'model.posterior_flow': 'iaf', 'model.flow_hidden_size': 16, 'model.prior': 'mog',
                    'model.prior_components': 4},
    'vae-vampprior': {'model.prior': 'vampprior', 'model.prior_components': 10},
    'hvae-mlp-vampprior': {'model.kind': 'hvae', 'model.prior': 'vampprior', 'model.prior_components': 10,
                           'model.free_bits': 0.05, 'optim.ema_decay': 0.9},
    'cvae-class-prior': {'model.kind': 'cvae', 'model.prior': 'class_gaussian'},
    'vqvae-gradient-codebook-logistic': {
        'model.kind': 'vqvae', 'model.encoder': 'conv', 'model.hidden_sizes': (8, 8), 'model.latent_dim': 4,
        'model.codebook_size': 8, 'model.codebook_ema_decay': 0.0, 'data.binarize': 'none',
        'model.likelihood': 'logistic_mixture', 'model.logistic_components': 2},
    'vqvae-ema-restarts': {'model.kind': 'vqvae', 'model.encoder': 'conv', 'model.hidden_sizes': (8, 8),
                           'model.latent_dim': 4, 'model.codebook_size': 8, 'model.codebook_ema_decay': 0.9,
                           'model.dead_code_threshold': 0.95},
    'annealed_vae': {'model.kind': 'annealed_vae', 'model.capacity_steps': 10},
    'beta_tcvae-mws': {'model.kind': 'beta_tcvae', 'model.tc_estimator': 'mws'},
    'dip_vae-i': {'model.kind': 'dip_vae'},
    'factor_vae': {'model.kind': 'factor_vae', 'model.discriminator_sizes': (16, 16)},
    'hvae-conv': {'model.kind': 'hvae', 'model.encoder': 'conv', 'model.hidden_sizes': (8,),
                  'model.groups_per_stage': (1, 0, 1), 'model.activation': 'gelu', 'optim.ema_decay': 0.9},
}


# The conv hierarchy's step is exercised by the trained run below; compiling it twice more costs 15 s.
@pytest.mark.parametrize('name', [k for k in KINDS if k not in ('hvae-conv', 'vqvae-ema-restarts')])
def test_one_step_lowers_the_loss(make_config, name):
  config = make_config(**KINDS[name])
  setup = setup_lib.make_setup(config, data.load(config))
  state = setup.initial_state()
  step = jax.jit(setup.train_step)
  train_set = setup.dataset.train
  batch = {'x': jnp.asarray(train_set.images[:config.batch_size]),
           'label': jnp.asarray(train_set.labels[:config.batch_size])}
  after, before_metrics = step(state, batch, setup.train_key)
  # The same batch, keys and binarization (the step number is what they fold in), at the new parameters.
  _, after_metrics = step(after.replace(step=state.step), batch, setup.train_key)
  assert int(before_metrics['skipped']) == 0
  assert float(after_metrics['loss']) < float(before_metrics['loss']), (before_metrics['loss'], after_metrics['loss'])
  if config.optim.ema_decay:  # the first update's decay is the ramp's (1 + 1) / (10 + 1), below 0.9
    ema, old, new = (jax.tree.leaves(t)[0] for t in (after.ema_params, state.params, after.params))
    np.testing.assert_allclose(ema, 2 / 11 * old + 9 / 11 * new, rtol=1e-5, atol=1e-7)


def _saved_tree(workdir, step):
  """Everything a checkpoint holds (parameters, EMA, optimizer state), as saved."""
  mngr = checkpoints.manager(workdir, read_only=True)
  try:
    return mngr.restore(step, args=ocp.args.StandardRestore())
  finally:
    mngr.close()


@pytest.fixture(scope='module')
def conv_hvae_run(tmp_path_factory):
  """The conv hierarchy with an EMA, trained for 20 steps with a checkpoint every 10 (test_multidevice
  trains the dense hierarchy with the VampPrior and free bits, on 1 and 8 devices)."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(num_epochs=1, checkpoint_every_steps=10, **KINDS['hvae-conv'])
  workdir = tmp_path_factory.mktemp('hvae-conv')
  return workdir, config, train.train_and_evaluate(config, workdir)


def test_resume_is_bit_exact_with_ema(conv_hvae_run, tmp_path):
  workdir, config, results = conv_hvae_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  steps = sorted(int(p.name) for p in (copy / 'checkpoints').iterdir() if p.name.isdigit())
  for step in steps[1:]:  # as if killed just after the first checkpoint
    shutil.rmtree(copy / 'checkpoints' / str(step))
  (copy / 'eval.json').unlink()
  resumed = train.train_and_evaluate(config, copy)
  a, b = _saved_tree(workdir, steps[-1]), _saved_tree(copy, steps[-1])
  assert a['ema_params'] is not None
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # What evaluation loads: the EMA by default, the parameters themselves when asked (--parameters=final).
  jax.tree.map(np.testing.assert_array_equal, checkpoints.restore_params(workdir)[0], a['ema_params'])
  jax.tree.map(np.testing.assert_array_equal, checkpoints.restore_params(workdir, ema=False)[0], a['params'])
  for key in ('elbo_nats', 'nll_nats', 'kl_per_group_nats', 'active_units_per_group'):
    assert resumed[key] == results[key], key


def test_eval_json_has_per_group_kl_and_active_units(conv_hvae_run):
  workdir, _, results = conv_hvae_run
  assert len(results['kl_per_group_nats']) == len(results['active_units_per_group']) == 2
  assert sum(results['kl_per_group_nats']) == pytest.approx(results['kl_nats'], rel=1e-5)
  assert results['parameters'] == 'ema' and results['kl_per_dim_nats'] is None
  assert results['elbo_nats'] == pytest.approx(results['recon_nats'] - results['kl_nats'], rel=1e-5)
  logged = [r for r in writers.read_metrics(workdir) if 'train/kl_group_1_nats' in r]
  assert logged and all(np.isfinite(r['train/kl_group_0_nats']) for r in logged)
  assert any('validation/active_units_group_1' in r for r in writers.read_metrics(workdir))


def test_load_run_and_report_serve_a_hierarchical_run(conv_hvae_run):
  workdir, config, results = conv_hvae_run
  run = vae_jax.load_run(workdir)
  x = data.load(config).test.images[:5]
  mean, log_var = run.encode(x)
  sizes = run.model.group_sizes
  assert sizes == (2 * 2 * 4, 8 * 8 * 4)  # the top group at 2x2, the next at 8x8 (4x4 holds none), 4 channels
  assert mean.shape == log_var.shape == (5, sum(sizes))
  assert run.decode(mean).shape == (5, 8, 8, 1)
  cold = run.sample(jax.random.key(0), 3, temperature=(0.0, 0.0))
  assert float(jnp.max(jnp.std(cold, axis=0))) < 1e-6  # temperature 0 in every group: one image
  assert run.sample(jax.random.key(0), 3, temperature=0.7).shape == (3, 8, 8, 1)
  log_px = run.log_likelihood(data.load(config).test.images, jax.random.key(2))
  assert -np.mean(log_px) == pytest.approx(results['nll_nats'], abs=0.5)
  md = report.write_report(workdir).read_text()
  assert 'KL of each latent group' in md and 'prior_samples_by_temperature.png' in md
  assert 'latent_traversal.png' in md.split('## Not drawn for this run')[1]  # no per-dimension KL to order by
