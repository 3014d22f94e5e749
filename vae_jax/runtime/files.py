"""Reading the run directory's small JSON files, which a crash or a full disk can leave damaged.

Every such file is written to a temporary name and renamed (`replacing`), so damage means
something outside the run (a copy cut short, a disk error, a hand edit). A
damaged file is one line naming it, what is wrong and what to do
(errors.DamagedFileError, exit 2), never a traceback.
"""

import contextlib
import errno
import json
import os

from etils import epath

from vae_jax import errors


def damage(path, error: Exception) -> str:
  """What is wrong with the file, in a few words: empty, or where the JSON breaks off."""
  if isinstance(error, json.JSONDecodeError):
    if not error.doc.strip():
      return 'it is empty'
    return f'not valid JSON: {error.msg} at line {error.lineno} column {error.colno}, of {len(error.doc)} characters'
  if isinstance(error, UnicodeDecodeError):
    return 'it is not text'
  return f'{type(error).__name__}: {error}'


def read_json(path: epath.PathLike, fix: str) -> dict:
  """The JSON object in `path`; a damaged file is a DamagedFileError that ends with `fix`."""
  path = epath.Path(path)
  try:
    value = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise errors.DamagedFileError(f'{path} is damaged ({damage(path, e)}); {fix}') from None
  if not isinstance(value, dict):
    raise errors.DamagedFileError(f'{path} is damaged (it holds a {type(value).__name__}, not an object); {fix}')
  return value


def read_json_or_none(path: epath.PathLike) -> dict | None:
  """The JSON object in `path`, or None if it is missing or damaged: for readers that report a state
  (sweeps, sweep reports) and say themselves what a missing file means."""
  try:
    return read_json(path, '')
  except (OSError, errors.DamagedFileError):
    return None


@contextlib.contextmanager
def replacing(path: epath.PathLike, suffix: str = ''):
  """Yields a temporary name beside `path` to write (ending in `suffix`), renamed to `path` when the block ends
  and removed when it fails (an error, a signal): never half a file under `path`, nor a leftover beside it."""
  path = epath.Path(path)
  tmp = path.with_name(f'{path.name}.tmp-{os.getpid()}{suffix}')
  try:
    yield tmp
    tmp.replace(path)
  except BaseException:
    try:
      if tmp.exists():
        tmp.unlink()
    except OSError:
      pass
    raise


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ('No space left on device', 'Disk quota exceeded', "os_error_code='28'", "os_error_code='122'")


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, or one it was raised from, is a write that failed for lack of space (orbax reports
  its background writes' OSError as a ValueError with the OS message)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
      return True
    if any(text in str(error) for text in _DISK_FULL_TEXT):
      return True
    error = error.__cause__ or error.__context__
  return False
