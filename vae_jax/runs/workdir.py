"""The run directory: one process at a time, refusing (or moving aside) another config's run, and writing
config.json.

A training run holds WORKDIR/run.lock with flock(2) from start to end: the
operating system releases it when the process exits, however it exits, so a
crashed run never leaves a stale lock, and a second launch on the same
workdir (a double launch, a requeue while the old task still runs) is
refused at once with the host and process that hold it. Readers (evaluate,
report, load_run) never take it. A gs:// workdir has no lock. A local workdir
that is a file, lies under a file, or cannot be created or written is refused
before anything is read (errors.WorkdirError, exit 2).

The workdir is the run: rerunning the same command resumes from it. Only the
fields that define what its checkpoints are (`RUN_DEFINING`) must match; the
rest (epochs, learning rate, evaluation, logging, speed) may change on resume.
"""

import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket

from absl import logging
import jax
import ml_collections

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.runs import checkpoints
from vae_jax.runs import names
from vae_jax.runtime import files

EVAL_FILE = names.EVAL_FILE
RUN_DEFINING = ('seed', 'batch_size', 'data', 'model')
# Fields under those that change how, not what, a run computes: a run resumes with other values.
RUN_NEUTRAL = ('data.feed', 'data.workers')
FINGERPRINT = 'resolved.data_fingerprint'


def _flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _defining(config_json: dict) -> dict:
  """The run-defining fields, with fields added since the run was written taking their defaults."""
  full = config_lib.with_defaults(config_json)
  fields = _flatten({k: v for k, v in full.to_dict().items() if k in RUN_DEFINING})
  return {k: v for k, v in fields.items() if k not in RUN_NEUTRAL}


def check_readable(workdir: pathlib.Path, replace_run: bool) -> None:
  """Raises errors.DamagedFileError for a config.json that cannot be read (unless it is to be replaced)."""
  path = workdir / checkpoints.CONFIG_FILE
  if path.exists() and not replace_run:
    files.read_json(path, checkpoints.CONFIG_DAMAGED_FIX)


def prepare(workdir: pathlib.Path, config: ml_collections.ConfigDict, resolved: dict, replace_run: bool,
            lock: 'RunLock | None' = None) -> None:
  """Refuses (or, with replace_run, moves aside) a run of another config, then writes config.json.

  `lock`, held on the workdir, is taken again on the fresh workdir when the old run is moved aside."""
  path = workdir / checkpoints.CONFIG_FILE
  if path.exists():
    try:
      stored = files.read_json(path, checkpoints.CONFIG_DAMAGED_FIX)
      old = _defining(stored)
      recorded = stored.get('resolved', {}).get('data_fingerprint')
      old_spec = stored.get('resolved', {}).get('example_spec')
    except errors.DamagedFileError:
      if not replace_run:
        raise
      old, recorded, old_spec = {'config.json': 'damaged'}, None, None  # with --replace_run: moved aside
    new = _defining(json.loads(config.to_json_best_effort()))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    new_spec = json.loads(json.dumps(resolved.get('example_spec')))
    if old_spec and new_spec and old_spec != new_spec and not changed and not replace_run:
      differ = sorted(k for k in old_spec.keys() | new_spec.keys() if old_spec.get(k) != new_spec.get(k))
      what = lambda spec: f'{spec.get("kind")}s' + (f' of {spec["vocab_size"]} {spec.get("tokenizer", "")} tokens'
                                                    if 'vocab_size' in spec else '')
      raise errors.WorkdirError(
          f'workdir {workdir} holds a run on {what(old_spec)}, but these data give {what(new_spec)} (their '
          f'{", ".join(differ)} differ: another tokenizer or vocabulary, or other data); use a new --workdir, or '
          f'pass --replace_run to move that run to {workdir}.old-N and start afresh')
    if recorded and resolved.get('data_fingerprint') not in (None, recorded):  # runs before fingerprints: none
      changed.append(FINGERPRINT)
      if not replace_run and changed == [FINGERPRINT]:
        raise errors.WorkdirError(
            f'workdir {workdir} holds a run trained on other data (fingerprint {recorded}; these data, from '
            f'{resolved.get("data_source")}, have {resolved["data_fingerprint"]}); use a new --workdir, or pass '
            f'--replace_run to move that run to {workdir}.old-N and start afresh')
    if changed and not replace_run:
      first = changed[0]
      more = f' (and {len(changed) - 1} more: {", ".join(changed[1:])})' if len(changed) > 1 else ''
      raise errors.WorkdirError(
          f'workdir {workdir} holds a run with {first}={old.get(first)!r}, but this config has '
          f'{first}={new.get(first)!r}{more}; use a new --workdir, or pass --replace_run to move that run '
          f'to {workdir}.old-N and start afresh')
    if changed and jax.process_index() == 0:
      n = 1
      while workdir.with_name(f'{workdir.name}.old-{n}').exists():
        n += 1
      aside = workdir.with_name(f'{workdir.name}.old-{n}')
      workdir.rename(aside)
      logging.warning('Moved the run of another config from %s to %s', workdir, aside)
      if lock is not None:
        lock.acquire()
  make_dir(workdir)
  if jax.process_index() == 0:
    full = ml_collections.ConfigDict(config.to_dict())
    full.resolved = resolved
    checkpoints.write_config(workdir, full)


LOCK_FILE = names.LOCK_FILE


def check_usable(workdir: pathlib.Path) -> None:
  """Refuses (errors.WorkdirError) a local workdir that cannot hold a run: an existing file, a path under a
  file, or one this user cannot create or write. Nothing is created: a refused command leaves no trace."""
  if '://' in str(workdir):
    return
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise errors.WorkdirError(f'workdir {workdir} is a file, not a directory; give --workdir a directory (a new '
                              "one, or a run's)")
  if workdir.is_symlink() and not workdir.exists():
    raise errors.WorkdirError(f'workdir {workdir} is a symbolic link to {os.readlink(workdir)}, which does not '
                              'exist; create its target, or give another --workdir')
  ancestor = next(p for p in (workdir.absolute(), *workdir.absolute().parents) if p.exists())
  if not ancestor.is_dir():
    raise errors.WorkdirError(f'workdir {workdir} cannot be created: {ancestor} is a file, not a directory; give '
                              'a --workdir outside it')
  if not os.access(ancestor, os.W_OK | os.X_OK):
    where = 'is not writable' if ancestor == workdir.absolute() else f'cannot be created: {ancestor} is not writable'
    raise errors.WorkdirError(f'workdir {workdir} {where} by this user (permission denied); give a --workdir '
                              'where you can write')


def make_dir(workdir: pathlib.Path) -> None:
  """mkdir -p, with what check_usable could not foresee (a read-only file system, a race) as a WorkdirError."""
  try:
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    if e.errno not in (errno.EEXIST, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS):
      raise  # a full disk is errors.DiskFull, said by train_and_evaluate
    raise errors.WorkdirError(f'workdir {workdir} cannot be created: {e.strerror} ({e.filename}); give a '
                              '--workdir where you can write') from None


class RunLock:
  """Holds WORKDIR/run.lock while a run trains (process 0 only); see the module docstring.

  Made first thing by train_and_evaluate, it refuses a workdir that cannot hold a run (check_usable) before
  any data is read or anything is compiled."""

  def __init__(self, workdir: pathlib.Path):
    self.workdir = pathlib.Path(workdir)
    self._file = None
    check_usable(self.workdir)

  def acquire(self) -> 'RunLock':
    if jax.process_index() != 0 or '://' in str(self.workdir):
      return self
    self.release()
    make_dir(self.workdir)
    path = self.workdir / LOCK_FILE
    f = open(path, 'a+', encoding='utf-8')  # pylint: disable=consider-using-with  (held until release)
    try:
      fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or 'another process'
      f.close()
      raise errors.RunLockedError(
          f'workdir {self.workdir} is in use by {holder}: a run is training there. Wait for it or stop it '
          'before starting another on the same workdir') from None
    f.seek(0)
    f.truncate()
    f.write(f'process {os.getpid()} on host {socket.gethostname()}, since '
            f'{datetime.datetime.now().isoformat(timespec="seconds")}\n')
    f.flush()
    self._file = f
    return self

  def release(self) -> None:
    if self._file is not None:
      self._file.close()  # closing the descriptor releases the lock
      self._file = None


def write_json(path: pathlib.Path, contents: dict) -> None:
  """Writes through a temporary file and a rename, so a reader never sees half a file."""
  with files.replacing(path) as tmp:
    tmp.write_text(json.dumps(contents, indent=2) + '\n')
