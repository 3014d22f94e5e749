"""Trains and evaluates a model: python -m vae_jax.main --config=configs/fashion_mnist.py --workdir=DIR

Any config field can be overridden, e.g. --config.model.latent_dim=2.
Rerunning the same command on the same workdir resumes it.
"""

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from vae_jax import cli
from vae_jax.training import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file in configs/.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory of the run: checkpoints, metrics, images, eval.json.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Multi-process run (several hosts, SLURM, a TPU pod): call jax.distributed.initialize(), '
    'which reads the coordinator and process ids from the environment, before anything else.')
_REPLACE_RUN = flags.DEFINE_bool(
    'replace_run', False, 'If --workdir holds a run of another config, move it to WORKDIR.old-N and start afresh '
    '(without this flag such a workdir is refused).')
flags.mark_flags_as_required(['config', 'workdir'])


def _train_and_evaluate():
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
    logging.info('process %d of %d; %d devices in all', jax.process_index(), jax.process_count(), jax.device_count())
  train.train_and_evaluate(cli.config_value(_CONFIG), _WORKDIR.value, replace_run=_REPLACE_RUN.value)


if __name__ == '__main__':
  cli.run(_train_and_evaluate)
