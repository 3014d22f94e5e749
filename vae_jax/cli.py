"""What every vae_jax command shares: absl flags and logging, orbax's INFO
chatter filtered out, and bad input reported as one line with no traceback.

Exit codes: 0 done; 2 bad input (flags, config, data, a damaged file, a
workdir that is not a directory or cannot be created, or that another process
holds), nothing written; 74 (errors.DISK_FULL_EXIT_CODE) a write failed for
lack of disk space, the earlier checkpoints intact, free space and rerun to
continue; 75 (errors.PREEMPTED_EXIT_CODE) stopped by SIGTERM/SIGINT, every
command (training after saving a checkpoint, evaluate after saving the batch
it was on, the others where they stood, with no file half-written), rerun the
same command to continue; 1 anything else (a bug: traceback).
"""

import logging as logging_lib
import os
import re
import sys
import threading
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from vae_jax import errors
from vae_jax.runtime import files
from vae_jax.runtime import signals


class _QuietLibraries(logging_lib.Filter):
  """Drops INFO chatter of orbax (several lines per save), and its tracebacks of a write that failed for lack
  of space, which the command reports in one line (errors.DiskFull); its other warnings and errors show.
  The same tracebacks come again from asyncio, as the failed futures of orbax's writes are collected."""

  def filter(self, record):
    if '/orbax/' not in record.pathname and '/asyncio/' not in record.pathname:
      return True
    if record.levelno < logging_lib.WARNING and '/orbax/' in record.pathname:
      return False
    text = record.getMessage() + (record.exc_text or '') + (str(record.exc_info[1]) if record.exc_info else '')
    return not any(t in text for t in ('No space left on device', 'Disk quota exceeded', 'RESOURCE_EXHAUSTED'))


def _thread_disk_full_as_one_line(default_hook):
  """A library's writer thread (tensorboardX's) that dies on a full disk prints its traceback mid-run;
  this says it in one warning line instead. The save that fails next reports the full disk as the
  command's last line; any other error in a thread keeps its traceback."""

  def hook(args):
    if args.exc_value is not None and files.is_disk_full(args.exc_value):
      logging.warning('%s stopped: %s', getattr(args.thread, 'name', 'a thread'), args.exc_value)
      return
    default_hook(args)
  return hook


def _late_writes_as_one_line(default_hook):
  """When a checkpoint write fails (a full disk), tensorstore's callbacks for the writes still in flight
  land on orbax's event loop after it closed, and each prints an unraisable RuntimeError traceback (dozens
  under load). They are said once, in a warning line; any other unraisable error keeps its traceback."""
  said = []

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == 'Event loop is closed':
      if not said:
        said.append(True)
        logging.warning('checkpoint writes finished after their event loop closed (a save failed); ignored')
      return
    default_hook(unraisable)
  return hook


def run(command: Callable[..., None], positional: bool = False) -> None:
  """Parses flags and runs `command()`; a UserError exits 2 after printing `error: <message>`, SIGTERM or
  SIGINT exits 75 after `preempted: <message>` (vae_jax.runtime.signals: where the command stands, or at its next
  stop point; a second signal kills at once).

  With `positional`, the arguments that are not flags are passed on, `command(args)`.
  """

  def main(argv):
    if len(argv) > 1 and not positional:
      raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logging.get_absl_handler().addFilter(_QuietLibraries())
    threading.excepthook = _thread_disk_full_as_one_line(threading.excepthook)
    sys.unraisablehook = _late_writes_as_one_line(sys.unraisablehook)
    try:
      with signals.preemptible():
        if positional:
          command(argv[1:])
        else:
          command()
    except errors.UserError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    except (errors.Preempted, signals.Interrupted) as e:
      print(f'preempted: {e}', file=sys.stderr)
      sys.exit(errors.PREEMPTED_EXIT_CODE)
    except errors.DiskFull as e:
      print(f'disk full: {e}', file=sys.stderr)
      # The failed save leaves orbax's writer threads and futures behind; at interpreter exit they print
      # tracebacks after this line (seen under load). What the run owns is closed by now, so end here.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(errors.DISK_FULL_EXIT_CODE)  # pylint: disable=protected-access

  app.run(main, flags_parser=_parse_flags)


def _parse_flags(argv):
  """absl's parsing, with a bad flag or config override (unknown field, wrong type) as one line, exit 2."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except  (config files are code: anything can go wrong)
    print(f'error: {_flag_error_message(e, argv)}', file=sys.stderr)
    sys.exit(2)


def _flag_error_message(e: Exception, argv) -> str:
  # ml_collections reports an unknown field as the repr of a two-line string: unwrap it.
  text = str(e).replace('\\n', ' ').replace("\\'", "'")
  if isinstance(e, (AttributeError, KeyError)) and len(text) > 1 and text[0] == text[-1] and text[0] in '"\'':
    text = text[1:-1]
  message = ' '.join(text.split())
  missing = re.match(r"'([A-Za-z_]\w*)'", message)
  if isinstance(e, (AttributeError, KeyError)) and missing:  # name the override that asked for it
    culprits = [a.split('=')[0] for a in argv[1:] if re.match(rf'--config(\.\w+)*\.{missing.group(1)}(=|$)', a)]
    if culprits:
      field = culprits[0].removeprefix('--config.')
      hint = re.search(r'Did you mean "(\w+)"', message)
      parent = field.rsplit('.', 1)[0] + '.' if '.' in field else ''
      return f'unknown config field {field} ({culprits[0]})' + (f'; did you mean {parent}{hint.group(1)}?'
                                                                 if hint else '')
  return message


def config_value(holder: flags.FlagHolder):
  """The value of a config_flags flag; a config file that failed to load becomes a ConfigError.

  (config_flags defers a load failure to the first use of the value.)
  """
  config = holder.value
  try:
    config.keys()
  except OSError as e:
    raise errors.ConfigError(f'--{holder.name}: ' + ' '.join(str(e).split())) from None
  return config
