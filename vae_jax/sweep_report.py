"""Gathers a sweep's points into one table and a plot per swept field:

  python -m vae_jax.sweep_report runs/beta_sweep        # or --dir=runs/beta_sweep

writes DIR/results.md, DIR/results.csv and DIR/plot_FIELD.png for each swept
field (`vae_jax.experiments.report.write_report`, also callable from a notebook).
"""

from absl import flags

from vae_jax import cli
from vae_jax import errors
from vae_jax.experiments import report

_DIR = flags.DEFINE_string('dir', None, 'The sweep directory, ROOT/SWEEP (or give it as the argument).')


def _main(args: list[str]) -> None:
  given = list(args) + ([_DIR.value] if _DIR.value else [])
  if len(given) != 1:
    raise errors.UserError('give one sweep directory: python -m vae_jax.sweep_report runs/SWEEP')
  for path in report.write_report(given[0]):
    print(path)
  _, rows = report.gather(given[0])
  print(f'{sum(r.finished for r in rows)} of {len(rows)} points finished')


if __name__ == '__main__':
  cli.run(_main, positional=True)
