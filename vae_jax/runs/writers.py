"""Metrics and images of a run, from process 0 only: metrics.jsonl (one JSON object per write, with its
`step`) is the run's own record and is always written; the writers `config.writers` names get the same
scalars and images.

A writer is one class in WRITERS (tensorboard, wandb, mlflow) with write_scalars / write_images / close. Its
library is imported only when the writer opens, so W&B and MLflow stay optional (check_config refuses
a writer whose library is missing). A tracker's run id is kept in WORKDIR/trackers.json, so rerunning the
same command continues the same W&B or MLflow run.
"""

import abc
import contextlib
import importlib.util
import json
import math
import os
import pathlib
import time

from absl import logging
from etils import epath
import jax
import ml_collections
import numpy as np

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.runs import names
from vae_jax.runtime import files

METRICS_FILE = names.METRICS_FILE
TRACKERS_FILE = names.TRACKERS_FILE
DEFAULT_WRITERS = ('tensorboard',)
# How a writer's run ends: the run finished, stopped on an error, or was stopped by a signal (it resumes).
FINISHED, FAILED, KILLED = 'FINISHED', 'FAILED', 'KILLED'


def _plain(value):
  value = float(np.asarray(value))
  return value if math.isfinite(value) else str(value)  # JSON has no NaN/inf


def _uint8(image: np.ndarray) -> np.ndarray:
  """A (H, W, C) float image in [0, 1] as uint8, (H, W) when grey: what the trackers' image types take."""
  image = np.round(np.clip(np.asarray(image, np.float32), 0, 1) * 255).astype(np.uint8)
  return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def _one_line(text) -> str:
  return ' '.join(str(text).split())


def _flat(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, f'{prefix}{key}.') if isinstance(value, dict) else {f'{prefix}{key}': value})
  return out


def _read_tracker_runs(workdir: pathlib.Path) -> dict:
  path = workdir / TRACKERS_FILE
  if not path.exists():
    return {}
  try:
    runs = json.loads(path.read_text())
    if not isinstance(runs, dict):
      raise ValueError('not an object')
    return runs
  except ValueError:
    logging.warning('%s is damaged; the trackers start new runs', path)
    return {}


def _save_tracker_run(workdir: pathlib.Path, name: str, run: dict) -> None:
  """Records `run` for writer `name` in trackers.json; tmp + rename, so a crash never leaves half a file."""
  runs = _read_tracker_runs(workdir) | {name: run}
  with files.replacing(workdir / TRACKERS_FILE) as tmp:
    tmp.write_text(json.dumps(runs, indent=2) + '\n')


def _run_name(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> str:
  return config.tracking.run_name or workdir.resolve().name


WANDB_MODES = ('offline', 'online')


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises errors.ConfigError unless config.writers names known writers, each once, whose libraries are
  installed (W&B and MLflow are optional), and config.tracking.wandb_mode is a mode. Called where a run
  starts, with `config_lib.validate`."""
  names = config_lib.name_list(config.writers)
  for name in names:
    if name not in WRITERS:
      raise errors.ConfigError(f'writers={name!r} is not allowed; use one of {", ".join(WRITERS)}')
    if names.count(name) > 1:
      raise errors.ConfigError(f'writers names {name} twice; name each writer once')
    writer = WRITERS[name]
    missing = [m for m in writer.libraries if importlib.util.find_spec(m) is None]
    if missing:
      raise errors.ConfigError(f'writers: {name} needs {", ".join(missing)}, which is not installed; '
                               f"pip install {writer.pip} (or pip install -e '.[trackers]')")
  mode = config.tracking.wandb_mode
  if mode is not None and mode not in WANDB_MODES:
    raise errors.ConfigError(f'tracking.wandb_mode={mode!r} is not allowed; use one of {", ".join(WANDB_MODES)}')


class Writer(abc.ABC):
  """One destination of the run's scalars and images, opened for `workdir` with the run's config."""

  name: str                          # its name in config.writers
  libraries: tuple[str, ...] = ()    # the modules it imports: check_config refuses it when one is missing
  pip: str = ''                      # what installs them

  @abc.abstractmethod
  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    """`scalars` maps a tag to a float (NaN and inf included)."""

  @abc.abstractmethod
  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """`images` maps a tag to one (H, W, C) float image in [0, 1]."""

  @abc.abstractmethod
  def close(self, status: str = FINISHED) -> None:
    """Flushes and ends the writer's run with `status` (FINISHED, FAILED or KILLED)."""


WRITERS: dict[str, type[Writer]] = {}


def _register(cls: type[Writer]) -> type[Writer]:
  WRITERS[cls.name] = cls
  return cls


@_register
class TensorBoardWriter(Writer):
  """Event files in the workdir (events.out.tfevents.*), as TensorBoard reads them."""

  name, libraries, pip = 'tensorboard', ('tensorboardX',), 'tensorboardX'

  def __init__(self, workdir: pathlib.Path, config: ml_collections.ConfigDict | None):
    del config
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(logdir=str(workdir), flush_secs=30)

  def write_scalars(self, step, scalars):
    for tag, value in scalars.items():
      self._tb.add_scalar(tag, value, step)

  def write_images(self, step, images):
    for tag, image in images.items():
      self._tb.add_image(tag, np.clip(np.asarray(image), 0, 1), step, dataformats='HWC')

  def close(self, status=FINISHED):
    del status
    self._tb.close()


@_register
class WandbWriter(Writer):
  """A Weights & Biases run, with the config as its config. Offline by default, in WORKDIR/wandb/offline-run-*
  for `wandb sync` to upload later; online when tracking.wandb_mode (or $WANDB_MODE) says so."""

  name, libraries, pip = 'wandb', ('wandb',), 'wandb'

  def __init__(self, workdir: pathlib.Path, config: ml_collections.ConfigDict):
    import wandb  # pylint: disable=g-import-not-at-top
    self._wandb, tracking = wandb, config.tracking
    run_id = _read_tracker_runs(workdir).get(self.name, {}).get('run_id')
    try:
      self._run = wandb.init(
          dir=str(workdir), project=tracking.wandb_project, entity=tracking.wandb_entity,
          name=_run_name(workdir, config), id=run_id, resume='allow' if run_id else None,
          mode=tracking.wandb_mode or os.environ.get('WANDB_MODE') or 'offline',
          config=config.to_dict(), allow_val_change=True,  # a resumed run may change its epochs, learning rate...
          reinit='create_new')  # its own run, even beside a run a notebook has open
    except wandb.errors.Error as e:
      raise errors.UserError(f'writers: wandb could not start its run: {_one_line(e)}') from None
    _save_tracker_run(workdir, self.name, {'run_id': self._run.id})
    # A resumed online run starts after the last step it holds; the steps a resumed vae_jax run logs again
    # (those after its checkpoint) are already there, and W&B would refuse them with a warning each.
    self._first_step = self._run.starting_step

  def write_scalars(self, step, scalars):
    if step >= self._first_step:
      self._run.log(dict(scalars), step=step)

  def write_images(self, step, images):
    if step >= self._first_step:
      self._run.log({tag: self._wandb.Image(_uint8(image)) for tag, image in images.items()}, step=step)

  def close(self, status=FINISHED):
    if status == KILLED:
      self._run.mark_preempting()
    self._run.finish(exit_code=0 if status == FINISHED else 1)


@_register
class MlflowWriter(Writer):
  """An MLflow run, with the config as its params, at tracking.mlflow_tracking_uri (or $MLFLOW_TRACKING_URI);
  by default the SQLite store WORKDIR/mlflow.db with the images in WORKDIR/mlartifacts/. (MLflow 3 refuses
  its old file store unless told otherwise; SQLite is its default.)"""

  name, libraries, pip = 'mlflow', ('mlflow', 'sqlalchemy', 'alembic'), 'mlflow-skinny sqlalchemy alembic'

  def __init__(self, workdir: pathlib.Path, config: ml_collections.ConfigDict):
    from mlflow import entities  # pylint: disable=g-import-not-at-top
    from mlflow import exceptions  # pylint: disable=g-import-not-at-top
    from mlflow.tracking import MlflowClient  # pylint: disable=g-import-not-at-top
    self._metric, self._error = entities.Metric, exceptions.MlflowException
    uri = config.tracking.mlflow_tracking_uri or os.environ.get('MLFLOW_TRACKING_URI')
    artifacts = None
    if not uri:
      uri, artifacts = f'sqlite:///{workdir.resolve() / "mlflow.db"}', (workdir.resolve() / 'mlartifacts').as_uri()
    try:
      self._client = MlflowClient(tracking_uri=uri)
      run = self._resumed_run(workdir, uri)
      if run is None:
        run = self._client.create_run(self._experiment_id(config.tracking.mlflow_experiment, artifacts),
                                      run_name=_run_name(workdir, config))
      self._run_id = run.info.run_id
      params = [entities.Param(k, str(v)) for k, v in _flat(config.to_dict()).items() if k not in run.data.params]
      for i in range(0, len(params), 100):  # params are immutable: a resumed run adds only the new ones
        self._client.log_batch(self._run_id, params=params[i:i + 100])
    except exceptions.MlflowException as e:
      raise errors.UserError(f'writers: mlflow could not open its run at {uri}: {_one_line(e.message)}') from None
    _save_tracker_run(workdir, self.name, {'run_id': self._run_id, 'tracking_uri': uri})

  def _resumed_run(self, workdir, uri):
    """The run trackers.json names, reopened, or None; `_last` gets the last step it holds of each metric."""
    self._last = {}
    run_id = _read_tracker_runs(workdir).get(self.name, {}).get('run_id')
    if not run_id:
      return None
    try:
      run = self._client.get_run(run_id)
    except self._error:  # not in this store
      run = None
    if run is None or run.info.lifecycle_stage != 'active':
      logging.warning('MLflow run %s is not in %s (or was deleted); starting a new one', run_id, uri)
      return None
    self._client.update_run(run_id, 'RUNNING')
    self._last = {k: max(m.step for m in self._client.get_metric_history(run_id, k)) for k in run.data.metrics}
    return run

  def _experiment_id(self, name: str, artifacts: str | None) -> str:
    experiment = self._client.get_experiment_by_name(name)
    if experiment:
      return experiment.experiment_id
    try:
      return self._client.create_experiment(name, artifact_location=artifacts)
    except self._error:  # runs that start together on one server: another may have created it meanwhile
      experiment = self._client.get_experiment_by_name(name)
      if experiment is None:
        raise
      return experiment.experiment_id

  def write_scalars(self, step, scalars):
    # What the run holds already (the steps a resumed run logs again) is not logged twice.
    now = int(time.time() * 1000)
    metrics = [self._metric(k, v, now, step) for k, v in scalars.items() if step > self._last.get(k, -1)]
    if metrics:
      self._client.log_batch(self._run_id, metrics=metrics)

  def write_images(self, step, images):
    if step > max(self._last.values(), default=-1):
      for tag, image in images.items():
        self._client.log_image(self._run_id, _uint8(image), key=tag, step=step)

  def close(self, status=FINISHED):
    self._client.set_terminated(self._run_id, status)


class MetricWriter:
  """Writes scalars and images for one run directory: metrics.jsonl, and the writers `config.writers` names
  (TensorBoard alone without a config)."""

  def __init__(self, workdir: str | pathlib.Path, config: ml_collections.ConfigDict | None = None):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    workdir = pathlib.Path(workdir)
    self._writers = []
    self._jsonl = open(workdir / METRICS_FILE, 'a', encoding='utf-8')
    try:
      for name in config_lib.name_list(config.writers) if config is not None else DEFAULT_WRITERS:
        self._writers.append(WRITERS[name](workdir, config))
    except BaseException:
      with contextlib.suppress(Exception):  # the writers opened so far; the error that stopped them is raised
        self.close(FAILED)
      raise

  def write_scalars(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    values = {k: float(np.asarray(v)) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({'step': int(step), **{k: _plain(v) for k, v in values.items()}}) + '\n')
    self._jsonl.flush()
    for writer in self._writers:
      writer.write_scalars(int(step), values)

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """`images` maps a tag to one (H, W, C) float image in [0, 1]."""
    if not self.enabled:
      return
    for writer in self._writers:
      writer.write_images(int(step), images)

  def close(self, status: str = FINISHED) -> None:
    """Flushes and closes every part, even when one fails (its error is raised after); a second call does
    nothing."""
    if not self.enabled:
      return
    self.enabled = False
    with contextlib.ExitStack() as stack:  # runs every close, last pushed first
      for writer in self._writers:
        stack.callback(writer.close, status)
      stack.callback(self._jsonl.close)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    # Closed on every way out: tensorboardX's writer thread, left running, prints a traceback at
    # interpreter exit, after the command's one-line error; a tracker's run would stay "running". When
    # something already failed (a full disk), a failing close must not hide that first error.
    if exc_type is None:
      self.close()
      return
    try:
      self.close(KILLED if issubclass(exc_type, (errors.Preempted, KeyboardInterrupt)) else FAILED)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('closing the metric writers failed too: %s', _one_line(e))


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
