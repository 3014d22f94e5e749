"""Evaluates a run at its latest (or a given) checkpoint:

  python -m vae_jax.evaluate --workdir=DIR [--num_importance_samples=5000] [--split=test] [--step=N]
                            [--num_examples=N] [--nomeasures] [--parameters=final] [--best_validation]

Writes DIR/eval.json (eval_step{N}.json with --step, eval_validation*.json for
the validation split, eval_first{N}*.json with --num_examples) with the keys
of the training run's eval.json: elbo_nats, nll_nats (importance-sampled
-log p(x) with num_importance_samples samples, never capped),
nll_stderr_nats, recon_nats, kl_nats, kl_per_dim_nats, bits_per_dim,
active_units, binarization. Validation and test images of a
binarized dataset are binarized once with the run's eval.binarization_seed,
as in the literature; the run draws the same importance samples as training's
final evaluation, so k equal to the run's eval.num_importance_samples
reproduces its eval.json. --num_examples evaluates only the split's first N
images, for a quick figure from a model too slow to evaluate whole (a
convolutional HVAE on a CPU): each image's samples are drawn from its index,
so these are exactly the first N of the whole split's per-image results.
--best_validation evaluates the kept checkpoint with the highest validation
ELBO in metrics.jsonl (early stopping, chosen after the run; keep one
checkpoint an epoch to choose among every epoch). --parameters=final
evaluates a run's own parameters instead of their EMA
(eval_final*.json).

A long evaluation (5,000 samples of a hierarchical model take an hour on a
CPU) saves its per-example results after every batch in
DIR/eval.json.progress.npz (beside the file it will write); if it is stopped,
the same command goes on from the first example not done, with the same
numbers, and the progress file is deleted once the eval file is written.
SIGTERM or SIGINT (a preemption) stops it after the batch it is on, once its
results are saved, with exit 75 and `preempted: ...; rerun the same command to
continue` (a second signal stops it at once).
"""

import json

from absl import flags

from vae_jax import cli
from vae_jax import errors
from vae_jax.runs import evaluate as evaluate_lib


def _define_flags() -> None:
  """Defined only when run as a command, so this module imports next to other commands' flags."""
  flags.DEFINE_string('workdir', None, 'The run directory (as written by vae_jax.main); local or gs://.')
  flags.DEFINE_integer('num_importance_samples', 5000, 'Importance samples per example for the NLL.')
  flags.DEFINE_enum('split', 'test', ['test', 'validation'], 'Which split to evaluate.')
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
  flags.DEFINE_bool('best_validation', False, 'Evaluate the kept checkpoint with the highest validation ELBO '
                    '(early stopping); its file is eval_step{N}.json.')
  flags.DEFINE_integer('num_examples', None, "Evaluate only the split's first N images (default: all).")
  flags.DEFINE_bool('measures', None, "Add the metrics the run's eval.metrics names (probe, kNN, Frechet by "
                    "default) when on (default: as the run's eval.measures says); --nomeasures skips them, "
                    'for a quick figure.')
  flags.DEFINE_enum('parameters', None, ['ema', 'final'], "Which parameters (default: the EMA when the run "
                    'keeps one, else the final ones).')
  flags.DEFINE_integer('batch_size', None, "Examples per batch (default: the run's eval.batch_size).")
  flags.DEFINE_string('dispatch', None, 'How the sample chunks are dispatched: scan | unrolled | per_step '
                      "(default: the mode the run chose for training, else scan).")
  flags.mark_flags_as_required(['workdir'])


def _evaluate():
  f = flags.FLAGS
  if f.best_validation and f.step is not None:
    raise errors.ConfigError('give --step or --best_validation, not both')
  step = evaluate_lib.best_validation_step(f.workdir) if f.best_validation else f.step
  results = evaluate_lib.evaluate_run(f.workdir, f.num_importance_samples, f.split, step, f.batch_size, f.dispatch,
                         f.num_examples, f.measures, f.parameters)
  print(json.dumps({k: v for k, v in results.items() if k != 'kl_per_dim_nats'}, indent=2))


if __name__ == '__main__':
  _define_flags()
  cli.run(_evaluate)
