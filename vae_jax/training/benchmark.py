"""Training throughput: vae_jax against a plain jitted loop and against PyTorch (`run`, what
`python -m vae_jax.benchmark` runs).

For each config, in one process: images/s, ms/step and achieved GFLOP/s (model
FLOPs from XLA's cost analysis of one train step, as a share of the device's
measured fp32 matmul peak) of
  - the plain loop most example code uses: one jitted step per Python
    iteration, batches copied from the host;
  - vae_jax's loop, dispatched the way `feeds.choose_feed` picks (each mode's
    probe figures are printed too);
  (these two timed in turn, three rounds each, so that the machine's speed,
  which drifts, moves both alike; each loop's figure is its fastest round)
  - the same network in PyTorch (`pytorch_baseline`), when torch is installed
    (`pip install -e '.[benchmark]'`);
  - with `stream`, vae_jax's loop fed by Grain from the host (`feeds.StreamFeed`,
    data.workers processes) instead of from the device, same steps and dispatch,
    timed in turn with the others, and what bounds it: its input pipeline
    alone (reading, stacking and copying batches, no step) against its steps
    alone (on batches already on the device);
and the ratios. `larger_than_memory` trains a config's model streamed from a
memory-mapped uint8 file bigger than the device budget, its pages evicted from
the page cache first so that batches come from the disk, with the same
pipeline-or-step analysis. Figures for this project's machines are in
BENCHMARKS.md.
"""

import copy
import mmap as mmap_lib
import os
import pathlib
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax.runtime import dispatch
from vae_jax.training import feeds
from vae_jax.training import pytorch_baseline
from vae_jax.training import setup as setup_lib
from vae_jax.training import step as step_lib

DEFAULT_CONFIGS = ('configs/fashion_mnist.py', 'configs/fashion_mnist_conv.py')


def matmul_peak_gflops(seconds: float = 2.0) -> tuple[float, int]:
  """Measured fp32 matmul throughput of device 0 (default precision), and the size used."""
  n = 2048 if jax.default_backend() == 'cpu' else 8192
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  matmul = jax.jit(lambda a, b: a @ b)
  matmul(a, b).block_until_ready()
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    out = matmul(a, b)
    count += 1
    if count % 8 == 0:
      out.block_until_ready()
  out.block_until_ready()
  return 2 * n**3 * count / (time.perf_counter() - start) / 1e9, n


def step_gflop(setup: setup_lib.Setup, state, batch) -> float:
  """FLOPs of one train step, from XLA's cost analysis of the compiled step."""
  return dispatch.compiled_gflop(jax.jit(setup.train_step).lower(state, batch, setup.key(0)).compile())


def _time_loop(run_once, steps_per_call: int, seconds: float) -> float:
  """Seconds per step of `run_once` (which must return something to block on), after a warm-up call."""
  return dispatch.seconds_per_step(lambda _: run_once(), steps_per_call, seconds)


ROUNDS = 3  # the plain loop and vae_jax's are timed in turn this many times; each loop's figure is its fastest


def feed_loop(setup: setup_lib.Setup, feed, state=None):
  """A call running `feed`'s next `steps_per_dispatch` steps, as the train loop does."""
  spd = setup.config.steps_per_dispatch
  holder = {'state': setup.initial_state() if state is None else state, 'step': 0}

  def run_once():
    holder['state'], metrics = feed.run(holder['state'], holder['step'], spd)
    holder['step'] += spd
    return metrics['loss']

  return run_once


def vae_jax_loop(setup: setup_lib.Setup):
  """vae_jax's own loop: a call running `steps_per_dispatch` steps, that count, the feed it chose, and why."""
  state = setup.initial_state()
  feed, why = feeds.choose_feed(setup, state)
  return feed_loop(setup, feed, state), setup.config.steps_per_dispatch, feed, why


def stream_loops(setup: setup_lib.Setup, feed: feeds.StreamFeed) -> dict:
  """{name: (run_once, steps per call)} of a StreamFeed: 'stream', training as the train loop does;
  'pipeline', its input pipeline alone (batches read, stacked and copied to the device, no step); 'steps', its
  steps alone (one dispatch's batches, already on the device, trained on again and again). They share one
  position in the stream, so that timing them in turn never restarts it."""
  spd = setup.config.steps_per_dispatch
  holder = {'state': setup.initial_state(), 'step': 0, 'fixed': None}

  def train():
    holder['state'], metrics = feed.run(holder['state'], holder['step'], spd)
    holder['step'] += spd
    return metrics['loss']

  def read():
    batches = feed.batches(holder['step'], spd)
    holder['step'] += spd
    return batches['x']

  def steps():
    if holder['fixed'] is None:
      holder['fixed'] = feed.batches(holder['step'], spd)
      holder['step'] += spd
    holder['state'], metrics = feed.train(holder['state'], holder['fixed'])
    return metrics['loss']

  return {'stream': (train, spd), 'pipeline': (read, spd), 'steps': (steps, spd)}


def report_bound(images_per_second: dict[str, float]) -> None:
  """Prints the stream's pipeline and steps alone (`stream_loops`) and which one bounds it."""
  pipeline, steps = images_per_second['pipeline'], images_per_second['steps']
  bound = 'the input pipeline' if pipeline < steps else 'the step'
  print(f'  its input pipeline alone: {pipeline:,.0f} images/s (read, stacked, copied to the device); its steps '
        f'alone: {steps:,.0f} images/s (batches on the device): the bottleneck is {bound}')


def plain_loop(setup: setup_lib.Setup):
  """The plain loop: a call running one jitted step on a host batch, on one device; and its step count, 1."""
  config = setup.config
  plain_step = jax.jit(step_lib.make_train_step(
      setup.model, setup.objective, setup.schedule,
      step_lib.kl_weight_schedule(config, setup.steps_per_epoch), config.data.binarize == 'dynamic'))
  train = setup.dataset.train
  rng = np.random.default_rng(0)
  holder = {'state': jax.device_put(jax.device_get(setup.initial_state()), jax.devices()[0]),
            'perm': rng.permutation(len(train.examples)), 'i': 0}
  key, b = setup.key(1), config.batch_size

  def run_once():
    i = holder['i'] % setup.steps_per_epoch
    rows = holder['perm'][i * b:(i + 1) * b]
    rows = np.sort(rows)  # a lazy or memory-mapped split reads sorted rows fastest
    batch = {'x': data.Split(np.asarray(train.examples[rows]), None, train.spec).decoded()}
    holder['state'], metrics = plain_step(holder['state'], batch | _labels(train, rows), key)
    holder['i'] += 1
    return metrics['loss']

  return run_once, 1


def time_in_turn(loops: dict, seconds: float, rounds: int = ROUNDS) -> dict[str, float]:
  """Seconds per step of each loop {name: (run_once, steps_per_call)}: each warmed up once, then timed for
  seconds / rounds in turn, `rounds` times, so a change in the machine's speed falls on every loop alike;
  a loop's figure is its fastest round."""
  times = {name: [] for name in loops}
  for r in range(rounds):
    for name, (run_once, steps) in loops.items():
      times[name].append(dispatch.seconds_per_step(lambda _, f=run_once: f(), steps, seconds / rounds,
                                                   warm_up=r == 0))
  return {name: min(t) for name, t in times.items()}


def _labels(split, rows) -> dict:
  """The batch's 'label' entry, or none for data without labels."""
  return {} if split.labels is None else {'label': np.asarray(split.labels[rows])}


def benchmark_config(config, seconds: float, peak: float, torch: bool = True, stream: bool = True) -> dict:
  """Prints the figures of one config; returns images/s of each loop (with `stream`, also the streamed feed's,
  when the config's own feed is the device's), and 'mode': the dispatch vae_jax's loop took."""
  config_lib.validate(config)
  setup = setup_lib.make_setup(config, data.load(config))
  m = config.model
  print(f'\nconfig: {m.kind} {m.encoder} {tuple(m.hidden_sizes)} latent {m.latent_dim}, {m.activation}, '
        f'{m.likelihood}, {config.data.name} {setup.dataset.image_shape}, batch {config.batch_size}, {m.dtype}, '
        f'{config.steps_per_dispatch} steps per dispatch')
  state = setup.initial_state()
  train_set = setup.dataset.train
  first = np.arange(config.batch_size)
  gflop = step_gflop(setup, state, {'x': jnp.asarray(train_set.examples[first])} | _labels(train_set, first))
  print(f'train step: {gflop:.3f} GFLOP (XLA cost analysis)')

  def report(name, sec_per_step):
    gflops = gflop / sec_per_step
    print(f'{name}: {config.batch_size / sec_per_step:,.0f} images/s, {1e3 * sec_per_step:.3f} ms/step, '
          f'{gflops:.1f} GFLOP/s ({100 * gflops / peak:.0f}% of peak)')
    return config.batch_size / sec_per_step

  ours, spd, feed, why = vae_jax_loop(setup)
  loops = {'plain': plain_loop(setup), 'vae_jax': (ours, spd)}
  streamed = feeds.StreamFeed(setup, feed.mode) if stream and feed.placement == 'device' else None
  if streamed is not None:
    loops |= stream_loops(setup, streamed)
  timed = time_in_turn(loops, seconds)
  out = {'plain': report('plain per-step jitted loop, host-fed', timed['plain']), 'mode': feed.mode}
  print(f'vae_jax dispatch: {feed.mode} ({why})')
  out['vae_jax'] = report(f'vae_jax ({feed.mode}, training set {feed.description})', timed['vae_jax'])
  print(f'vae_jax / plain: {out["vae_jax"] / out["plain"]:.2f}x')
  if streamed is not None:
    out['stream'] = report(f'vae_jax ({feed.mode}, training set {streamed.description})', timed['stream'])
    print(f'streamed / on the device: {out["stream"] / out["vae_jax"]:.2f}x')
    out |= {k: config.batch_size / timed[k] for k in ('pipeline', 'steps')}
    report_bound(out)
    streamed.close()
  if torch and not pytorch_baseline.covers(config):
    print(f'PyTorch: no yardstick for model.kind={m.kind} (prior {m.prior}, flow {m.posterior_flow}, '
          f'{m.likelihood}); the plain loop is the baseline')
  elif torch and pytorch_baseline.available():
    import torch as torch_lib  # pylint: disable=g-import-not-at-top
    out['pytorch'] = pytorch_baseline.images_per_second(config, setup.dataset.train.images, seconds)
    print(f'PyTorch {torch_lib.__version__} ({torch_lib.get_num_threads()} threads, eager): '
          f'{out["pytorch"]:,.0f} images/s')
    print(f'vae_jax / PyTorch: {out["vae_jax"] / out["pytorch"]:.2f}x')
  elif torch:
    print("PyTorch: not installed (pip install -e '.[benchmark]'), no yardstick")
  return out


def _disk_read_bytes() -> int | None:
  """Bytes read from the block devices since boot (Linux /sys/block), or None where not readable."""
  try:
    return sum(int((d / 'stat').read_text().split()[2]) * 512 for d in pathlib.Path('/sys/block').iterdir()
               if not d.name.startswith(('loop', 'ram', 'zram')))
  except (OSError, ValueError, IndexError):
    return None


def _tiled_file(dataset, gigabytes: float, directory: pathlib.Path) -> tuple[pathlib.Path, int]:
  """A .npy of uint8 images of `dataset`'s shape, `gigabytes` GiB: its training images (as uint8 codes) repeated.
  Written once (to a temporary name, then renamed) and reused by later runs; returns the path and image count."""
  shape, x = tuple(dataset.spec.shape), np.asarray(dataset.train.examples)
  if x.dtype != np.uint8:
    x = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
  n = int(gigabytes * 2**30) // int(np.prod(shape))
  path = directory / f'vae_jax_stream_{dataset.name}_{"x".join(map(str, shape))}_{n}.npy'
  if not path.exists():
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp.npy')
    out = np.lib.format.open_memmap(tmp, 'w+', np.uint8, (n, *shape))
    chunk = 1 << 16
    for start in range(0, n, chunk):
      out[start:start + chunk] = x[np.arange(start, min(n, start + chunk)) % len(x)]
    out.flush()
    del out
    tmp.replace(path)
  return path, n


def _evict(path: pathlib.Path, *arrays) -> None:
  """Drops `path`'s pages from the page cache (and from this process's mappings of it, `arrays`: memmaps or
  row selections of them, which would otherwise pin them), so that what reads it next reads the disk."""
  for a in arrays:
    a = getattr(a, 'base', None) if not isinstance(a, np.ndarray) else a  # a data.rows.Rows: its array
    while isinstance(a, np.ndarray) and a.base is not None and not isinstance(a.base, mmap_lib.mmap):
      a = a.base
    if isinstance(a, np.ndarray) and isinstance(a.base, mmap_lib.mmap):
      a.base.madvise(mmap_lib.MADV_DONTNEED)
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
  finally:
    os.close(fd)


def larger_than_memory(config, gigabytes: float, directory: pathlib.Path, seconds: float,
                       mode: str = 'scan') -> dict[str, float]:
  """Trains `config`'s model on a memory-mapped uint8 .npy of `gigabytes` GiB (`_tiled_file`), loaded as
  data.name=array with data.feed=auto, from a cold page cache; prints and returns its images/s and, streamed,
  its pipeline and steps alone (`stream_loops`, timed in turn), and what was read from the disk meanwhile."""
  path, n = _tiled_file(data.load(config), gigabytes, pathlib.Path(directory))
  big = copy.deepcopy(config)
  big.data.name, big.data.path, big.data.feed, big.dispatch = 'array', str(path), 'auto', mode
  big.data.test_fraction = min(big.data.test_fraction, 10_000 / n)  # a test split of 10,000 images, which
  # data.load binarizes in memory: only training is timed
  start = time.perf_counter()
  dataset = data.load(big)
  loaded_s = time.perf_counter() - start
  setup = setup_lib.make_setup(big, dataset)
  feed = feeds.make_feed(setup, mode)
  ram = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  print(f'\n{path}: {n:,} images {tuple(dataset.spec.shape)} uint8, {path.stat().st_size / 2**30:.2f} GiB on '
        f'disk, memory-mapped ({loaded_s:.0f} s to load and fingerprint); training set '
        f'{feeds.training_set_bytes(setup) / 2**30:.2f} GiB ({len(dataset.train.examples):,} images), device '
        f'budget {feeds.device_budget_bytes() / 2**30:.2f} GiB, host memory {ram / 2**30:.1f} GiB: with '
        f'data.feed=auto the training set is {feed.description}; dispatch {mode}')
  _evict(path, dataset.train.examples, dataset.validation.examples, dataset.test.examples)
  loops = stream_loops(setup, feed) if feed.placement == 'stream' else {feed.placement: (feed_loop(setup, feed),
                                                                                       big.steps_per_dispatch)}
  disk_before = _disk_read_bytes()
  timed = time_in_turn(loops, seconds)  # the first call of each compiles, starts the workers, draws the order
  disk_read = None if disk_before is None else _disk_read_bytes() - disk_before
  out = {k: big.batch_size / v for k, v in timed.items()}
  read = '' if disk_read is None else f'; {disk_read / 2**20:,.0f} MiB read from the disk in all'
  print(f'vae_jax ({mode}, training set {feed.description}) from the file: {out[feed.placement]:,.0f} images/s, '
        f'{1e3 * timed[feed.placement]:.3f} ms/step{read}')
  if feed.placement == 'stream':
    report_bound(out)
  feed.close()
  return out


def conv_layer_times(config, image_shape, seconds: float = 2.0) -> list[tuple[str, float, float]]:
  """(layer, ms with lax's convolution, ms as matmuls) for one forward and backward pass of each conv layer."""
  from vae_jax.models import convolution  # pylint: disable=g-import-not-at-top
  height, width, channels = image_shape
  sizes, b = [int(c) for c in config.model.hidden_sizes], config.batch_size
  layers, c_in = [], channels
  for i, c in enumerate(sizes):
    layers.append((f'encoder conv {height}x{width}x{c_in} -> {c}, stride 2', (b, height, width, c_in),
                   convolution.Conv(c, (3, 3), 2)))
    height, width, c_in = -(-height // 2), -(-width // 2), c
  for c in reversed(sizes):
    layers.append((f'decoder transposed conv {height}x{width}x{c_in} -> {c}, stride 2', (b, height, width, c_in),
                   convolution.ConvTranspose(c, (3, 3), 2)))
    height, width, c_in = 2 * height, 2 * width, c
  layers.append((f'decoder output conv {height}x{width}x{c_in} -> {channels}', (b, height, width, c_in),
                 convolution.Conv(channels, (3, 3), 1)))
  out = []
  for name, shape, layer in layers:
    x = jax.random.normal(jax.random.key(0), shape)
    params = layer.init(jax.random.key(1), x)
    times = []
    for impl in ('lax', 'matmul'):
      m = layer.clone(impl=impl)
      grad = jax.jit(jax.grad(lambda p, x, m=m: jnp.sum(m.apply(p, x)**2), argnums=(0, 1)))
      times.append(1e3 * _time_loop(lambda g=grad: g(params, x), 1, seconds))
    out.append((name, *times))
  return out


def default_configs() -> list:
  """The configs of DEFAULT_CONFIGS, from the checkout vae_jax runs from."""
  paths = [pathlib.Path(__file__).resolve().parents[2] / p for p in DEFAULT_CONFIGS]
  missing = [str(p) for p in paths if not p.is_file()]
  if missing:
    raise errors.ConfigError(f'{missing[0]} not found (vae_jax is not run from its checkout); pass --config=PATH')
  return [config_lib.build_on(str(p), p.name) for p in paths]


def run(configs, seconds: float, torch: bool = True, conv_layers: bool = False, stream: bool = True,
        stream_gigabytes: float = 0.0, stream_dir: str | None = None) -> None:
  """Prints the device, then each config's figures (`benchmark_config`); with `conv_layers`, instead each conv
  layer of the conv configs timed alone (`conv_layer_times`); with `stream_gigabytes`, then each config trained
  from a memory-mapped file that size in `stream_dir` (`larger_than_memory`)."""
  for config in configs:
    config_lib.validate(config)
  device = jax.devices()[0]
  print(f'device: {jax.device_count()} x {device.device_kind} ({jax.default_backend()}), '
        f'host {platform.processor() or platform.machine()}, jax {jax.__version__}, dispatch modes '
        f'{", ".join(dispatch.MODES)}')
  if conv_layers:
    for config in configs:
      if config.model.encoder == 'conv':
        image_shape = data.load(config).image_shape
        print(f'\nconv layers of {tuple(config.model.hidden_sizes)}, batch {config.batch_size}, forward + backward:')
        for name, lax_ms, matmul_ms in conv_layer_times(config, image_shape):
          print(f'{name}: lax {lax_ms:.2f} ms, matmul {matmul_ms:.2f} ms ({lax_ms / matmul_ms:.1f}x)')
    return
  peak, n = matmul_peak_gflops()
  print(f'fp32 matmul peak ({n}x{n}): {peak:.0f} GFLOP/s')
  for config in configs:
    out = benchmark_config(config, seconds, peak, torch, stream)
    if stream_gigabytes:
      larger_than_memory(config, stream_gigabytes, pathlib.Path(stream_dir or tempfile.gettempdir()), seconds,
                         out['mode'])
