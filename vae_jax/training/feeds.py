"""How the training steps reach the device: the training set's feed and the dispatch of its steps.

Every feed gives the same batches: epoch e's order is `epoch_permutation(shuffle_key, e, n)`, step s takes rows
[i*b, (i+1)*b) of it (s = e * steps_per_epoch + i), and step s's key is fold_in(train_key, s) inside the step. So
a run gives the same numbers whichever feed and dispatch mode it takes, and a resumed run continues from the
step alone.

`DeviceFeed` keeps the training set on the device and gathers each batch there. `StreamFeed` is for a training
set that does not fit (data.feed=auto picks it then; data.feed=stream asks for it): a Grain pipeline reads each
step's rows from `dataset.train.examples` (an array in memory, a np.memmap, or a lazy array-like that reads and
decodes files) in `data.workers` worker processes (0: threads of the trainer), ahead of the step; each process of
a multi-host run reads only its own devices' rows of each batch. Either feed hands the split's stored form (e.g.
uint8 codes) to the step, which decodes it. Both run the pure train step through a `dispatch.Runner`, and
`choose_feed` picks the dispatch mode (a fused scan, unrolled blocks or one call per step) by measuring them on
the real step when a run starts, then records the choice in WORKDIR/dispatch.json so that a resumed run runs the
same programs.

The stream's order is computed where the rows are read: each reading process (a Grain worker) draws epoch e's
permutation with jax on its own CPU, from the shuffle key's bits. Grain's pipeline is then a pure function of the
step, which is what makes it resumable by restarting at a step, and it needs nothing from the trainer once started.
The other ways keep the order identical at a higher price: the trainer cannot hand a new epoch's order to running
Grain workers (they only receive the pipeline when they start), so it would have to restart them every epoch or
write each order to a file that they wait for; and Grain's own index shuffle is another order than the device's.
Grain imports jax in every worker anyway, so what this costs is the permutation itself, once per epoch in each
reading process (a sort of n keys: 20 ms for 50,000 examples, 7 s for 6 million on a 2-core CPU). A worker's jax
is held to the CPU before it computes anything (`_worker_init`), so that it never takes an accelerator, and uses
the trainer's PRNG settings; the permutation is integer arithmetic (threefry bits, a stable sort), the same on
every backend, and tests/test_feeds.py checks the stream's batches and parameters against the device feed's.
"""

import collections
import functools
import json
import mmap
import pathlib
import shutil
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING
import weakref

from absl import flags
from absl import logging
import grain
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.data import rows as rows_lib
from vae_jax.runs import names
from vae_jax.runtime import dispatch
from vae_jax.runtime import files
from vae_jax.runtime import parallel

if TYPE_CHECKING:
  from vae_jax.training import setup as setup_lib

DISPATCH_FILE = names.DISPATCH_FILE
# Where the training set goes when data.feed = 'auto' and the backend does not report its memory (the CPU:
# device memory is host memory).
_HOST_BACKEND_BUDGET_BYTES = 4 << 30
_DEVICE_MEMORY_FRACTION = 0.25
# The stream's buffers, in steps (a step's rows of the batch). Each reading process reads this many steps ahead
# with as many threads (file reads and decoding overlap), and each worker holds this many finished steps.
_READ_AHEAD_STEPS = 4
_WORKER_BUFFER_STEPS = 2
# A worker hands arrays over in shared memory from this size, smaller ones pickled through its queue, which is
# faster for them: on 2 cores, 2,046 against 1,205 batches/s of 100 kB (Fashion-MNIST's 128 uint8 images), but
# 278 against 429 of 1.5 MB. (Grain's default puts every array in shared memory.)
_MIN_SHARED_MEMORY_BYTES = 1 << 19


def epoch_permutation(shuffle_key: jax.Array, epoch, num_examples: int) -> jax.Array:
  """The order of the training set in `epoch`."""
  return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_examples)


def _training_set(setup: 'setup_lib.Setup') -> dict:
  """The training split as a batch-shaped dict: the examples 'x' and their classes 'label' (left out for data
  without labels), in the form the split stores them."""
  train = setup.dataset.train
  return {'x': train.examples} | ({} if train.labels is None else {'label': train.labels})


def _nbytes(array) -> int:
  """Bytes of an array or array-like (which may not have `nbytes`)."""
  return int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize


class DeviceFeed:
  """The training set on the device: shuffled, gathered and binarized there."""

  placement = 'device'
  description = 'on the device'

  def __init__(self, setup: 'setup_lib.Setup', mode: str = 'scan', shared: dict | None = None):
    """`shared`: the training set already on the device (another DeviceFeed's `shared`), instead of a copy."""
    if shared is None:
      shared = parallel.replicate({k: np.asarray(v) for k, v in _training_set(setup).items()}, setup.mesh)
    self.shared = shared
    n, b, spe = len(setup.dataset.train.examples), setup.config.batch_size, setup.steps_per_epoch
    shuffle_key, batch_sharding = setup.shuffle_key, parallel.sharded(setup.mesh)
    self._permutation = jax.jit(functools.partial(epoch_permutation, shuffle_key, num_examples=n),
                                out_shardings=parallel.replicated(setup.mesh))
    self._perm = None
    self._key = setup.train_key

    def body(consts, carry, _):
      train_set, key = consts
      state, perm = carry
      epoch, i = jnp.divmod(state.step, spe)
      perm = jax.lax.cond(i == 0, lambda: epoch_permutation(shuffle_key, epoch, n), lambda: perm)
      rows = jax.lax.dynamic_slice_in_dim(perm, i * b, b)
      batch = {k: jax.lax.with_sharding_constraint(jnp.take(v, rows, axis=0), batch_sharding)
               for k, v in train_set.items()}
      state, metrics = setup.train_step(state, batch, key)
      return (state, perm), metrics

    self._runner = dispatch.Runner(body, mode)
    self.mode = mode
    self._spe = spe

  def run(self, state, step: int, num_steps: int):
    """Runs steps [step, step + num_steps); returns the state and per-step metrics."""
    if self._perm is None:
      self._perm = self._permutation(step // self._spe)
    (state, self._perm), metrics = self._runner((self.shared, self._key), (state, self._perm), None, num_steps)
    return state, metrics

  def reset(self) -> None:
    """Forgets the cached epoch order, for a state at another step than the last call left."""
    self._perm = None

  def close(self) -> None:
    pass


def _host_device():
  """This process's CPU device, where the stream computes its order; None where jax is limited to an
  accelerator (JAX_PLATFORMS), which then computes it: the same bits."""
  try:
    return jax.local_devices(backend='cpu')[0]
  except RuntimeError:
    return None


def _worker_init(threefry_partitionable: bool, worker_index: int, worker_count: int) -> None:
  """Runs in each Grain worker before it reads: its jax on the CPU (never taking an accelerator), drawing random
  bits as the trainer's does."""
  del worker_index, worker_count
  jax.config.update('jax_platforms', 'cpu')
  jax.config.update('jax_threefry_partitionable', threefry_partitionable)


class _FileArray:
  """A C-contiguous array stored in a file, memory-mapped where it is read, and only the pages of the rows asked
  for: what the stream reads a memory-mapped training set through, and what Grain's workers receive in place of
  an array (pickling it copies a path, not the data)."""

  def __init__(self, path: str, offset: int, shape: tuple, dtype):
    self.path, self.offset, self.shape, self.dtype = str(path), int(offset), tuple(shape), np.dtype(dtype)
    self._array = None

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, rows):
    if self._array is None:
      start = self.offset - self.offset % mmap.ALLOCATIONGRANULARITY
      with open(self.path, 'rb') as f:
        mapped = mmap.mmap(f.fileno(), self.offset - start + _nbytes(self), access=mmap.ACCESS_READ, offset=start)
      if hasattr(mapped, 'madvise'):
        # A batch's rows are scattered over the file: read their pages only. By default the kernel reads the
        # pages around each one too, which read all of a 1 GiB file to gather 5,000 rows of 784 bytes.
        mapped.madvise(mmap.MADV_RANDOM)
      self._array = np.ndarray(self.shape, self.dtype, mapped, self.offset - start)
    return self._array[rows]

  def __getstate__(self):
    return dict(self.__dict__, _array=None)


def _file_location(array: np.ndarray) -> tuple[str, int] | None:
  """(file, byte offset) of a C-contiguous view of a read-only np.memmap (e.g. a split sliced out of one), or
  None for any other array."""
  root = array
  while isinstance(root.base, np.ndarray):
    root = root.base
  if not (isinstance(root, np.memmap) and isinstance(root.base, mmap.mmap) and root.mode == 'r'
          and array.flags.c_contiguous):
    return None
  mapped_from = root.offset - root.offset % mmap.ALLOCATIONGRANULARITY  # where np.memmap maps the file from
  return root.filename, mapped_from + array.ctypes.data - np.frombuffer(root.base, np.uint8).ctypes.data


def _for_reading(array, directory: pathlib.Path | None, name: str):
  """`array` as the stream reads it: a memory-mapped file, or a selection of its rows (`data.rows.Rows`), in
  place through a `_FileArray`; with worker processes (`directory` given) an in-memory array is written there
  once, for each worker to map rather than receive a copy; any other array-like (e.g. one that reads image
  files) as it is, and as it pickles."""
  if isinstance(array, rows_lib.Rows):
    return rows_lib.Rows(_for_reading(array.base, directory, name), array.index)
  if not isinstance(array, np.ndarray):
    return array
  location = _file_location(array)
  if location is None:
    if directory is None:
      return array
    path = directory / f'{name}.npy'
    np.save(path, array)
    location = str(path), np.load(path, mmap_mode='r').offset
  return _FileArray(*location, array.shape, array.dtype)


def _gather(array, rows: np.ndarray) -> np.ndarray:
  """array[rows], read in increasing row order (a file's pages in sequence), returned in the order asked."""
  order = np.argsort(rows)
  got = np.asarray(array[rows[order]])
  out = np.empty_like(got)
  out[order] = got
  return out


class _StepReader:
  """Step -> this process's rows of that step's batch: the map of the stream's Grain pipeline, run in its reading
  processes. The epoch's order is computed there (module docstring) and kept for the epoch."""

  def __init__(self, arrays: dict, shuffle_key: jax.Array, num_examples: int, batch_size: int,
               steps_per_epoch: int, positions: np.ndarray):
    self._arrays = arrays
    self._key_data = np.asarray(jax.random.key_data(shuffle_key))
    self._key_impl = str(jax.random.key_impl(shuffle_key))
    self._n, self._b, self._spe, self._positions = num_examples, batch_size, steps_per_epoch, positions
    self.__setstate__(self.__getstate__())

  def __getstate__(self):
    return dict(self.__dict__, _lock=None, _epoch=None, _order=None)

  def __setstate__(self, state):
    self.__dict__.update(state, _lock=threading.Lock())

  def order(self, epoch: int) -> np.ndarray:
    with self._lock:  # Grain's reading threads share one reader
      if self._epoch != epoch:
        with jax.default_device(_host_device()):
          key = jax.random.wrap_key_data(self._key_data, impl=self._key_impl)
          self._order = np.asarray(epoch_permutation(key, epoch, self._n))
        self._epoch = epoch
      return self._order

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(int(step), self._spe)
    rows = self.order(epoch)[i * self._b:(i + 1) * self._b][self._positions]
    return {k: _gather(v, rows) for k, v in self._arrays.items()}


def _release(resources: dict) -> None:
  if resources.get('iterator') is not None:
    resources.pop('iterator').close()
  if resources.get('directory') is not None:
    shutil.rmtree(resources.pop('directory'), ignore_errors=True)


class _Stream:
  """The training set's batches in step order, this process's rows of each, read by a Grain pipeline that runs
  ahead of the steps asked for; restarted at the step asked for when it is not the next one."""

  def __init__(self, setup: 'setup_lib.Setup'):
    config = setup.config
    self.workers = config.data.workers
    arrays = _training_set(setup)
    self._resources = {}
    if self.workers:
      self._resources['directory'] = pathlib.Path(tempfile.mkdtemp(prefix='vae_jax_stream_'))
    arrays = {k: _for_reading(v, self._resources.get('directory'), k) for k, v in arrays.items()}
    weakref.finalize(self, _release, self._resources)  # the workers end and the files go with the stream
    self.reader = _StepReader(arrays, setup.shuffle_key, len(arrays['x']), config.batch_size,
                              setup.steps_per_epoch, parallel.process_rows(setup.mesh, config.batch_size))
    self._ready = collections.deque()  # batches read ahead, of the steps before self._next
    self._next = None

  def _start(self, step: int) -> None:
    _release({'iterator': self._resources.pop('iterator', None)})
    if not flags.FLAGS.is_parsed():  # grain 0.2.18 reads an absl flag when it starts workers (google/grain#1355)
      flags.FLAGS.mark_as_parsed()
    pipeline = grain.MapDataset.range(step, sys.maxsize).map(self.reader).to_iter_dataset(
        grain.ReadOptions(num_threads=_READ_AHEAD_STEPS, prefetch_buffer_size=_READ_AHEAD_STEPS))
    pipeline = grain.experimental.WithOptionsIterDataset(
        pipeline, grain.experimental.DatasetOptions(min_shm_size=_MIN_SHARED_MEMORY_BYTES))
    pipeline = pipeline.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=self.workers, per_worker_buffer_size=_WORKER_BUFFER_STEPS),
        worker_init_fn=functools.partial(_worker_init, jax.config.jax_threefry_partitionable))
    self._resources['iterator'] = iter(pipeline)
    self._ready.clear()
    self._next = step

  def take(self, step: int, num_steps: int) -> list[dict[str, np.ndarray]]:
    """The batches of steps [step, step + num_steps)."""
    if self._resources.get('closed'):
      raise RuntimeError('this stream was closed (its feed\'s close()); make another feed')
    if self._next is None or step != self._next - len(self._ready):
      self._start(step)
    self.read_ahead(num_steps)
    return [self._ready.popleft() for _ in range(num_steps)]

  def read_ahead(self, num_steps: int) -> None:
    """Takes batches from the pipeline until `num_steps` are ready, each copied out of Grain's shared memory."""
    while len(self._ready) < num_steps:
      self._ready.append({k: np.array(v) for k, v in next(self._resources['iterator']).items()})
      self._next += 1

  def close(self) -> None:
    _release(self._resources)
    self._resources['closed'] = True
    self._ready.clear()


class StreamFeed:
  """The training set read by Grain from where it is stored, `steps_per_dispatch` batches per call, the next
  call's read while the device runs this call's steps."""

  placement = 'stream'

  def __init__(self, setup: 'setup_lib.Setup', mode: str = 'scan', shared: _Stream | None = None):
    """`shared`: another StreamFeed's stream of the same training set (another stage's feed), to read on."""
    self.shared = _Stream(setup) if shared is None else shared
    w = self.shared.workers
    self.description = ('streamed from the host by Grain, ' +
                        (f'{w} worker process{"es" if w > 1 else ""}' if w else 'read in the trainer'))
    self._sharding = parallel.sharded(setup.mesh, leading_axes=1)
    self._batch_size = setup.config.batch_size
    self._key = setup.train_key
    self._runner = dispatch.Runner(lambda key, state, batch: setup.train_step(state, batch, key), mode)
    self.mode = mode

  def batches(self, step: int, num_steps: int) -> dict[str, jax.Array]:
    """The batches of steps [step, step + num_steps) as global arrays (num_steps, batch_size, ...), sharded over
    the devices: what `run` trains on."""
    parts = self.shared.take(step, num_steps)
    return {k: jax.make_array_from_process_local_data(
        self._sharding, np.stack([p[k] for p in parts]), (num_steps, self._batch_size, *parts[0][k].shape[1:]))
            for k in parts[0]}

  def train(self, state, batches: dict[str, jax.Array]):
    """Runs one step per batch of `batches`; returns the state and per-step metrics."""
    return self._runner(self._key, state, batches, len(batches['x']))

  def run(self, state, step: int, num_steps: int):
    """Runs steps [step, step + num_steps); returns the state and per-step metrics."""
    state, metrics = self.train(state, self.batches(step, num_steps))
    self.shared.read_ahead(num_steps)  # the dispatch returned before its steps ran
    return state, metrics

  def reset(self) -> None:
    pass  # `run` restarts the stream when asked for another step than the next

  def close(self) -> None:
    """Ends the workers and removes their files now (else when the stream is garbage collected)."""
    self.shared.close()


FEEDS = {'device': DeviceFeed, 'stream': StreamFeed}


def device_budget_bytes() -> float:
  """The most a training set may take to go on the device with data.feed=auto."""
  limit = parallel.device_memory_bytes()
  return _DEVICE_MEMORY_FRACTION * limit if limit else _HOST_BACKEND_BUDGET_BYTES


def training_set_bytes(setup: 'setup_lib.Setup') -> int:
  """The training set's bytes as stored, labels included."""
  return sum(_nbytes(v) for v in _training_set(setup).values())


def make_feed(setup: 'setup_lib.Setup', mode: str = 'scan', like=None):
  """The feed data.feed names; for 'auto', DeviceFeed when the training set fits the device's budget, else
  StreamFeed.

  `mode` is how the steps are dispatched (`dispatch.MODES`); a feed `like` this one (another stage's, or another
  mode's) shares its copy of the training set on the device, or its stream.
  """
  feed = setup.config.data.feed
  if feed == 'auto':
    feed = 'device' if training_set_bytes(setup) <= device_budget_bytes() else 'stream'
  feed_cls = FEEDS[feed]
  return feed_cls(setup, mode, like.shared if isinstance(like, feed_cls) else None)


def _dispatch_machine(config) -> dict:
  """What a measured dispatch choice depends on besides the run: it is re-measured when this changes."""
  return dict(backend=jax.default_backend(), device_kind=jax.devices()[0].device_kind,
              device_count=jax.device_count(), jax_version=jax.__version__,
              steps_per_dispatch=config.steps_per_dispatch,
              placement=config.data.feed)  # named as before data.feed's rename: old records still match


def choose_feed(setup: 'setup_lib.Setup', state, workdir: pathlib.Path | None = None, steps_left: int | None = None):
  """The feed to train with, dispatching steps the fastest way, and why (for the log).

  `config.dispatch` other than 'auto' is taken as given. With 'auto' the
  choice recorded in WORKDIR/dispatch.json is reused when it was measured on
  the same kind of machine, so a resumed run runs the same programs (and
  resumes bit for bit); otherwise each mode runs a few steps on a copy of
  `state` and `dispatch.choose` picks one (the default unless another is
  clearly faster), which is recorded. A run with fewer than
  `dispatch.MIN_STEPS_TO_MEASURE` steps left (`steps_left`) takes scan unmeasured.
  """
  config = setup.config
  if config.dispatch != 'auto':
    return make_feed(setup, config.dispatch), 'set by config.dispatch'
  machine = _dispatch_machine(config)
  path = workdir / DISPATCH_FILE if workdir is not None else None
  if path is not None and path.exists():
    try:
      record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      logging.warning('%s is damaged (%s); measuring the dispatch modes again', path, files.damage(path, e))
      record = {}
    if record.get('machine') == machine and record.get('mode') in dispatch.MODES:
      return make_feed(setup, record['mode']), f'measured at the start of this run: {record.get("measured")}'
  if steps_left is not None and steps_left < dispatch.MIN_STEPS_TO_MEASURE:
    return make_feed(setup, 'scan'), (f'{steps_left} steps left, too few to be worth measuring the modes '
                                      f'(fewer than {dispatch.MIN_STEPS_TO_MEASURE})')
  probe_steps = min(config.steps_per_dispatch, dispatch.PROBE_STEPS)
  step, probed, holders = int(jax.device_get(state.step)), {}, {}
  position = [step]  # the probe's calls take the steps in turn, so that a stream reads on, never restarting

  def time_mode(mode):
    first = mode not in probed
    if first:  # made and compiled once; later rounds go on from the state this mode's steps left
      probed[mode] = make_feed(setup, mode, like=next(iter(probed.values()), None))
      holders[mode] = jax.tree.map(lambda a: jnp.array(a, copy=True), state)
    feed = probed[mode]

    def run_steps(n):
      holders[mode], metrics = feed.run(holders[mode], position[0], n)
      position[0] += n
      return metrics['loss']

    return dispatch.seconds_per_step(run_steps, probe_steps, warm_up=first)

  start = time.perf_counter()
  mode, timings = dispatch.choose(time_mode)
  measured = (f'{dispatch.describe(timings, config.batch_size)}, the fastest of {dispatch.PROBE_ROUNDS} rounds of '
              f'{probe_steps}-step calls; {dispatch.DEFAULT_MODE} unless another is {dispatch.MARGIN:.0%} faster; '
              f'{time.perf_counter() - start:.0f} s to compile and time them')
  if path is not None and jax.process_index() == 0:
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps({'mode': mode, 'measured': measured, 'machine': machine,
                               'seconds_per_step': timings}, indent=2) + '\n')
    tmp.replace(path)
  feed = probed[mode]
  feed.reset()
  return feed, f'chosen by measurement: {measured}'
