"""Writes the standard pictures of a run and a Markdown page around them:

  python -m vae_jax.report --workdir=DIR

DIR/report/ gets one PNG per picture and report.md, which shows them next to
the test figures of DIR/eval.json (`vae_jax.viz.report.write_report`, also
callable from a notebook).
"""

from absl import flags

from vae_jax import cli
from vae_jax.viz import report


def _define_flags() -> None:
  """Defined only when run as a command, so that this module imports next to other commands' flags."""
  flags.DEFINE_string('workdir', None, 'The run directory (as written by vae_jax.main); local or gs://.')
  flags.DEFINE_integer('step', None, 'Checkpoint step to draw (default: the latest).')
  flags.mark_flags_as_required(['workdir'])


def _report():
  print(report.write_report(flags.FLAGS.workdir, flags.FLAGS.step))


if __name__ == '__main__':
  _define_flags()
  cli.run(_report)
