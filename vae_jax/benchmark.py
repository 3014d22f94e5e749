"""Training throughput of a config, against a plain per-step jitted loop.

  python -m vae_jax.benchmark --config=configs/fashion_mnist.py [--config.batch_size=1024]

Prints images/s, ms/step and achieved GFLOP/s (model FLOPs from XLA's cost
analysis of one train step) as a share of the device's fp32 matmul peak,
measured in the same process; then the same for the same model trained the way
most example code does it (one jitted step per Python iteration, batches
copied from the host) and the ratio. The last line is vae_jax's images/s.
Figures for this project's machines are in BENCHMARKS.md.
"""

import platform
import time

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from vae_jax import cli
from vae_jax import config_lib
from vae_jax import data
from vae_jax import objectives
from vae_jax import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file in configs/.', lock_config=True)
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Minimum timed duration of each of the two loops.')
flags.mark_flags_as_required(['config'])


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


def step_gflop(setup: train.Setup, state, batch) -> float:
  """FLOPs of one train step, from XLA's cost analysis of the compiled step."""
  compiled = jax.jit(setup.train_step).lower(state, batch, setup.key(0)).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', float('nan'))) / 1e9


def _time_loop(run_once, steps_per_call: int, seconds: float) -> float:
  """Seconds per step of `run_once` (which must return something to block on), after a warm-up."""
  jax.block_until_ready(run_once())
  jax.block_until_ready(run_once())
  calls, start = 0, time.perf_counter()
  while True:
    out = run_once()
    calls += 1
    if time.perf_counter() - start >= seconds:
      break
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / (calls * steps_per_call)


def time_vae_jax(setup: train.Setup, seconds: float) -> tuple[float, str]:
  """Seconds per step of vae_jax's own loop (fused steps, data where `make_feed` puts it)."""
  feed = train.make_feed(setup)
  spd = setup.config.steps_per_dispatch
  holder = {'state': setup.initial_state(), 'step': 0}

  def run_once():
    holder['state'], metrics = feed.run(holder['state'], holder['step'], spd)
    holder['step'] += spd
    return metrics['loss']

  return _time_loop(run_once, spd, seconds), feed.placement


def time_plain_loop(setup: train.Setup, seconds: float) -> float:
  """Seconds per step of the plain loop: a jitted step per iteration, host batches, one device."""
  config = setup.config
  plain_step = jax.jit(train.make_train_step(
      setup.model, objectives.make(config), setup.schedule,
      train.kl_weight_schedule(config, setup.steps_per_epoch), config.data.binarize == 'dynamic'))
  images = setup.dataset.train.images
  rng = np.random.default_rng(0)
  holder = {'state': jax.device_put(jax.device_get(setup.initial_state()), jax.devices()[0]),
            'perm': rng.permutation(len(images)), 'i': 0}
  key, b = setup.key(1), config.batch_size

  def run_once():
    i = holder['i'] % setup.steps_per_epoch
    batch = images[holder['perm'][i * b:(i + 1) * b]]
    holder['state'], metrics = plain_step(holder['state'], batch, key)
    holder['i'] += 1
    return metrics['loss']

  return _time_loop(run_once, 1, seconds)


def _benchmark():
  config = cli.config_value(_CONFIG)
  config_lib.validate(config)
  setup = train.make_setup(config, data.load(config))
  device = jax.devices()[0]
  m = config.model
  print(f'device: {jax.device_count()} x {device.device_kind} ({jax.default_backend()}), '
        f'host {platform.processor() or platform.machine()}, jax {jax.__version__}')
  print(f'config: {m.kind} {m.encoder} {tuple(m.hidden_sizes)} latent {m.latent_dim}, {m.likelihood}, '
        f'{config.data.name} {setup.dataset.image_shape}, batch {config.batch_size}, {m.dtype}, '
        f'{config.steps_per_dispatch} steps per dispatch')
  peak, n = matmul_peak_gflops()
  print(f'fp32 matmul peak ({n}x{n}): {peak:.0f} GFLOP/s')
  state = setup.initial_state()
  batch = jnp.asarray(setup.dataset.train.images[:config.batch_size])
  gflop = step_gflop(setup, state, batch)
  print(f'train step: {gflop:.3f} GFLOP (XLA cost analysis)')

  def report(name, sec_per_step):
    gflops = gflop / sec_per_step
    print(f'{name}: {config.batch_size / sec_per_step:,.0f} images/s, {1e3 * sec_per_step:.3f} ms/step, '
          f'{gflops:.1f} GFLOP/s ({100 * gflops / peak:.0f}% of peak)')

  plain = time_plain_loop(setup, _SECONDS.value)
  report('plain per-step jitted loop, host-fed', plain)
  ours, placement = time_vae_jax(setup, _SECONDS.value)
  report(f'vae_jax (data on {placement})', ours)
  epoch = len(setup.dataset.train.images) // config.batch_size * ours
  print(f'vae_jax / plain: {plain / ours:.2f}x; one epoch of {setup.dataset.name} '
        f'({setup.steps_per_epoch * config.batch_size} images): {1e3 * epoch:.0f} ms')
  print(f'images/s: {config.batch_size / ours:.0f}')


if __name__ == '__main__':
  logging.set_verbosity(logging.WARNING)
  cli.run(_benchmark)
