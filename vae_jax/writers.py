"""Metrics go to TensorBoard event files and to metrics.jsonl (one JSON object
per write, with its `step`), from process 0 only."""

import contextlib
import json
import math
import pathlib

from absl import logging
from etils import epath
import jax
import numpy as np

METRICS_FILE = 'metrics.jsonl'


def _plain(value):
  value = float(np.asarray(value))
  return value if math.isfinite(value) else str(value)  # JSON has no NaN/inf


class MetricWriter:
  """Writes scalars and images for one run directory."""

  def __init__(self, workdir: str | pathlib.Path):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._jsonl = open(pathlib.Path(workdir) / METRICS_FILE, 'a', encoding='utf-8')
    self._tb = SummaryWriter(logdir=str(workdir), flush_secs=30)

  def write_scalars(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), **{k: _plain(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(np.asarray(v)), int(step))

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """`images` maps a tag to one (H, W, C) float image in [0, 1]."""
    if not self.enabled:
      return
    for tag, image in images.items():
      self._tb.add_image(tag, np.clip(np.asarray(image), 0, 1), int(step), dataformats='HWC')

  def close(self) -> None:
    """Flushes and closes; a second call does nothing."""
    if self.enabled:
      self.enabled = False
      try:
        self._jsonl.close()
      finally:
        self._tb.close()  # its thread stops even when the metrics file cannot be flushed

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    # Closed on every way out: tensorboardX's writer thread, left running, prints a traceback at
    # interpreter exit, after the command's one-line error. When something already failed (a full
    # disk), a failing flush must not hide that first error.
    if exc_type is None:
      self.close()
    else:
      with contextlib.suppress(OSError):
        self.close()


def _records(path, text: str) -> list[dict]:
  """The records of a metrics.jsonl text; a damaged line (the torn last line a crash or a full disk leaves
  mid-write) is dropped with a warning, and the rest are kept."""
  records = []
  lines = text.splitlines()
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      if not isinstance(record, dict) or not isinstance(record.get('step'), int):
        raise ValueError('no step')
    except ValueError:
      where = 'its last line' if i == len(lines) - 1 else f'line {i + 1}'
      logging.warning('%s: %s is damaged (%r); dropped it', path, where, line[:60])
      continue
    records.append(record)
  return records


def truncate_metrics(workdir: str | pathlib.Path, after_step: int) -> None:
  """Drops metrics.jsonl records past `after_step` (a resumed run logs them again) and damaged lines."""
  path = pathlib.Path(workdir) / METRICS_FILE
  if jax.process_index() != 0 or not path.exists():
    return
  kept = [r for r in _records(path, path.read_text(errors='replace')) if r['step'] <= after_step]
  tmp = path.with_suffix('.jsonl.tmp')
  tmp.write_text(''.join(json.dumps(r) + '\n' for r in kept))
  tmp.replace(path)


def read_metrics(workdir: epath.PathLike) -> list[dict]:
  """All readable records of metrics.jsonl; epath, so a notebook can read a run on a bucket."""
  path = epath.Path(workdir) / METRICS_FILE
  return _records(path, path.read_bytes().decode('utf-8', 'replace'))
