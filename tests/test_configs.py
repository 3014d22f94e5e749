"""Every config file loads, validates and keeps the public field names; the
learning-rate schedules do what their names say."""

import importlib.util
import json
import pathlib

import pytest

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.training import objectives
from vae_jax.training import optimizer

CONFIGS = sorted((pathlib.Path(__file__).resolve().parents[1] / 'configs').glob('*.py'))
PUBLIC = ('seed', 'num_epochs', 'batch_size', 'learning_rate', 'data.name', 'data.binarize', 'model.kind',
          'model.encoder', 'model.hidden_sizes', 'model.latent_dim', 'model.beta', 'model.likelihood',
          'model.prior', 'model.posterior_flow', 'eval.num_importance_samples')


def _load(path, *args):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*args)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_validates(path):
  config = _load(path)
  config_lib.validate(config)
  for field in PUBLIC:
    node = config
    for part in field.split('.'):
      node = node[part]
  assert path.stem.split('_')[0] in config.data.name.replace('fashion_mnist', 'fashion') + str(config.data.path or '')


def test_iwae_paper_config_has_both_kinds():
  path = next(p for p in CONFIGS if p.stem == 'mnist_iwae_paper')
  vae, iwae = _load(path, 'vae'), _load(path, 'iwae')
  assert (vae.model.kind, vae.model.num_importance_samples) == ('vae', 1)
  assert (iwae.model.kind, iwae.model.num_importance_samples) == ('iwae', 50)
  assert iwae.num_epochs == sum(3**i for i in range(8)) == 3280


def test_iwae_stage_schedule(make_config):
  config = make_config(**{'optim.schedule': 'iwae_stages', 'optim.num_stages': 3})
  schedule = optimizer.learning_rate_schedule(config, total_steps=260, steps_per_epoch=20)
  lr = config.learning_rate
  # Stage i lasts 3^i epochs (20 steps each) at lr * 10^(-i/7).
  for step, stage in [(0, 0), (19, 0), (20, 1), (79, 1), (80, 2), (259, 2)]:
    assert float(schedule(step)) == pytest.approx(lr * 10**(-stage / 7), rel=1e-5), step


def test_cosine_schedule_with_warmup(make_config):
  config = make_config(**{'optim.warmup_steps': 10, 'optim.final_lr_fraction': 0.1})
  schedule = optimizer.learning_rate_schedule(config, total_steps=110, steps_per_epoch=20)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(config.learning_rate)
  assert float(schedule(110)) == pytest.approx(0.1 * config.learning_rate, rel=1e-4)


@pytest.mark.parametrize('field,value,message', [
    ('model.kind', 'gan', "model.kind='gan' is not allowed; use one of vae, iwae, ae"),
    ('model.num_importance_samples', 0, 'model.num_importance_samples=0 must be >= 1'),
    ('optim.schedule', 'linear', "optim.schedule='linear' is not allowed"),
    ('data.feed', 'host', "data.feed='host' is not allowed; use one of auto, device, stream"),
    ('model.dtype', 'float16', "model.dtype='float16' is not allowed; use one of float32, bfloat16"),
])
def test_validation_messages(make_config, field, value, message):
  with pytest.raises(errors.ConfigError, match=message.replace('(', r'\(')):
    config_lib.validate(make_config(**{field: value}))


def test_unknown_fields_and_wrong_types_in_a_python_config():
  config = config_lib.base_config()
  config.model.latnt_dim = 3
  with pytest.raises(errors.ConfigError, match='unknown config field model.latnt_dim; did you mean model.latent_dim'):
    config_lib.validate(config)
  # A config read back from JSON (or built from a dict) is not type-checked by ml_collections itself.
  as_dict = config_lib.base_config().to_dict()
  as_dict['model']['latent_dim'] = 2.5
  import ml_collections  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.ConfigError, match='model.latent_dim=2.5 must be of type int, not float'):
    config_lib.validate(ml_collections.ConfigDict(as_dict))


def test_a_run_written_before_new_fields_reads_with_their_defaults(tmp_path):
  """config.json of a run that predates model.prior, groups_per_stage, ema_decay...: loaded with the
  defaults (which keep the old behaviour), and the same config resumes it rather than being refused."""
  from vae_jax.runs import checkpoints  # pylint: disable=g-import-not-at-top
  from vae_jax.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  old = json.loads(config.to_json_best_effort())
  for field in ('prior', 'prior_components', 'posterior_flow', 'groups_per_stage', 'free_bits'):
    del old['model'][field]
  del old['optim']['ema_decay']
  (tmp_path / 'config.json').write_text(json.dumps(old))
  loaded = checkpoints.read_config(tmp_path)
  assert loaded.model.prior == 'standard_normal' and loaded.optim.ema_decay == 0.0
  assert list(loaded.model.groups_per_stage) == [1, 1]
  workdir_lib.prepare(tmp_path, config, {}, replace_run=False)  # not refused


def test_combinations_a_kind_cannot_honour_are_refused():
  for overrides, message in (
      ({'model.kind': 'iwae', 'model.num_importance_samples': 5, 'model.free_bits': 0.5},
       'model.free_bits=0.5 applies'),
      ({'model.kind': 'ae', 'model.prior': 'vampprior'}, 'model.kind=ae has no prior'),
      ({'model.kind': 'hvae', 'model.encoder': 'conv', 'model.groups_per_stage': (1, 0)}, 'must hold a latent group'),
      ({'model.likelihood': 'categorical'}, 'use data.binarize=none with the categorical likelihood')):
    config = config_lib.base_config()
    for key, value in overrides.items():
      section, field = key.split('.')
      config[section][field] = value
    with pytest.raises(errors.ConfigError, match=message):
      config_lib.validate(config)
      objectives.check_config(config)  # the kind's objective's own checks, made with the objective
