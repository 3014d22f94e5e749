"""What every vae_jax command shares: absl flags and logging, orbax's INFO
chatter filtered out, and bad input reported as one line with no traceback."""

import logging as logging_lib
import sys
from typing import Callable

from absl import app
from absl import logging

from vae_jax import errors


class _QuietLibraries(logging_lib.Filter):
  """Drops INFO chatter of orbax (several lines per save); its warnings still show."""

  def filter(self, record):
    return record.levelno >= logging_lib.WARNING or '/orbax/' not in record.pathname


def run(command: Callable[..., None], positional: bool = False) -> None:
  """Parses flags and runs `command()`; a UserError exits 2 after printing `error: <message>`.

  With `positional`, the arguments that are not flags are passed on, `command(args)`.
  """

  def main(argv):
    if len(argv) > 1 and not positional:
      raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      if positional:
        command(argv[1:])
      else:
        command()
    except errors.UserError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)

  app.run(main)
