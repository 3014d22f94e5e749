#!/usr/bin/env bash
# Launches one run: ./launch.sh CONFIG WORKDIR [--config.FIELD=VALUE ...]
#   ./launch.sh configs/fashion_mnist.py runs/fmnist_beta4 --config.model.beta=4
# Rerunning the same line resumes the run in WORKDIR. Sweeps over many
# accelerators are described in experiments/README.md.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG WORKDIR [--config.FIELD=VALUE ...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
python=python3
[[ -x "$here/.venv/bin/python" ]] && python="$here/.venv/bin/python"
cd "$here"
exec "$python" -m vae_jax.main --config="$config" --workdir="$workdir" "$@"
