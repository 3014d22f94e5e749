"""The streamed feed gives the on-device feed's batches: the same epoch orders and rows, from memory or a
memory-mapped file, in the trainer or in Grain's worker processes, and the same again after a restart."""

import dataclasses

import jax
import numpy as np
import pytest

from vae_jax import data
from vae_jax.data import rows as rows_lib
from vae_jax.training import feeds
from vae_jax.training import setup as setup_lib

from conftest import tiny_config


def _setup(feed, workers=0, examples=None):
  """The tiny config's setup with data.feed=`feed`; `examples` replaces the stored training examples."""
  config = tiny_config(**{'data.feed': feed, 'data.workers': workers})
  dataset = data.load(config)
  if examples is not None:
    dataset = dataclasses.replace(dataset, train=dataclasses.replace(dataset.train, examples=examples))
  return setup_lib.make_setup(config, dataset)


def _device_batches(setup, start, stop):
  """Steps [start, stop)'s examples in the order the device feed takes them (its jitted permutation)."""
  x, b, spe = np.asarray(setup.dataset.train.examples), setup.config.batch_size, setup.steps_per_epoch
  permutation = jax.jit(lambda epoch: feeds.epoch_permutation(setup.shuffle_key, epoch, len(x)))
  return np.stack([x[np.asarray(permutation(s // spe))[(s % spe) * b:(s % spe + 1) * b]] for s in range(start, stop)])


def _read(feed, calls):
  return np.concatenate([np.asarray(feed.batches(step, n)['x']) for step, n in calls])


@pytest.fixture(scope='module')
def memmapped(tmp_path_factory):
  """The tiny config's training examples as a slice of a memory-mapped .npy file (rows 5 onwards)."""
  examples = data.load(tiny_config()).train.examples
  path = tmp_path_factory.mktemp('memmap') / 'examples.npy'
  np.save(path, np.concatenate([examples[:5], examples]))
  return path, np.load(path, mmap_mode='r')[5:]


def test_a_memmapped_split_is_read_in_place(memmapped, tmp_path):
  path, examples = memmapped
  shared = feeds._for_reading(examples, tmp_path, 'x')  # pylint: disable=protected-access
  assert shared.path == str(path) and not list(tmp_path.iterdir())  # the file itself, nothing copied
  rows = np.array([7, 0, 300, 2])
  np.testing.assert_array_equal(shared[rows], examples[rows])
  held_out = feeds._for_reading(rows_lib.Rows(examples, [3, 1, 4]), tmp_path, 'x')  # pylint: disable=protected-access
  assert held_out.base.path == str(path) and not list(tmp_path.iterdir())
  np.testing.assert_array_equal(held_out[np.array([2, 0])], examples[[4, 3]])
  in_memory = feeds._for_reading(np.asarray(examples[:10]) + 0, tmp_path, 'y')  # pylint: disable=protected-access
  np.testing.assert_array_equal(in_memory[np.arange(10)], examples[:10])


@pytest.mark.parametrize('workers,stored', [(0, 'memory'), (1, 'memmap')])
def test_stream_takes_the_device_order(memmapped, workers, stored):
  """Steps 15-35 cross two epoch boundaries (20 steps an epoch)."""
  setup = _setup('stream', workers, memmapped[1] if stored == 'memmap' else None)
  feed = feeds.make_feed(setup)
  assert feed.placement == 'stream' and setup.steps_per_epoch == 20
  np.testing.assert_array_equal(_read(feed, [(15, 10), (25, 10)]), _device_batches(setup, 15, 35))
  feed.close()


def test_a_restarted_stream_reads_what_an_uninterrupted_one_does():
  setup = _setup('stream')  # in the trainer: a restart in workers restarts the same pipeline there
  uninterrupted = feeds.make_feed(setup)
  want = _read(uninterrupted, [(0, 10), (10, 10), (20, 10), (30, 10)])
  restarted = feeds.make_feed(setup)
  np.testing.assert_array_equal(_read(restarted, [(13, 7), (20, 3), (23, 17)]), want[13:])
  np.testing.assert_array_equal(_read(uninterrupted, [(4, 6)]), want[4:10])  # asked for an earlier step
  uninterrupted.close()
  restarted.close()


def test_stream_and_device_train_the_same_parameters():
  """Four dispatches of 10 steps (two epochs): the same parameters and losses, bit for bit."""
  out = {}
  for feed_name in ('device', 'stream'):
    setup = _setup(feed_name)
    feed = feeds.make_feed(setup)
    assert feed.placement == feed_name
    state, losses = setup.initial_state(), []
    for step in range(0, 40, 10):
      state, metrics = feed.run(state, step, 10)
      losses.append(np.asarray(metrics['loss']))
    out[feed_name] = np.concatenate(losses), jax.device_get(state.params)
    feed.close()
  np.testing.assert_array_equal(out['stream'][0], out['device'][0])
  jax.tree.map(np.testing.assert_array_equal, out['stream'][1], out['device'][1])


def test_auto_streams_a_training_set_over_the_budget(monkeypatch):
  monkeypatch.setattr(feeds, '_HOST_BACKEND_BUDGET_BYTES', 1000)
  monkeypatch.setattr(feeds.parallel, 'device_memory_bytes', lambda: None)
  assert feeds.make_feed(_setup('auto')).placement == 'stream'
  monkeypatch.setattr(feeds, '_HOST_BACKEND_BUDGET_BYTES', 1 << 30)
  assert feeds.make_feed(_setup('auto')).placement == 'device'
