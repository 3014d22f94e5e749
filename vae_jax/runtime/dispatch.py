"""How a run of identical steps is dispatched: fused, unrolled, or one call per step.

Training (and importance sampling, chunk by chunk) applies one pure step
function many times. Three ways to hand those steps to XLA compute the same
numbers at different speeds:

  scan      one compiled call runs all n steps in a `lax.scan` (an XLA while
            loop): no Python between steps, which wins where a step is short
            next to a dispatch (accelerators, small models);
  unrolled  one compiled call runs UNROLL steps as straight-line code and
            Python calls it n / UNROLL times: no loop in the program, for
            backends that compile loop bodies worse than straight-line code
            (XLA:CPU convolutions inside a loop, jax-ml/jax#12868);
  per_step  one compiled call per step, the data still on the device: what a
            plain jitted loop does, without copying batches from the host.

Which is fastest depends on the model, the backend and the batch, so
`config.dispatch='auto'` times each mode on the real step when a run starts
(`choose`) and the train loop records the choice in the workdir
(`feeds.choose_feed`), so a resumed run continues with the same programs.
The modes compile to different programs, which round differently, so the
pick shows in the last digits of a run's figures: it must not follow the
machine's load of the moment. The probe therefore times the steady state
(after a warm-up call, in rounds that interleave the modes, each mode's
fastest round), and `DEFAULT_MODE` is kept unless another mode is faster by
a clear `MARGIN`; where modes are within noise of each other, as for the
MLP, the same command always takes the same programs.
"""

import functools
import time
from typing import Any, Callable

import jax
import numpy as np

MODES = ('scan', 'unrolled', 'per_step')
UNROLL = 2            # steps per call in 'unrolled' mode: bounds the program, and so its compile time
PROBE_STEPS = 8       # steps per call while probing (the real dispatch may be longer: same per-step cost)
PROBE_SECONDS = 0.25  # each round times a mode for at least this long
PROBE_ROUNDS = 3      # rounds of timing, the modes interleaved in each; a mode's figure is its fastest round
DEFAULT_MODE = 'scan'
MARGIN = 0.15         # another mode replaces the default only when its steps are this much faster
# A run with fewer steps left than this takes scan unmeasured: measuring (three compilations) would
# cost about as much as such a run, and scan is what wins for short steps.
MIN_STEPS_TO_MEASURE = 2000

Body = Callable[[Any, Any, Any], tuple[Any, Any]]  # body(consts, carry, x) -> (carry, y)


def _slice(xs, start: int, size: int):
  return None if xs is None else jax.tree.map(lambda a: a[start:start + size], xs)


class Runner:
  """Runs `body(consts, carry, x) -> (carry, y)` over n steps, dispatched as `mode` says.

  `run(consts, carry, xs, n)` returns (carry, ys), ys stacked along a new
  leading axis of length n exactly as `lax.scan` stacks them; xs (a pytree
  with a leading axis of n, or None) feeds x. The carry is donated.
  """

  def __init__(self, body: Body, mode: str):
    if mode not in MODES:
      raise ValueError(f'dispatch mode {mode!r}; use one of {", ".join(MODES)}')
    self.mode = mode

    def block(consts, carry, xs, length):
      return jax.lax.scan(functools.partial(body, consts), carry, xs, length=length,
                          unroll=mode != 'scan')

    self._block = jax.jit(block, static_argnames='length', donate_argnums=1)

  def __call__(self, consts, carry, xs, n: int):
    size = {'scan': n, 'unrolled': UNROLL, 'per_step': 1}[self.mode]
    parts = []
    for start in range(0, n, size):
      length = min(size, n - start)
      carry, ys = self._block(consts, carry, _slice(xs, start, length), length=length)
      parts.append(ys)
    if len(parts) == 1:
      return carry, parts[0]
    return carry, jax.tree.map(lambda *a: jax.numpy.concatenate(a), *parts)


def seconds_per_step(run_steps: Callable[[int], Any], num_steps: int, seconds: float = PROBE_SECONDS,
                     warm_up: bool = True) -> float:
  """Times `run_steps(num_steps)` (which returns something to block on), after one warm-up call unless the
  caller already made it."""
  if warm_up:
    jax.block_until_ready(run_steps(num_steps))
  calls, start, previous = 0, time.perf_counter(), None
  while True:
    out = run_steps(num_steps)
    calls += 1
    # Calls return before their work is done: waiting for the one before keeps at most two in flight, so
    # the next call is always ready to go, but a slow step cannot queue minutes of work past `seconds`.
    if previous is not None:
      jax.block_until_ready(previous)
    previous = out
    if time.perf_counter() - start >= seconds:
      break
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / (calls * num_steps)


def compiled_gflop(compiled) -> float:
  """GFLOPs of one call of a compiled program, by XLA's cost analysis (NaN where the backend gives none);
  the analysis is a dict, or on some JAX versions a list of one dict."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get('flops', float('nan'))) / 1e9


def choose(time_mode: Callable[[str], float], modes=MODES, default: str = DEFAULT_MODE,
           rounds: int = PROBE_ROUNDS, margin: float = MARGIN) -> tuple[str, dict[str, float]]:
  """The mode to dispatch with under `time_mode(mode)` (seconds per step of one timing), and every mode's figure.

  Each mode is timed `rounds` times, the modes interleaved so that a burst of
  load falls on all of them alike; a mode's figure is its fastest round, the
  least disturbed one. `default` is kept unless another mode's steps are
  faster by at least `margin` (0.15: 15% more images/s), so timing noise
  between modes of about the same speed cannot flip the pick.

  In a multi-process run every process must compile the same programs, so
  process 0's choice is the one taken.
  """
  samples = {mode: [] for mode in modes}
  for _ in range(rounds):
    for mode in modes:
      samples[mode].append(float(time_mode(mode)))
  timings = {mode: min(values) for mode, values in samples.items()}
  fastest = min(timings, key=timings.get)
  best = fastest if timings[default] >= (1 + margin) * timings[fastest] else default
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    best = modes[int(multihost_utils.broadcast_one_to_all(np.int32(modes.index(best))))]
  return best, timings


def describe(timings: dict[str, float], batch_size: int) -> str:
  """'scan 2,598 images/s, unrolled 2,416, per_step 1,778' from seconds per step."""
  return ', '.join(f'{mode} {batch_size / s:,.0f}' + (' images/s' if i == 0 else '')
                   for i, (mode, s) in enumerate(timings.items()))
