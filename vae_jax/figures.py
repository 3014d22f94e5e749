"""What a reported number is: a `Figure` names an eval.json key with its meaning, unit and direction.

Metrics (`vae_jax.evaluation.metrics`) and kinds (`Kind.figures`) declare
their figures; TensorBoard and metrics.jsonl, report.md and the sweep report
read them there, so a new figure needs no list of its own anywhere else.
A leaf module: it imports nothing of vae_jax.
"""

import dataclasses
from typing import Any

# Lists longer than this are summarized in a table cell (a conv latent's per-dimension KL has hundreds).
MAX_LISTED = 16


@dataclasses.dataclass(frozen=True)
class Figure:
  """One number (or list of numbers) of an evaluation, under its eval.json key.

  scalar: a number that TensorBoard and metrics.jsonl get as test/KEY after
    the final evaluation (a list, or a setting such as the number of
    importance samples, is not);
  validation: also logged as validation/KEY at each validation (figures the
    Evaluator or the kind computes: validation runs no other metric);
  label: a short heading for table columns and plot titles (default: the key);
  decimals: shown in tables with this many decimals (a float);
  error: the key of this figure's standard error, shown beside it as ± and
    not on its own.
  """
  key: str
  description: str
  unit: str
  higher_is_better: bool | None = None
  scalar: bool = True
  validation: bool = False
  label: str | None = None
  decimals: int = 2
  error: str | None = None

  @property
  def heading(self) -> str:
    return self.label or self.key

  @property
  def direction(self) -> str:
    """'higher', 'lower' or '' (neither is better: a KL, a count of samples)."""
    return {True: 'higher', False: 'lower', None: ''}[self.higher_is_better]


def shown(figures, results: dict) -> list[Figure]:
  """The figures present in `results`, in the order given, less those shown as another's error."""
  errors = {f.error for f in figures if f.error}
  return [f for f in figures if f.key in results and f.key not in errors]


def format_value(figure: Figure, results: dict, error_note: str = '') -> str:
  """`figure`'s value in `results` for a table cell: 'n/a' when None; a float with the figure's decimals,
  its standard error after ± (then `error_note`); a long list summarized by its size and range."""
  value = results.get(figure.key)
  if value is None:
    return 'n/a'
  error = results.get(figure.error) if figure.error else None
  if error is not None and isinstance(value, (int, float)):
    return f'{value:.{figure.decimals}f} ± {error:.{figure.decimals}f}{error_note}'
  if isinstance(value, list):
    if len(value) > MAX_LISTED and all(_is_number(v) for v in value):
      return f'{len(value)} values, {min(value):.{figure.decimals}f} to {max(value):.{figure.decimals}f}'
    return ', '.join(_number(v, figure.decimals) for v in value)
  return _number(value, figure.decimals)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, decimals: int) -> str:
  return f'{value:.{decimals}f}' if isinstance(value, float) else str(value)
