"""Progress lines for long work (training, evaluation, measures, the classifier, the coder): what is done
of how much, the rate and an ETA, at most every few seconds, so a long silent step never looks hung."""

import contextlib
import time

from absl import logging


def format_duration(seconds: float) -> str:
  """'4m05s', or '1h02m' from an hour on."""
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


class Progress:
  """Logs `what: done/total unit, rate unit/s, ETA` as `update(done)` is called.

  A line is written at most every `every_seconds` (the first update after
  that long, and always the last, done == total). The rate counts only the
  work done since this object was made, so work resumed from a saved part
  (`start`) does not inflate it.
  """

  def __init__(self, what: str, total: int, unit: str = 'examples', every_seconds: float = 10.0, start: int = 0):
    self.what, self.total, self.unit, self.every = what, int(total), unit, every_seconds
    self.start = int(start)
    self._t0 = self._last = time.perf_counter()

  def update(self, done: int) -> None:
    now = time.perf_counter()
    if done < self.total and now - self._last < self.every:
      return
    self._last = now
    elapsed = now - self._t0
    rate = (done - self.start) / elapsed if elapsed > 0 else float('inf')
    eta = (self.total - done) / rate if rate > 0 else float('inf')
    logging.info('%s: %s/%s %s, %s %s/s, %s', self.what, f'{done:,}', f'{self.total:,}', self.unit,
                 f'{rate:,.0f}' if rate >= 10 else f'{rate:.2f}', self.unit,
                 f'done in {format_duration(elapsed)}' if done >= self.total else f'ETA {format_duration(eta)}')


@contextlib.contextmanager
def stage(what: str):
  """Logs `what ...` as work with nothing to count (a scikit-learn fit) starts, and `what: done in 0m12s`
  when it ends (not when it raises)."""
  logging.info('%s ...', what)
  start = time.perf_counter()
  yield
  logging.info('%s: done in %s', what, format_duration(time.perf_counter() - start))
