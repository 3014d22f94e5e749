"""How the training steps reach the device: the training set's feed and the dispatch of its steps.

`DeviceFeed` keeps the training set on the device and gathers, shuffles and
binarizes each batch there; `HostFeed` copies `steps_per_dispatch` batches
from host memory per call, for a training set that does not fit. Both run the
pure train step through a `dispatch.Runner`, and `choose_feed` picks the
dispatch mode (a fused scan, unrolled blocks or one call per step) by
measuring them on the real step when a run starts, then records the choice in
WORKDIR/dispatch.json so that a resumed run runs the same programs.

Epoch e's order is fold_in(shuffle_key, e), and step s's key fold_in(train_key, s)
(inside the step), so every feed and every mode draws the same numbers.
"""

import functools
import json
import pathlib
import time
from typing import TYPE_CHECKING

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.runs import names
from vae_jax.runtime import dispatch
from vae_jax.runtime import files
from vae_jax.runtime import parallel

if TYPE_CHECKING:
  from vae_jax.training import setup as setup_lib

DISPATCH_FILE = names.DISPATCH_FILE
# Where the training set goes when data.placement = 'auto' and the backend does
# not report its memory (the CPU: device memory is host memory).
_HOST_BACKEND_BUDGET_BYTES = 4 << 30
_DEVICE_MEMORY_FRACTION = 0.25


def epoch_permutation(shuffle_key: jax.Array, epoch, num_examples: int) -> jax.Array:
  """The order of the training set in `epoch`."""
  return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_examples)


def _training_set(setup: 'setup_lib.Setup') -> dict[str, np.ndarray]:
  """The training split as a batch-shaped dict: the examples 'x' and their classes 'label' (left out for data
  without labels)."""
  train = setup.dataset.train
  return {'x': train.examples} | ({} if train.labels is None else {'label': train.labels})


class DeviceFeed:
  """The training set on the device: shuffled, gathered and binarized there."""

  placement = 'device'

  def __init__(self, setup: 'setup_lib.Setup', mode: str = 'scan', train_set: dict | None = None):
    """`train_set`: the training set already on the device (another feed's), to share instead of copying."""
    self.train_set = parallel.replicate(_training_set(setup), setup.mesh) if train_set is None else train_set
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
    (state, self._perm), metrics = self._runner((self.train_set, self._key), (state, self._perm), None, num_steps)
    return state, metrics

  def reset(self) -> None:
    """Forgets the cached epoch order, for a state at another step than the last call left."""
    self._perm = None


class HostFeed:
  """The training set in host memory: `num_steps` batches are copied per call."""

  placement = 'host'

  def __init__(self, setup: 'setup_lib.Setup', mode: str = 'scan', train_set=None):
    del train_set  # nothing on the device to share
    self._setup = setup
    self._data = _training_set(setup)
    self._permutation = jax.jit(functools.partial(epoch_permutation, setup.shuffle_key,
                                                  num_examples=len(self._data['x'])))
    self._perms: dict[int, np.ndarray] = {}
    self._key = setup.train_key
    self._sharding = parallel.sharded(setup.mesh, leading_axes=1)
    self._runner = dispatch.Runner(lambda key, state, batch: setup.train_step(state, batch, key), mode)
    self.mode = mode

  def _rows(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self._setup.steps_per_epoch)
    if epoch not in self._perms:
      self._perms = {epoch: np.asarray(self._permutation(epoch))}
    b = self._setup.config.batch_size
    return self._perms[epoch][i * b:(i + 1) * b]

  def run(self, state, step: int, num_steps: int):
    rows = np.stack([self._rows(s) for s in range(step, step + num_steps)])
    batches = {k: parallel.to_global(v[rows], self._sharding) for k, v in self._data.items()}
    return self._runner(self._key, state, batches, num_steps)

  def reset(self) -> None:
    pass


def make_feed(setup: 'setup_lib.Setup', mode: str = 'scan', like=None):
  """DeviceFeed when the training set fits on the device (or data.placement says so), else HostFeed.

  `mode` is how the steps are dispatched (`dispatch.MODES`); a feed `like`
  this one shares its copy of the training set on the device.
  """
  placement = setup.config.data.placement
  if placement == 'auto':
    nbytes = sum(v.nbytes for v in _training_set(setup).values())
    limit = parallel.device_memory_bytes()
    budget = _DEVICE_MEMORY_FRACTION * limit if limit else _HOST_BACKEND_BUDGET_BYTES
    placement = 'device' if nbytes <= budget else 'host'
  feed_cls = DeviceFeed if placement == 'device' else HostFeed
  return feed_cls(setup, mode, getattr(like, 'train_set', None))


def _dispatch_machine(config) -> dict:
  """What a measured dispatch choice depends on besides the run: it is re-measured when this changes."""
  return dict(backend=jax.default_backend(), device_kind=jax.devices()[0].device_kind,
              device_count=jax.device_count(), jax_version=jax.__version__,
              steps_per_dispatch=config.steps_per_dispatch, placement=config.data.placement)


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

  def time_mode(mode):
    first = mode not in probed
    if first:  # made and compiled once; later rounds go on from the state this mode's steps left
      probed[mode] = make_feed(setup, mode, like=next(iter(probed.values()), None))
      holders[mode] = jax.tree.map(lambda a: jnp.array(a, copy=True), state)
    feed = probed[mode]

    def run_steps(n):
      holders[mode], metrics = feed.run(holders[mode], step, n)
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
