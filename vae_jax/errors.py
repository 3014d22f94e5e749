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
