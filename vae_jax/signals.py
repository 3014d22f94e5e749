"""SIGTERM and SIGINT while training: finish the dispatch, checkpoint, exit (errors.Preempted)."""

import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np


class StopSignals:
  """While active, SIGTERM and SIGINT ask the loop to checkpoint and exit instead of killing it.

  A second signal of the same kind kills the run as usual.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
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

  def requested(self) -> bool:
    """True on every process once any process received a signal (they must stop at the same step)."""
    stop = self.received is not None
    if jax.process_count() > 1:
      stop = bool(np.any(multihost_utils.process_allgather(np.array(stop))))
    return stop

  def name(self) -> str:
    return signal.Signals(self.received).name if self.received else 'a signal'
