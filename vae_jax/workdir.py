"""The run directory: refusing (or moving aside) another config's run, and writing config.json.

The workdir is the run: rerunning the same command resumes from it. Only the
fields that define what its checkpoints are (`RUN_DEFINING`) must match; the
rest (epochs, learning rate, evaluation, logging, speed) may change on resume.
"""

import json
import pathlib

from absl import logging
import jax
import ml_collections

from vae_jax import checkpoints
from vae_jax import config_lib
from vae_jax import errors

EVAL_FILE = 'eval.json'
RUN_DEFINING = ('seed', 'batch_size', 'data', 'model')


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
  return _flatten({k: v for k, v in full.to_dict().items() if k in RUN_DEFINING})


def prepare(workdir: pathlib.Path, config: ml_collections.ConfigDict, resolved: dict, replace_run: bool) -> None:
  """Refuses (or, with replace_run, moves aside) a run of another config, then writes config.json."""
  path = workdir / checkpoints.CONFIG_FILE
  if path.exists():
    old = _defining(json.loads(path.read_text()))
    new = _defining(json.loads(config.to_json_best_effort()))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
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
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    full = ml_collections.ConfigDict(config.to_dict())
    full.resolved = resolved
    checkpoints.write_config(workdir, full)


def write_json(path: pathlib.Path, contents: dict) -> None:
  """Writes through a temporary file and a rename, so a reader never sees half a file."""
  tmp = path.with_suffix('.json.tmp')
  tmp.write_text(json.dumps(contents, indent=2) + '\n')
  tmp.replace(path)
