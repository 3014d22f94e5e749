#!/usr/bin/env bash
# Launches one run, or every point of a sweep:
#   ./launch.sh CONFIG WORKDIR [--config.FIELD=VALUE ...]
#   ./launch.sh configs/fashion_mnist.py runs/fmnist_beta4 --config.model.beta=4
#   ./launch.sh sweep experiments/beta_sweep.py [--devices=0,1,2,3] [--parallel=N] [--dry-run] [--slurm [--partition=P]]
# Rerunning the same line resumes the run in WORKDIR (a sweep: skips its finished
# points, resumes the others). Sweeps are described in experiments/README.md.
set -euo pipefail
usage="usage: $0 CONFIG WORKDIR [--config.FIELD=VALUE ...]
       $0 sweep SWEEP_FILE [--root=runs] [--devices=0,1] [--parallel=N] [--dry-run] [--slurm] [--partition=P]"
here=$(cd "$(dirname "$0")" && pwd)
python=python3
[[ -x "$here/.venv/bin/python" ]] && python="$here/.venv/bin/python"
if [[ ${1:-} == sweep ]]; then
  if [[ $# -lt 2 ]]; then
    echo "$usage" >&2
    exit 2
  fi
  shift
  cd "$here"
  exec "$python" -m vae_jax.sweep "$@"
fi
if [[ $# -lt 2 ]]; then
  echo "$usage" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
cd "$here"
exec "$python" -m vae_jax.main --config="$config" --workdir="$workdir" "$@"
