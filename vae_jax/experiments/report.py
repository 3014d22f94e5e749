"""A sweep's points in one table and a plot per swept field: `write_report(dir)`, which
`python -m vae_jax.sweep_report runs/beta_sweep` runs.

It writes DIR/results.md and DIR/results.csv (one row per point: its status,
the swept fields, and the test figures of its eval.json: every scalar figure
of `vae_jax.evaluation.metrics.all_figures` that a finished point has, so a
registered metric gets its column; the Markdown names each column's meaning,
unit and direction below the table) and DIR/plot_FIELD.png for each swept field (x: the field; y: reconstruction, KL,
NLL and ELBO; one line per setting of the other swept fields). Unfinished and
failed points are listed with their status and left out of the plots.
A sweep over `seed` also gets DIR/results_over_seeds.md: each setting of the
other fields once, its figures as mean ± standard deviation over the seeds.
`gather(dir)` returns the rows.

The points come from DIR/sweep.json (written by vae_jax.sweep); without it,
every subdirectory with a config.json is a point, and the swept fields are the
config fields whose values differ between them.
"""

import csv
import dataclasses
import io
import math
import os
import pathlib
from typing import Any, Sequence

from absl import logging
from matplotlib.figure import Figure

from vae_jax import errors
from vae_jax import figures as figures_lib
from vae_jax import models
from vae_jax.evaluation import metrics
from vae_jax.experiments import sweeps
from vae_jax.runtime import files

RESULTS_MD = 'results.md'
RESULTS_CSV = 'results.csv'
OVER_SEEDS_MD = 'results_over_seeds.md'
SEED = 'seed'

_PLOTTED = ('recon_nats', 'kl_nats', 'nll_nats', 'elbo_nats')  # the bound and its terms, against each field
_SETTINGS = ('num_importance_samples', 'step')  # also in the CSV: how the figures were made


@dataclasses.dataclass
class Row:
  name: str
  status: str                  # finished | failed (exit N) | unfinished (step S of T) | not started
  settings: dict[str, Any]     # swept field -> value in this point's config
  results: dict[str, Any] | None  # eval.json, when finished
  kind: str | None = None      # model.kind in its config, whose own figures it may report

  @property
  def finished(self) -> bool:
    return self.status == 'finished'


def _flat(config: dict, prefix: str = '') -> dict[str, Any]:
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = tuple(value) if isinstance(value, list) else value
  return out


def gather(directory: str | os.PathLike) -> tuple[list[str], list[Row]]:
  """(swept fields, one Row per point) of the sweep in `directory`, in the sweep file's order."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise errors.UserError(f'no sweep directory {directory}')
  record = files.read_json_or_none(directory / sweeps.SWEEP_FILE)
  if record is None and (directory / sweeps.SWEEP_FILE).exists():
    logging.warning('%s is damaged; reading the points from the run directories instead (running the sweep '
                    'again writes it anew)', directory / sweeps.SWEEP_FILE)
  if record:
    points = [(p['name'], directory / p['name'], p['overrides']) for p in record['points']]
    fields = list(dict.fromkeys(f for _, _, o in points for f in o))
  else:
    points = [(d.name, d, {}) for d in sorted(directory.iterdir()) if (d / sweeps.CONFIG_FILE).is_file()]
    if not points:
      raise errors.UserError(f'{directory} holds no {sweeps.SWEEP_FILE} and no runs (subdirectories with '
                             f'{sweeps.CONFIG_FILE}); is it ROOT/SWEEP of a sweep?')
    fields = []
  configs = {}
  for name, workdir, _ in points:
    config = files.read_json_or_none(workdir / sweeps.CONFIG_FILE)
    configs[name] = _flat({k: v for k, v in config.items() if k != 'resolved'}) if config else {}
  if not record:  # the fields whose values differ between the runs
    every = list(dict.fromkeys(f for c in configs.values() for f in c))
    fields = [f for f in every if len({repr(c.get(f)) for c in configs.values()}) > 1]
  rows = []
  for name, workdir, overrides in points:
    settings = {f: overrides.get(f, configs[name].get(f)) for f in fields}
    settings = {f: tuple(v) if isinstance(v, list) else v for f, v in settings.items()}
    state = sweeps.status(workdir)
    results = files.read_json_or_none(workdir / sweeps.EVAL_FILE) if state == 'finished' else None
    rows.append(Row(name, state, settings, results, configs[name].get('model.kind')))
  return fields, rows


def columns(rows: Sequence[Row]) -> list[figures_lib.Figure]:
  """The figures shown as columns: the scalar figures (`metrics.all_figures`, with the points' kinds' own) that
  a finished point's eval.json holds as a number, in registry order, less the standard errors shown beside
  their figure."""
  declared = {}
  for kind in [None, *dict.fromkeys(r.kind for r in rows if r.kind in models.MODELS)]:
    for f in metrics.all_figures(models.MODELS[kind] if kind else None):
      declared.setdefault(f.key, f)
  held = {k for r in rows if r.finished for k, v in (r.results or {}).items() if _numeric([v])}
  return figures_lib.shown([f for f in declared.values() if f.scalar and f.key in held], held)


def _cell(value: Any) -> str:
  """A swept field's value for a cell or a tick."""
  if value is None:
    return ''
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, tuple):
    return '(' + ','.join(map(str, value)) + ')'
  return str(value)


def markdown(fields: Sequence[str], rows: Sequence[Row], title: str) -> str:
  """The table as Markdown, each figure with its standard error where it has one, and what each column
  is below it; unfinished points show their status."""
  shown = columns(rows)
  head = ['point', 'status', *fields, *(f.heading for f in shown)]
  lines = [f'# Sweep {title}', '',
           f'{sum(r.finished for r in rows)} of {len(rows)} points finished. Test-set figures from each point\'s '
           'eval.json (means per example), listed below the table; NLL ± its standard error over test examples.',
           '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for r in rows:
    values = [figures_lib.format_value(f, r.results) if r.results and r.results.get(f.key) is not None else ''
              for f in shown]
    status = r.status if r.finished else f'**{r.status}**'
    cells = [f'`{r.name}`', status, *(_cell(r.settings.get(f)) for f in fields), *values]
    lines.append('| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |')
  if shown:
    lines += ['', 'Columns:']
    for f in shown:
      better = f'; {f.direction} is better' if f.direction else ''
      lines.append(f'- {f.heading} (`{f.key}`): {f.description}; {f.unit}{better}')
  return '\n'.join(lines) + '\n'


def csv_text(fields: Sequence[str], rows: Sequence[Row]) -> str:
  """The table as CSV, full precision, one column per figure (`columns`) and its standard error, then how
  the figures were made (units: see results.md; *_nats are nats per example)."""
  shown = columns(rows)
  keys = [f.key for f in shown] + [f.error for f in shown if f.error] + list(_SETTINGS)
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['point', 'status', 'finished', *fields, *keys])
  for r in rows:
    writer.writerow([r.name, r.status, int(r.finished), *(_cell(r.settings.get(f)) for f in fields),
                     *('' if (r.results or {}).get(k) is None else r.results[k] for k in keys)])
  return out.getvalue()


def _numeric(values: Sequence[Any]) -> bool:
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_field(field: str, fields: Sequence[str], rows: Sequence[Row], path: str | os.PathLike | None = None
               ) -> Figure:
  """Metrics against `field`, one line per setting of the other swept fields (finished points only)."""
  done = [r for r in rows if r.finished and r.settings.get(field) is not None]
  others = [f for f in fields if f != field]
  xs = list(dict.fromkeys(r.settings[field] for r in done))
  numeric = _numeric(xs)
  xs = sorted(xs) if numeric else xs
  position = {x: (x if numeric else i) for i, x in enumerate(xs)}
  groups = {}
  for r in done:
    groups.setdefault(tuple(r.settings.get(f) for f in others), []).append(r)
  fig = Figure(figsize=(4.2 * len(_PLOTTED), 3.8), dpi=100, layout='constrained')
  axes = fig.subplots(1, len(_PLOTTED))
  declared = {f.key: f for f in metrics.all_figures()}
  for ax, key in zip(axes, _PLOTTED):
    for setting, members in groups.items():
      members = sorted((r for r in members if (r.results or {}).get(key) is not None),
                       key=lambda r: xs.index(r.settings[field]))
      if not members:
        continue
      label = ', '.join(f'{f.rsplit(".", 1)[-1]}={_cell(v)}' for f, v in zip(others, setting)) or None
      ax.plot([position[r.settings[field]] for r in members], [r.results[key] for r in members], 'o-', label=label)
    if numeric and xs and min(xs) > 0 and max(xs) / min(xs) >= 8:
      ax.set_xscale('log', base=2 if all(math.log2(x).is_integer() for x in xs) else 10)
    if numeric:
      ax.set_xticks(xs, [_cell(x) for x in xs])
      ax.minorticks_off()
    else:
      ax.set_xticks(range(len(xs)), [_cell(x) for x in xs])
    ax.set_xlabel(field)
    ax.set_ylabel(f'{key} ({declared[key].unit})')
    ax.set_title(declared[key].description, fontsize=10)
    ax.grid(alpha=0.3)
  if any(label for label in axes[0].get_legend_handles_labels()[1]):
    axes[0].legend(fontsize=8)
  fig.suptitle(f'Test-set means against {field} ({len(done)} finished points)')
  if path is not None:
    fig.savefig(path)
  return fig


def over_seeds(fields: Sequence[str], rows: Sequence[Row], title: str) -> str:
  """For a sweep over `seed`: one row per setting of the other swept fields, each figure as the mean ± the
  sample standard deviation over its finished seeds, and n, the seeds it has."""
  shown = columns(rows)
  others = [f for f in fields if f != SEED]
  groups: dict[tuple, list[Row]] = {}
  for r in rows:
    groups.setdefault(tuple(_cell(r.settings.get(f)) for f in others), []).append(r)
  head = [*others, 'n', *(f.heading for f in shown)]
  lines = [f'# Sweep {title}, over seeds', '',
           'Each figure: the mean ± the sample standard deviation over the finished seeds (n) of a setting; '
           'test-set figures from each point\'s eval.json, as in results.md.', '',
           '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for setting, members in groups.items():
    done = [r.results for r in members if r.finished and r.results]
    cells = list(setting) + [f'{len(done)} of {len(members)}']
    for f in shown:
      values = [float(d[f.key]) for d in done if _numeric([d.get(f.key)])]
      if not values:
        cells.append('')
        continue
      mean = sum(values) / len(values)
      spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
      cells.append(f'{mean:.{f.decimals}f}' + ('' if spread is None else f' ± {spread:.{f.decimals}f}'))
    lines.append('| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot_name(field: str) -> str:
  return f'plot_{field.replace(".", "_")}.png'


def write_report(directory: str | os.PathLike) -> list[pathlib.Path]:
  """Writes results.md, results.csv and one plot per swept field; returns their paths."""
  directory = pathlib.Path(directory)
  fields, rows = gather(directory)
  written = []
  plots = []
  if any(r.finished for r in rows):
    for field in fields:
      path = directory / plot_name(field)
      plot_field(field, fields, rows, path)
      plots.append(path)
  md = markdown(fields, rows, directory.name)
  if plots:
    md += '\n' + '\n'.join(f'![{p.stem}]({p.name})' for p in plots) + '\n'
  texts = [(RESULTS_MD, md), (RESULTS_CSV, csv_text(fields, rows))]
  if SEED in fields:
    texts.append((OVER_SEEDS_MD, over_seeds(fields, rows, directory.name)))
  for name, text in texts:
    (directory / name).write_text(text)
    written.append(directory / name)
  return written + plots

