"""Runs a sweep file's points: python -m vae_jax.sweep experiments/beta_sweep.py [flags]

  --devices=0,1,2,3   one point per accelerator (CUDA_VISIBLE_DEVICES / TPU_VISIBLE_CHIPS), the rest queued
  --parallel=N        points at a time on the CPU (or per device, with --devices)
  --dry-run           print one command line per point, run nothing
  --slurm             write ROOT/SWEEP/slurm.sh, an array job with one index per point, and sbatch it
                      (--dry-run prints the script instead)

Each point's workdir is ROOT/SWEEP/NAME. Rerunning skips finished points and
resumes interrupted ones; the exit status is 0 only when every point finished.
`./launch.sh sweep FILE [flags]` is the same command. See experiments/README.md.
"""

import shlex
import shutil
import subprocess
import sys

from absl import flags
from absl import logging

from vae_jax import cli
from vae_jax import errors
from vae_jax.experiments import sweeps

_ROOT = flags.DEFINE_string('root', 'runs', 'Sweeps go to ROOT/SWEEP/POINT, SWEEP the sweep file\'s name.')
_DEVICES = flags.DEFINE_list('devices', None, 'Accelerator ids to spread the points over, e.g. 0,1,2,3.')
_PARALLEL = flags.DEFINE_integer('parallel', None, 'Points at a time: on the CPU (default 1), or per device '
                                 'with --devices (default 1); with --slurm, the most array tasks at once '
                                 '(default: no limit).')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the command lines (or, with --slurm, the script) and stop.')
_SLURM = flags.DEFINE_bool('slurm', False, 'Write a SLURM array job script and submit it with sbatch.')
_PARTITION = flags.DEFINE_string('partition', None, 'SLURM partition (#SBATCH --partition).')
_SBATCH = flags.DEFINE_multi_string('sbatch', [], 'Extra #SBATCH option, repeatable: --sbatch=--gpus=1 '
                                    '--sbatch=--time=04:00:00.')
_SIGNAL_LEAD = flags.DEFINE_integer('signal_lead', sweeps.SIGNAL_LEAD_SECONDS, 'With --slurm: seconds before the '
                                    'time limit at which a point is asked to save and requeue itself; more than '
                                    'one dispatch plus one checkpoint of the slowest point.')


def _dash_dash_dry_run(argv: list[str]) -> list[str]:
  """Accepts --dry-run (the issue's spelling) as well as absl's --dry_run."""
  return ['--dry_run' if a == '--dry-run' else a for a in argv]


def _sweep(args: list[str]) -> None:
  if len(args) != 1:
    raise errors.UserError('give one sweep file: python -m vae_jax.sweep experiments/SWEEP.py [flags]')
  if _PARALLEL.value is not None and _PARALLEL.value < 1:
    raise errors.UserError(f'--parallel={_PARALLEL.value} must be >= 1')
  s = sweeps.load(args[0], _ROOT.value)
  if _SLURM.value:
    script = sweeps.slurm_script(s, _PARTITION.value, _SBATCH.value, _PARALLEL.value,
                                 signal_lead=_SIGNAL_LEAD.value)
    if _DRY_RUN.value:
      print(script, end='')
      return
    path = sweeps.write_slurm_script(s, script)
    todo = sweeps.unfinished_indices(s)
    if not todo:
      print(f'all {len(s.points)} points of {s.name} are finished; nothing to submit ({path})')
      return
    if not shutil.which('sbatch'):
      print(f'wrote {path}; no sbatch here: submit it on the cluster with `sbatch {path}`')
      return
    command = ['sbatch', *([] if len(todo) == len(s.points) else
                           [f'--array={sweeps.array_spec(todo)}' +
                            (f'%{_PARALLEL.value}' if _PARALLEL.value else '')]), path]
    logging.info('submitting %d of %d points: %s', len(todo), len(s.points), ' '.join(command))
    proc = subprocess.run(command, check=False)
    if proc.returncode:
      raise SystemExit(proc.returncode)
    return
  if _DRY_RUN.value:
    for p in s.points:
      print(shlex.join(p.command))
    return
  results = sweeps.run_local(s, _DEVICES.value, _PARALLEL.value or 1)
  print(sweeps.summary(results))
  print(f'report: python -m vae_jax.sweep_report {s.directory}')
  if any(r.status.startswith('failed') for r in results):
    raise SystemExit(1)


if __name__ == '__main__':
  sys.argv = _dash_dash_dry_run(sys.argv)
  cli.run(_sweep, positional=True)
