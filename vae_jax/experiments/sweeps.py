"""Sweeps: many runs of one base config, each a point with its own overrides.

A sweep file (see experiments/) is a Python file that defines

  BASE_CONFIG = 'configs/fashion_mnist.py'      # as for --config; 'file.py:arg' works too
  FIXED = {'num_epochs': 10}                     # optional: overrides every point shares
  def get_sweep():                               # the points: a list of {field: value}
    return sweeps.product(sweeps.sweep('model.beta', [0.5, 1.0]),
                          sweeps.sweep('model.latent_dim', [2, 10]))

Each point runs as `python -m vae_jax.main --config=BASE --workdir=ROOT/SWEEP/NAME
--config.FIELD=VALUE ...` in its own process, NAME spelled from the point's own
overrides (`beta=0.5,latent_dim=2`): never from a timestamp or a position in
the list, so a rerun, or a sweep that grew, finds each point's checkpoints.
`run_local` queues the points over devices or CPU slots; `slurm_script` turns
them into a SLURM array job. Nothing here imports JAX: the scheduler must not
take an accelerator from the runs it starts.
"""

import builtins
import ctypes
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Mapping, Sequence
import warnings

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.evaluation import metrics
from vae_jax.runs import names
from vae_jax.runs import writers
from vae_jax.runtime import files
from vae_jax.training import objectives

SWEEP_FILE = 'sweep.json'     # in ROOT/SWEEP: the points, their overrides and command lines
SLURM_FILE = 'slurm.sh'       # in ROOT/SWEEP, with --slurm
LAUNCH_LOG = 'launch.log'     # in each point's workdir: the output of its process
LAUNCH_FILE = 'launch.json'   # in each point's workdir: its command and exit status (local runs)
EVAL_FILE = names.EVAL_FILE
CONFIG_FILE = names.CONFIG_FILE
CHECKPOINT_DIR = names.CHECKPOINT_DIR
_MAX_NAME = 200               # file names stop at 255 bytes
_TERMINATE_GRACE_S = 10.0

Point = dict[str, Any]        # config field (dotted) -> value


# ---- Building the list of points -------------------------------------------------------------


def sweep(field: str, values: Iterable[Any]) -> list[Point]:
  """One axis: a point per value of `field` (e.g. 'model.beta')."""
  return [{field: v} for v in values]


def _merge(points: Sequence[Point]) -> Point:
  merged = {}
  for point in points:
    for field, value in point.items():
      if field in merged:
        raise errors.UserError(f'{field} is set twice in one point ({merged[field]!r} and {value!r}); '
                               'product and zip need axes over different fields')
      merged[field] = value
  return merged


def product(*axes: Sequence[Point]) -> list[Point]:
  """Every combination, the last axis varying fastest: product(a, b) has len(a) * len(b) points."""
  return [_merge(combo) for combo in itertools.product(*axes)]


def zip(*axes: Sequence[Point]) -> list[Point]:  # pylint: disable=redefined-builtin
  """The i-th points of all axes together; the axes must have the same length."""
  lengths = {len(a) for a in axes}
  if len(lengths) > 1:
    raise errors.UserError(f'zip needs axes of the same length; got lengths {[len(a) for a in axes]}')
  return [_merge(combo) for combo in builtins.zip(*axes)]


def chain(*sweeps: Sequence[Point]) -> list[Point]:
  """The points of each sweep, one sweep after the other."""
  return [dict(p) for s in sweeps for p in s]


# ---- Names and command lines -----------------------------------------------------------------


def _leaves(config: Mapping, prefix: str = '') -> dict[str, Any]:
  """Dotted field -> value for every leaf of a (nested) config."""
  out = {}
  for key, value in config.items():
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_leaves(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def _ambiguous_leaf_names(config: Mapping | None) -> set[str]:
  """Last components shared by several fields (batch_size, eval.batch_size): those are spelled in full."""
  if config is None:
    return set()
  counts = {}
  for field in _leaves(config):
    leaf = field.rsplit('.', 1)[-1]
    counts[leaf] = counts.get(leaf, 0) + 1
  return {leaf for leaf, n in counts.items() if n > 1}


def _name_value(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return 'x'.join(_name_value(v) for v in value)
  if isinstance(value, float):
    return repr(value)
  return re.sub(r'[^A-Za-z0-9._+-]', '_', str(value))


def point_name(overrides: Point, base_config: Mapping | None = None) -> str:
  """`beta=0.25,latent_dim=2`: fields by their last component (in full when the base config has
  two fields of that name), in the order given; safe as a file name; `base` for no overrides."""
  if not overrides:
    return 'base'
  ambiguous = _ambiguous_leaf_names(base_config)
  parts = []
  for field, value in overrides.items():
    leaf = field.rsplit('.', 1)[-1]
    parts.append(f'{field if leaf in ambiguous else leaf}={_name_value(value)}')
  name = ','.join(parts)
  if len(name) > _MAX_NAME:  # still deterministic: a digest of the overrides, never of the time
    digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=repr).encode()).hexdigest()[:10]
    name = f'{name[:_MAX_NAME - 11]}-{digest}'
  return name


def flag_value(value: Any) -> str:
  """`value` as config_flags parses it back: tuples as `(500,500)` or `(64,)`, bools as true/false."""
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, (tuple, list)):
    items = ','.join(repr(v) for v in value)
    return f'({items},)' if len(value) == 1 else f'({items})'
  if isinstance(value, float):
    return repr(value)
  if value is None:
    raise errors.UserError('None cannot be set from the command line; leave the field out of the point')
  return str(value)


@dataclasses.dataclass(frozen=True)
class SweepPoint:
  """One run of a sweep: its name, its own overrides (which make the name), workdir and command."""
  index: int
  name: str
  overrides: Point
  workdir: str
  command: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Sweep:
  name: str
  file: str
  base_config: str
  fixed: Point
  directory: str                  # ROOT/SWEEP
  points: tuple[SweepPoint, ...]


def command_line(base_config: str, workdir: str, overrides: Point, python: str | None = None) -> list[str]:
  """The `python -m vae_jax.main` line of one run."""
  return [python or sys.executable, '-m', 'vae_jax.main', f'--config={base_config}', f'--workdir={workdir}',
          *(f'--config.{field}={flag_value(value)}' for field, value in overrides.items())]


# ---- Loading and checking a sweep file -------------------------------------------------------


def _load_module(path: pathlib.Path, name: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except errors.UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise errors.UserError(f'{path} could not be loaded: {type(e).__name__}: {e}') from e
  return module


def _resolve_base_config(base: str, sweep_file: pathlib.Path) -> str:
  """BASE_CONFIG as given when it exists from here, else relative to the repository of the sweep
  file (experiments/ sits in the repository root)."""
  path, sep, arg = base.partition(':')
  if pathlib.Path(path).is_file():
    return base
  candidate = sweep_file.resolve().parent.parent / path
  if not pathlib.Path(path).is_absolute() and candidate.is_file():
    return f'{candidate}{sep}{arg}'
  raise errors.UserError(f'BASE_CONFIG={base!r} of {sweep_file}: no file {path}')


def _parse_config(base_config: str, args: Sequence[str]) -> ml_collections.ConfigDict:
  """The config `python -m vae_jax.main` builds from these arguments, parsed by the same flag."""
  argv = ['vae_jax.main', f'--config={base_config}', *args]
  flag_values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file('config', flag_values=flag_values, lock_config=True, sys_argv=argv)
  with warnings.catch_warnings():  # config_flags loads the file with a deprecated importlib call
    warnings.simplefilter('ignore', DeprecationWarning)
    flag_values(argv)
  return holder.value


def _check_field(config: Mapping, field: str) -> Any:
  """The base config's value of `field`; UserError naming the fields there when it has none."""
  node, done = config, []
  for part in field.split('.'):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      where = '.'.join(done) or 'the config'
      known = ', '.join(sorted(node.keys())) if isinstance(node, (ml_collections.ConfigDict, dict)) else 'none'
      raise errors.UserError(f'unknown config field {field!r}: {where} has no {part!r} (its fields: {known})')
    node = node[part]
    done.append(part)
  return node


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
    return len(a) == len(b) and all(_same(x, y) for x, y in builtins.zip(a, b))
  return a == b


def check_point(base_config: str, config: Mapping, overrides: Point, label: str) -> None:
  """Fails unless every field exists, every value reaches the run unchanged through the command
  line, and the resulting config passes `config_lib.validate`."""
  for field in overrides:
    _check_field(config, field)
  args = [f'--config.{f}={flag_value(v)}' for f, v in overrides.items()]
  try:
    parsed = _parse_config(base_config, args)
  except errors.UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    raise errors.UserError(f'point {label}: {message}') from e
  for field, value in overrides.items():
    got = _check_field(parsed, field)
    if not _same(got, value):
      raise errors.UserError(f'point {label}: {field}={value!r} reaches the run as {got!r}; '
                             'use a value of the type of the base config\'s field')
  try:
    config_lib.validate(parsed)
    objectives.check_config(parsed)
    writers.check_config(parsed)
    metrics.check_config(parsed)
  except errors.ConfigError as e:
    raise errors.UserError(f'point {label}: {e}') from e


def load(path: str | os.PathLike, root: str | os.PathLike = 'runs', python: str | None = None) -> Sweep:
  """Reads a sweep file and checks every point against the base config before anything runs."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise errors.UserError(f'no sweep file {file}')
  name = file.stem
  module = _load_module(file, f'vae_jax_sweep_{re.sub(r"[^A-Za-z0-9_]", "_", name)}')
  base = getattr(module, 'BASE_CONFIG', None)
  if not isinstance(base, str):
    raise errors.UserError(f'{file} must define BASE_CONFIG, the config file of every point '
                           "(e.g. BASE_CONFIG = 'configs/digits.py')")
  if not callable(getattr(module, 'get_sweep', None)):
    raise errors.UserError(f'{file} must define get_sweep(), returning a list of {{config field: value}} dicts')
  fixed = dict(getattr(module, 'FIXED', {}) or {})
  points = module.get_sweep()
  if not isinstance(points, (list, tuple)) or not points or not all(isinstance(p, Mapping) for p in points):
    raise errors.UserError(f'get_sweep() of {file} must return a non-empty list of {{config field: value}} dicts')
  base = _resolve_base_config(base, file)
  base_path, _, base_arg = base.partition(':')
  base_module = _load_module(pathlib.Path(base_path), 'vae_jax_sweep_base_config')
  config = base_module.get_config(*([base_arg] if base_arg else []))

  directory = os.path.join(os.fspath(root), name)
  built, seen = [], {}
  for i, overrides in enumerate(points):
    overrides = dict(overrides)
    both = sorted(set(overrides) & set(fixed))
    if both:
      raise errors.UserError(f'point {i} of {file} sets {", ".join(both)}, which FIXED sets too')
    point = point_name(overrides, config)
    if point in seen:
      raise errors.UserError(f'points {seen[point]} and {i} of {file} have the same name {point!r}: '
                             'every point needs different overrides')
    seen[point] = i
    everything = {**fixed, **overrides}
    check_point(base, config, everything, point)
    workdir = os.path.join(directory, point)
    built.append(SweepPoint(i, point, overrides, workdir, tuple(command_line(base, workdir, everything, python))))
  return Sweep(name, os.fspath(file), base, fixed, directory, tuple(built))


def write_sweep_file(s: Sweep) -> None:
  """ROOT/SWEEP/sweep.json: what `sweep_report` needs to read the points back."""
  os.makedirs(s.directory, exist_ok=True)
  record = dict(name=s.name, file=s.file, base_config=s.base_config, fixed=s.fixed,
                points=[dict(name=p.name, overrides=p.overrides, workdir=p.workdir, command=list(p.command))
                        for p in s.points])
  _write_json(os.path.join(s.directory, SWEEP_FILE), record)


def _write_json(path: str, record: dict) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(json.dumps(record, indent=2, default=repr) + '\n')
  os.replace(tmp, path)


# ---- The state of a point --------------------------------------------------------------------


def latest_checkpoint(workdir: str | os.PathLike) -> int | None:
  """The newest complete checkpoint step (orbax renames a step's directory only once it is complete)."""
  try:
    steps = [int(p.name) for p in pathlib.Path(workdir, CHECKPOINT_DIR).iterdir() if p.name.isdigit()]
  except OSError:
    return None
  return max(steps, default=None)


def is_finished(workdir: str | os.PathLike) -> bool:
  """eval.json is there and was written at the run's last step (config.json's resolved total_steps)."""
  results = files.read_json_or_none(os.path.join(workdir, EVAL_FILE))
  config = files.read_json_or_none(os.path.join(workdir, CONFIG_FILE))
  if not results or not config:
    return False
  total = config.get('resolved', {}).get('total_steps')
  return total is not None and results.get('step') == total


def status(workdir: str | os.PathLike) -> str:
  """finished | failed (exit N) | running or interrupted (step S of T) | not started."""
  if is_finished(workdir):
    return 'finished'
  launch = files.read_json_or_none(os.path.join(workdir, LAUNCH_FILE)) or {}
  if launch.get('returncode') not in (None, 0):
    return f'failed (exit {launch["returncode"]})'
  config = files.read_json_or_none(os.path.join(workdir, CONFIG_FILE))
  if config is None and not launch:
    return 'not started'
  step = latest_checkpoint(workdir) or 0
  total = (config or {}).get('resolved', {}).get('total_steps', '?')
  return f'unfinished (step {step} of {total})'


# ---- Running the points here -----------------------------------------------------------------


def device_env(device: str | None, per_device: int = 1) -> dict[str, str]:
  """Environment that gives a process one accelerator: the CUDA device or TPU chip `device`."""
  if device is None:
    return {}
  port = 8476 + int(device) if device.isdigit() else 8476
  env = {'CUDA_VISIBLE_DEVICES': device,
         'TPU_VISIBLE_CHIPS': device,             # one chip per process, on its own port
         'TPU_CHIPS_PER_PROCESS_BOUNDS': '1,1,1',
         'TPU_PROCESS_BOUNDS': '1,1,1',
         'TPU_PROCESS_PORT': str(port),
         'TPU_MESH_CONTROLLER_ADDRESS': f'localhost:{port}',
         'TPU_MESH_CONTROLLER_PORT': str(port)}
  if per_device > 1:  # several processes share a GPU: none may take 75% of its memory up front
    env['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
  return env


def cpu_slices(parallel: int, cpus: Sequence[int] | None = None) -> list[tuple[int, ...] | None]:
  """The cores of each of `parallel` CPU slots: the usable cores dealt out in contiguous, disjoint slices,
  so points running side by side do not contend for cores (and each point's time is its own slice's). None
  for every slot where the cores cannot be split: one slot, fewer cores than slots, or no affinity API."""
  if cpus is None:
    if not hasattr(os, 'sched_getaffinity'):
      return [None] * parallel
    cpus = sorted(os.sched_getaffinity(0))
  if parallel <= 1 or len(cpus) < parallel:
    return [None] * parallel
  per, extra = divmod(len(cpus), parallel)
  bounds = list(itertools.accumulate([per + (i < extra) for i in range(parallel)], initial=0))
  return [tuple(cpus[a:b]) for a, b in builtins.zip(bounds[:-1], bounds[1:])]


def _child_setup(cpus: tuple[int, ...] | None) -> Callable[[], None]:
  """What a point's process runs before it starts: pinned to `cpus` (if any), and stopped with the sweep."""
  def setup():
    if cpus is not None:
      os.sched_setaffinity(0, cpus)
    _die_with_parent()
  return setup


def _die_with_parent() -> None:
  """Asks Linux to SIGTERM this child when the scheduler dies, even by SIGKILL."""
  if sys.platform.startswith('linux'):
    try:
      ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
      pass


@dataclasses.dataclass
class Result:
  point: SweepPoint
  status: str              # finished | failed (exit N) | skipped (finished before)
  seconds: float = 0.0


class _Interrupted(Exception):
  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum


def _raise_interrupted(signum, frame):
  del frame
  raise _Interrupted(signum)


def _stop(running: dict) -> None:
  """SIGTERM to every child, then SIGKILL to those still alive after a grace period."""
  for proc, _, _, _ in running.values():
    if proc.poll() is None:
      proc.terminate()
  deadline = time.monotonic() + _TERMINATE_GRACE_S
  for proc, _, _, _ in running.values():
    try:
      proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


def run_local(s: Sweep, devices: Sequence[str] | None = None, parallel: int = 1,
              env: Mapping[str, str] | None = None, poll_s: float = 0.2) -> list[Result]:
  """Runs the unfinished points, `parallel` at a time on each of `devices` (else on the CPU).

  On the CPU, `parallel` > 1 pins each slot to its own slice of the cores (`cpu_slices`).
  Finished points are skipped; interrupted ones resume from their checkpoints (vae_jax.main does).
  Each point's output goes to WORKDIR/launch.log and its exit status to WORKDIR/launch.json. A
  failed point does not stop the others. SIGTERM or Ctrl-C stops every running point first (each saves a
  checkpoint), then raises errors.Preempted (exit 75).
  """
  if parallel < 1:
    raise errors.UserError(f'--parallel={parallel} must be >= 1')
  slots = [d for d in devices for _ in range(parallel)] if devices else [None] * parallel
  pins = [None] * len(slots) if devices else cpu_slices(parallel)
  write_sweep_file(s)
  results, queue = {}, []
  for p in s.points:
    if is_finished(p.workdir):
      results[p.index] = Result(p, 'skipped (finished before)')
    else:
      queue.append(p)
  logging.info('sweep %s: %d points, %d finished before, %d to run on %s', s.name, len(s.points),
               len(s.points) - len(queue), len(queue),
               f'devices {",".join(devices)}, {parallel} per device' if devices else f'the CPU, {parallel} at a time')
  base_env = dict(os.environ if env is None else env)
  running = {}  # slot -> (process, point, log file, start time)
  old_handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
  try:
    while queue or running:
      for slot, device in enumerate(slots):
        if slot in running or not queue:
          continue
        p = queue.pop(0)
        os.makedirs(p.workdir, exist_ok=True)
        log = open(os.path.join(p.workdir, LAUNCH_LOG), 'a', encoding='utf-8')  # pylint: disable=consider-using-with
        log.write(f'# {shlex.join(p.command)}\n')
        log.flush()
        _write_json(os.path.join(p.workdir, LAUNCH_FILE), dict(command=list(p.command), device=device,
                                                                returncode=None))
        proc = subprocess.Popen(p.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**base_env, **device_env(device, parallel)},
                                preexec_fn=_child_setup(pins[slot]))
        running[slot] = (proc, p, log, time.monotonic())
        where = (f' on device {device}' if device is not None else
                 f' on cores {",".join(map(str, pins[slot]))}' if pins[slot] is not None else '')
        logging.info('started %s%s (log: %s)', p.name, where, os.path.join(p.workdir, LAUNCH_LOG))
      for slot in list(running):
        proc, p, log, start = running[slot]
        if proc.poll() is None:
          continue
        del running[slot]
        log.close()
        seconds = time.monotonic() - start
        rc = proc.returncode
        _write_json(os.path.join(p.workdir, LAUNCH_FILE), dict(command=list(p.command), device=slots[slot],
                                                                returncode=rc, seconds=round(seconds, 1)))
        ok = rc == 0 and is_finished(p.workdir)
        results[p.index] = Result(p, 'finished' if ok else f'failed (exit {rc})', seconds)
        done = len(results)
        if ok:
          logging.info('[%d/%d] %s finished in %.0f s', done, len(s.points), p.name, seconds)
        else:
          logging.error('[%d/%d] %s FAILED (exit %d) after %.0f s; see %s', done, len(s.points), p.name, rc,
                        seconds, os.path.join(p.workdir, LAUNCH_LOG))
      if running:
        time.sleep(poll_s)
  except (_Interrupted, KeyboardInterrupt) as e:
    logging.warning('interrupted: stopping %d running point(s); rerun the same command to resume', len(running))
    _stop(running)
    saved = sum(proc.returncode == errors.PREEMPTED_EXIT_CODE for proc, _, _, _ in running.values())
    raise errors.Preempted(f'{signal.Signals(getattr(e, "signum", signal.SIGINT)).name} received: stopped '
                           f'{len(running)} running point(s), {saved} of them cleanly (exit 75); rerun the same '
                           'command to continue') from None
  finally:
    for sig, handler in old_handlers.items():
      signal.signal(sig, handler)
    for _, _, log, _ in running.values():
      log.close()
  return [results[p.index] for p in s.points]


def summary(results: Sequence[Result]) -> str:
  """One line per point: status, time and name."""
  width = max(len(r.status) for r in results)
  lines = [f'{r.status:<{width}}  {r.seconds:6.0f} s  {r.point.name}' for r in results]
  failed = sum(r.status.startswith('failed') for r in results)
  lines.append(f'{len(results) - failed} of {len(results)} points finished' +
               (f'; {failed} failed (their launch.log says why)' if failed else ''))
  return '\n'.join(lines)


# ---- SLURM -----------------------------------------------------------------------------------


SIGNAL_LEAD_SECONDS = 300  # warning before the time limit: a dispatch plus a checkpoint, with SLURM's 60 s slack


def slurm_script(s: Sweep, partition: str | None = None, sbatch_options: Sequence[str] = (),
                 parallel: int | None = None, workdir: str | None = None,
                 signal_lead: int = SIGNAL_LEAD_SECONDS) -> str:
  """A SLURM array job: array index i runs point i's command line, from `workdir` (default: here).

  A point stopped before it finishes requeues itself and resumes from its checkpoint:
  - at the time limit: --signal=B:USR1@signal_lead sends the batch shell USR1
    that many seconds before; it passes SIGTERM to the point, which saves
    and exits 75 (errors.PREEMPTED_EXIT_CODE), and the shell then runs
    `scontrol requeue` on its own array task;
  - on preemption SLURM sends SIGTERM to every process of the job itself: the
    shell ignores it (so the point gets one, not two: a second would kill it
    unsaved), the point saves and exits 75, and SLURM requeues the task
    (--requeue) or the shell does.
  --open-mode=append keeps each attempt's output in the task's one file.
  """
  directory = os.path.abspath(s.directory)
  array = f'0-{len(s.points) - 1}' + (f'%{parallel}' if parallel else '')
  lines = ['#!/bin/bash',
           f'# Sweep {s.name} ({s.file}): {len(s.points)} points, one per array index.',
           '# Written by python -m vae_jax.sweep, which submits only the unfinished points when run again;',
           '# a task of a finished point returns at once, one of an interrupted point resumes it.',
           '# A point preempted or at its time limit saves, requeues itself and resumes (experiments/README.md).',
           f'#SBATCH --job-name={s.name}',
           f'#SBATCH --array={array}',
           f'#SBATCH --output={directory}/slurm/%A_%a.out',
           '#SBATCH --open-mode=append',
           '#SBATCH --requeue',
           f'#SBATCH --signal=B:USR1@{int(signal_lead)}']
  if partition:
    lines.append(f'#SBATCH --partition={partition}')
  lines += [f'#SBATCH {option}' for option in sbatch_options]
  lines += ['set -uo pipefail', f'cd {shlex.quote(os.path.abspath(workdir or os.getcwd()))}',
            'case "$SLURM_ARRAY_TASK_ID" in']
  for p in s.points:
    lines.append(f'  {p.index}) point=({shlex.join(p.command)}) ;;')
  lines += ['  *) echo "sweep ' + s.name + ' has no point $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', 'esac',
            '"${point[@]}" &',
            'child=$!',
            "trap 'echo \"time limit near: asking the point to save\" >&2; kill -TERM \"$child\" 2>/dev/null' USR1",
            "trap ':' TERM  # preemption: SLURM signals the point itself",
            'while :; do',
            '  wait "$child"; status=$?',
            '  kill -0 "$child" 2>/dev/null || break  # wait returns early when a trapped signal arrives',
            'done',
            f'if [ "$status" -eq {errors.PREEMPTED_EXIT_CODE} ]; then',
            '  task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
            '  echo "the point saved its checkpoint and stopped: requeueing $task to resume it" >&2',
            '  scontrol requeue "$task" || echo "scontrol requeue $task failed: run the sweep again to resume" >&2',
            'fi',
            'exit "$status"', '']
  return '\n'.join(lines)


def write_slurm_script(s: Sweep, script: str) -> str:
  os.makedirs(os.path.join(s.directory, 'slurm'), exist_ok=True)
  path = os.path.join(s.directory, SLURM_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(script)
  os.chmod(path, 0o755)
  write_sweep_file(s)
  return path


def unfinished_indices(s: Sweep) -> list[int]:
  return [p.index for p in s.points if not is_finished(p.workdir)]


def array_spec(indices: Sequence[int]) -> str:
  """0,1,2,5,7,8 -> 0-2,5,7-8 (sbatch's --array syntax)."""
  parts, start = [], None
  for i, index in enumerate(indices):
    if start is None:
      start = index
    if i + 1 == len(indices) or indices[i + 1] != index + 1:
      parts.append(str(start) if start == index else f'{start}-{index}')
      start = None
  return ','.join(parts)
