"""Shared test helpers: tiny configs on scikit-learn's bundled digits."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

# One XLA compilation cache for the whole session, shared with the subprocesses the tests start (they
# inherit the environment): the tiny runs compile the same programs many times over. A fresh directory
# per session, so nothing carries over from another checkout or version.
_CACHE_DIR = None
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE_DIR = os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='vae_jax_tests_xla_cache_')
# The classifiers the tests train (vae_jax.evaluation.classifier) are cached for the session only, never in ~/.cache.
_CLASSIFIER_CACHE = None
if 'VAE_JAX_CACHE' not in os.environ:
  _CLASSIFIER_CACHE = os.environ['VAE_JAX_CACHE'] = tempfile.mkdtemp(prefix='vae_jax_tests_cache_')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.3')
# The suite's programs are tiny: XLA's compile time is most of the suite, their run time a sliver. Fewer
# optimization passes compile about twice as fast (a tiny training run: 20 s -> 11 s of compiling). Every
# process of the suite uses the same setting, so runs still compare bit for bit.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# XLA:CPU's older loop emitters compile the suite's small programs in half the time of its fusion
# emitters (a tiny training run: 6.7 s -> 2.7 s of backend compiling). These are XLA debug flags, and
# XLA aborts on a flag it no longer knows, so they are tried once in a child process and kept only if
# that child starts. Subprocesses inherit them; tests that set XLA_FLAGS themselves append to it.
_FAST_COMPILE_FLAGS = '--xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1'
if 'VAE_JAX_TESTS_XLA_FLAGS_TRIED' not in os.environ:
  os.environ['VAE_JAX_TESTS_XLA_FLAGS_TRIED'] = '1'
  _flags = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE_FLAGS}".strip()
  _probe = subprocess.run([sys.executable, '-c', 'import jax; jax.jit(lambda x: x + 1)(1.0).block_until_ready()'],
                          env=dict(os.environ, XLA_FLAGS=_flags, JAX_PLATFORMS='cpu'), capture_output=True,
                          check=False, timeout=120)
  if _probe.returncode == 0:
    os.environ['XLA_FLAGS'] = _flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from vae_jax import config_lib  # pylint: disable=wrong-import-position


def tiny_config(**overrides):
  """A digits MLP VAE small enough to train in a few seconds on one CPU core."""
  c = config_lib.base_config()
  c.data.name = 'digits'
  c.data.num_validation = 200
  c.num_epochs = 4
  c.batch_size = 64
  c.model.hidden_sizes = (64,)
  c.model.latent_dim = 4
  c.eval.every_epochs = 1
  c.eval.batch_size = 100
  c.eval.num_importance_samples = 10
  c.eval.sample_chunk = 4
  c.eval.num_images = 16
  c.eval.measures = False  # on where a test reads them (tiny_vae_run, the cvae): they cost seconds a run
  c.steps_per_dispatch = 10
  c.dispatch = 'scan'  # fixed, so runs in different workdirs compare bit for bit; test_dispatch covers auto
  c.log_every_steps = 10
  c.checkpoint_every_steps = 20
  c.keep_checkpoints = 10
  for key, value in overrides.items():
    node = c
    *path, leaf = key.split('.')
    for p in path:
      node = node[p]
    node[leaf] = value
  return c


@pytest.fixture
def make_config():
  return tiny_config


@pytest.fixture(scope='session')
def tiny_vae_run(tmp_path_factory):
  """The tiny config trained once for the session: (workdir, final eval results). Tests only read it
  and add their own eval files."""
  from vae_jax.training import train  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('tiny_vae_run')
  return workdir, train.train_and_evaluate(tiny_config(**{'eval.measures': True}), workdir)


# The longest test files first (seconds on 2 cores, 2026-11-30), so that the two workers end together
# rather than one waiting on the other's last long file; with `--no-loadscope-reorder` (pyproject.toml)
# pytest-xdist hands out the files in this order. Files not named keep their order after these.
_LONGEST_FIRST = ('test_kinds.py', 'test_sweeps.py', 'test_multidevice.py', 'test_robustness.py', 'test_bitsback.py',
                  'test_vqvae.py', 'test_models.py', 'test_cli.py', 'test_run_faults.py', 'test_evaluate.py',
                  'test_train.py', 'test_report.py')


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  for directory in (_CACHE_DIR, _CLASSIFIER_CACHE):
    if directory is not None:
      shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def finished(tiny_vae_run):
  """The workdir of the session's tiny trained run (tests that change it work on a copy)."""
  return tiny_vae_run[0]

