"""Checkpoint I/O with orbax, and the run's config.json.

Orbax writes each step to a temporary directory and renames it when complete,
so an interrupted save never becomes the "latest" checkpoint. Checkpoints and
config.json are read through etils.epath, so a notebook can load a run from
anywhere orbax can (a local path, gs://bucket/run).
"""

import pathlib
import re
import shutil

from absl import logging
from etils import epath
import jax
import ml_collections
import orbax.checkpoint as ocp

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.runs import names
from vae_jax.runtime import files

CONFIG_FILE = names.CONFIG_FILE
CHECKPOINT_DIR = names.CHECKPOINT_DIR
CONFIG_DAMAGED_FIX = ('restore it from a copy of the run (it holds the resolved config the run was started '
                      'with), or pass --replace_run to the training command to move this run aside and start afresh')


def _absolute(workdir: epath.PathLike) -> epath.Path:
  """The workdir as an absolute epath; a URI (gs://...) is already absolute and stays as it is."""
  path = epath.Path(workdir)
  return path if path.is_absolute() else path.absolute()


def manager(workdir: epath.PathLike, keep: int = 1, read_only: bool = False) -> ocp.CheckpointManager:
  """A manager over WORKDIR/checkpoints that keeps the newest `keep` steps."""
  path = _absolute(workdir) / CHECKPOINT_DIR
  options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else keep, create=not read_only,
                                         read_only=read_only, save_interval_steps=0 if read_only else 1)
  return ocp.CheckpointManager(path, options=options, item_handlers=ocp.StandardCheckpointHandler())


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
  mngr.save(step, args=ocp.args.StandardSave(state), force=True)


def restore(mngr: ocp.CheckpointManager, step: int, target):
  """Restores `step` into the structure, shapes and shardings of `target`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


def restore_params(workdir: epath.PathLike, step: int | None = None, ema: bool = True):
  """The parameters to use at `step` (default: the latest): their EMA when the run keeps one and `ema`,
  else the parameters themselves; never the optimizer state."""
  mngr = manager(workdir, read_only=True)
  try:
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise errors.RunNotFound(f'no checkpoint in {epath.Path(workdir) / CHECKPOINT_DIR}')
    if step not in mngr.all_steps():
      raise errors.RunNotFound(f'no checkpoint for step {step} in {epath.Path(workdir) / CHECKPOINT_DIR}; '
                              f'saved steps: {sorted(mngr.all_steps())}')
    # Restore onto this process's first device, whatever mesh the run was saved from.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    metadata = mngr.item_metadata(step)
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata.tree,
                          is_leaf=lambda m: hasattr(m, 'shape') and hasattr(m, 'dtype'))
    tree = mngr.restore(step, args=ocp.args.StandardRestore(target))
  finally:
    mngr.close()
  averaged = tree.get('ema_params')
  return (averaged if averaged and ema else tree['params']), step


def restore_readable(mngr: ocp.CheckpointManager, state, workdir: pathlib.Path):
  """Restores the newest checkpoint that can be read; unreadable ones are moved aside, not deleted.

  Returns (state, step), step 0 when there is no readable checkpoint.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return restore(mngr, step, state), step
    except Exception as e:  # pylint: disable=broad-except
      bad = workdir / CHECKPOINT_DIR / str(step)
      aside = workdir / 'unreadable_checkpoints' / str(step)
      reason = (str(e).strip().splitlines() or [''])[0][:200]
      logging.warning('The checkpoint at step %d (%s) cannot be read (%s: %s); moved it to %s and resuming '
                      'from the one before', step, bad, type(e).__name__, reason, aside)
      if jax.process_index() == 0:
        aside.parent.mkdir(parents=True, exist_ok=True)
        bad.rename(aside)
      mngr.reload()
  return state, 0


PARTIAL_SUFFIX = '.orbax-checkpoint-tmp'


def finished_steps(workdir: pathlib.Path) -> list[int]:
  """The steps whose checkpoint directories are complete (orbax renames a step's directory when done)."""
  path = pathlib.Path(workdir) / CHECKPOINT_DIR
  return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []


def disk_full_message(workdir: pathlib.Path, error: BaseException) -> str:
  saving = re.search(r'/(\d+)' + re.escape(PARTIAL_SUFFIX), str(error))
  what = f'saving the checkpoint of step {saving.group(1)}' if saving else 'writing the run'
  steps = finished_steps(workdir)
  last = f'step {steps[-1]}' if steps else 'none'
  return (f'no space left on the device while {what} in {workdir}; the last good checkpoint is {last}. Free '
          'space and rerun the same command to continue from it')


def remove_partial(workdir: pathlib.Path) -> None:
  """Deletes the temporary directories of checkpoints whose save never finished (a crash, a full disk)."""
  path = pathlib.Path(workdir) / CHECKPOINT_DIR
  if jax.process_index() != 0 or not path.is_dir():
    return
  for partial in path.glob(f'*{PARTIAL_SUFFIX}*'):
    logging.warning('Removing %s: a checkpoint save that never finished', partial)
    shutil.rmtree(partial, ignore_errors=True)


def write_config(workdir: str | pathlib.Path, config: ml_collections.ConfigDict) -> None:
  path = pathlib.Path(workdir) / CONFIG_FILE
  tmp = path.with_suffix('.json.tmp')
  tmp.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + '\n')
  tmp.replace(path)


def read_config(workdir: epath.PathLike) -> ml_collections.ConfigDict:
  """The run's config.json, its config.extensions imported; errors.RunNotFound when `workdir` holds no run."""
  path = epath.Path(workdir) / CONFIG_FILE
  if not path.exists():
    what = 'is a file, not' if epath.Path(workdir).is_file() else f'has no {CONFIG_FILE}: not'
    raise errors.RunNotFound(f'{workdir} {what} a vae_jax run directory')
  stored = files.read_json(path, CONFIG_DAMAGED_FIX)
  config_lib.import_extensions(stored)  # first: its kind, source or metrics, and the kind's own fields' defaults
  return config_lib.with_defaults(stored)
