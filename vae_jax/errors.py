"""Errors that are the user's to fix: the CLI prints them as one line, no traceback."""


class UserError(Exception):
  """Bad input (config, data, workdir). The message says what is wrong and what is allowed."""


class ConfigError(UserError):
  """A config field has a value that is not allowed."""


class DataError(UserError):
  """A dataset cannot be had, or does not fit the config."""


class WorkdirError(UserError):
  """The workdir cannot be used: it holds a run that the config cannot continue, is not a directory, or cannot
  be created or written."""


class RunNotFound(WorkdirError, FileNotFoundError):
  """The directory holds no vae_jax run, or not the checkpoint asked for."""


class TrainingError(UserError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


# The exit code of any command stopped by SIGTERM/SIGINT (EX_TEMPFAIL: "try again"): training after saving
# its checkpoint, evaluate after saving its batch, the others with no file half-written (vae_jax.runtime.signals);
# rerunning the same command continues.
PREEMPTED_EXIT_CODE = 75


class Preempted(Exception):
  """A command stopped on a signal at a place it can continue from (training: a checkpoint at the current step;
  evaluate: the results of the batches done). The message says what was saved."""


class DamagedFileError(UserError):
  """A file of the run that cannot be read back (truncated, corrupted) and cannot be rebuilt on its own."""


class RunLockedError(WorkdirError):
  """Another process holds the run directory (a double launch, or a requeue while the old task runs)."""


# The exit code of a run stopped because a write failed for lack of space (EX_IOERR); the checkpoints
# written before are intact, and rerunning after freeing space continues from the last of them.
DISK_FULL_EXIT_CODE = 74


class DiskFull(Exception):
  """A write of the run failed because the disk (or quota) is full."""
