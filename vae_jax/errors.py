"""Errors that are the user's to fix: the CLI prints them as one line, no traceback."""


class UserError(Exception):
  """Bad input (config, data, workdir). The message says what is wrong and what is allowed."""


class ConfigError(UserError):
  """A config field has a value that is not allowed."""


class DataError(UserError):
  """A dataset cannot be had, or does not fit the config."""


class WorkdirError(UserError):
  """The workdir holds a run that the config cannot continue."""


class RunNotFound(WorkdirError, FileNotFoundError):
  """The directory holds no vae_jax run, or not the checkpoint asked for."""


class TrainingError(UserError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


# The exit code of a run stopped by SIGTERM/SIGINT after saving its checkpoint
# (EX_TEMPFAIL: "try again"); rerunning the same command continues the run.
PREEMPTED_EXIT_CODE = 75


class Preempted(Exception):
  """Training stopped on a signal after saving a checkpoint at the current step."""


class DamagedFileError(UserError):
  """A file of the run that cannot be read back (truncated, corrupted) and cannot be rebuilt on its own."""


class RunLockedError(WorkdirError):
  """Another process holds the run directory (a double launch, or a requeue while the old task runs)."""


# The exit code of a run stopped because a write failed for lack of space (EX_IOERR); the checkpoints
# written before are intact, and rerunning after freeing space continues from the last of them.
DISK_FULL_EXIT_CODE = 74


class DiskFull(Exception):
  """A write of the run failed because the disk (or quota) is full."""
