"""SIGTERM and SIGINT (SLURM's preemption, Ctrl-C): every command stops with exit 75
(errors.PREEMPTED_EXIT_CODE) and one line, and loses nothing a rerun cannot continue from.

`preemptible()`, which vae_jax.cli.run enters around every command, turns the
first signal into an `Interrupted` exception where the command stands: its
`finally` and `with` cleanups run, and since the files commands write (eval
files, compressed files, arrays, reports, checkpoints) go through a temporary
name and a rename, nothing half-written is left under a real name. A command with clean places to stop marks them: inside `deferred()`
the first signal is only recorded, and `stop_point()` (evaluate: after the
batch whose results it just saved) stops there with errors.Preempted. Training
has its finer `StopSignals` (checkpoint at the end of the dispatch). Under all
of them a second signal kills at once, with the handler the process had before
vae_jax installed any.
"""

import contextlib
import dataclasses
import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from vae_jax import errors

SIGNALS = (signal.SIGTERM, signal.SIGINT)
RERUN = 'rerun the same command to continue'

# The handlers before `preemptible()` installed its own: what a second signal gets, to kill at once.
_ORIGINAL: dict[int, object] = {}


def _kill_at_once(signum: int, fallback=signal.SIG_DFL) -> None:
  signal.signal(signum, _ORIGINAL.get(signum, fallback) or signal.SIG_DFL)  # None: not set from Python
  signal.raise_signal(signum)


def _any_process(flag: bool) -> bool:
  """True on every process once `flag` is true on any (they must stop at the same place)."""
  if jax.process_count() > 1:
    flag = bool(np.any(multihost_utils.process_allgather(np.array(flag))))
  return flag


class Interrupted(KeyboardInterrupt):
  """A command stopped by a signal where it stood. A KeyboardInterrupt, so that no `except Exception` in a
  library swallows it, while cleanups still run; vae_jax.cli prints it as the `preempted:` line."""

  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum

  def __str__(self):
    return f'{signal.Signals(self.signum).name} received: stopped before finishing, no file half-written; {RERUN}'


@dataclasses.dataclass
class _State:
  active: bool = False  # `preemptible()` is entered
  received: int | None = None  # the first signal since it was entered
  deferring: list[str] = dataclasses.field(default_factory=list)  # what each open `deferred()` waits for


_STATE = _State()


def _handle(signum, frame):
  del frame
  if _STATE.received is not None:
    _kill_at_once(signum)
    return
  _STATE.received = signum
  if _STATE.deferring:
    logging.warning('Received %s: stopping %s; a second signal stops at once', signal.Signals(signum).name,
                    _STATE.deferring[-1])
    return
  raise Interrupted(signum)


@contextlib.contextmanager
def preemptible():
  """While active (the main thread only), SIGTERM and SIGINT stop the command: see the module docstring."""
  if threading.current_thread() is not threading.main_thread() or _STATE.active:
    yield
    return
  _STATE.active, _STATE.received, _STATE.deferring = True, None, []
  for s in SIGNALS:
    _ORIGINAL[s] = signal.signal(s, _handle)
  try:
    yield
  finally:
    for s in SIGNALS:
      signal.signal(s, _ORIGINAL.pop(s) or signal.SIG_DFL)
    _STATE.received, _STATE.active = None, False


@contextlib.contextmanager
def deferred(until: str):
  """Inside, the first signal is recorded rather than raised; the command calls `stop_point()` at each clean
  place to stop. `until` completes the warning "stopping ...", e.g. 'after this batch, its results saved'.
  A signal recorded after the last stop point stops the command as the block ends."""
  _STATE.deferring.append(until)
  try:
    yield
  finally:
    _STATE.deferring.pop()
  if _STATE.received is not None:
    raise Interrupted(_STATE.received)


def stop_point(saved: str) -> None:
  """Raises errors.Preempted `<SIGNAL> received: <saved>; rerun ...` if a signal came (on any process);
  `saved` says what the rerun continues from."""
  if _STATE.active and _any_process(_STATE.received is not None):
    who = (f'{signal.Signals(_STATE.received).name} received' if _STATE.received is not None
           else 'another process received a signal')
    raise errors.Preempted(f'{who}: {saved}; {RERUN}')


class StopSignals:
  """While active, SIGTERM and SIGINT ask the loop to checkpoint and exit instead of killing it.

  A second signal of the same kind kills the run as usual.
  """
  SIGNALS = SIGNALS

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:
      _kill_at_once(signum, self._previous.get(signum, signal.SIG_DFL))
    self.received = signum
    logging.warning('Received %s: the run will save a checkpoint and exit after this dispatch',
                    signal.Signals(signum).name)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    if self.received is not None and _STATE.active:
      _STATE.received = self.received  # what comes after the loop: a further signal is a second one

  def requested(self) -> bool:
    """True on every process once any process received a signal (they must stop at the same step)."""
    return _any_process(self.received is not None)

  def name(self) -> str:
    return signal.Signals(self.received).name if self.received else 'a signal'
