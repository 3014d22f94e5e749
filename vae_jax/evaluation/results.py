"""An evaluation's results: eval.json put together in one place (`assemble`), for training's final
evaluation and `vae_jax.runs.evaluate.evaluate_run` alike; the metrics it runs (`measured`); and what
TensorBoard and metrics.jsonl get of it (`scalars`, read from the figures the metrics and the kind declare).
"""

from vae_jax.evaluation import metrics
from vae_jax.runtime import keys as keys_lib


def assemble(evaluated: dict, config, *, split: str, step: int, parameters: str, dispatch: str, seconds: float,
             measured: dict | None = None) -> dict:
  """eval.json's contents, as training's final evaluation and `evaluate_run` write them: the Evaluator's
  figures, how they were made, then the metrics' keys (`measured`)."""
  binarization = config.data.binarize
  if binarization != 'none':
    binarization += f' ({split} binarized once, seed {config.eval.binarization_seed})'
  return dict(evaluated, split=split, step=step, binarization=binarization, parameters=parameters,
              dispatch=dispatch,  # the programs that trained and evaluated: their rounding is in the figures
              eval_seconds=round(seconds, 2),  # the ELBO and NLL alone, as both time them
              **(measured or {}))


def measured(model, params, config, dataset, chosen=None) -> dict:
  """eval.json's keys of the metrics config.eval.metrics names (or `chosen`), with the run's metric key."""
  ctx = metrics.Context(model, params, config, dataset, keys_lib.measures_key(config.seed))
  return metrics.compute(ctx, chosen)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _group_scalars(results: dict) -> dict[str, float]:
  """Per-group KL and active units as scalars, for models with more than one latent group."""
  out = {}
  for key, name in (('kl_per_group_nats', 'kl_group_{}_nats'), ('active_units_per_group', 'active_units_group_{}')):
    values = results.get(key) or []
    if len(values) > 1:
      out.update({name.format(g): v for g, v in enumerate(values)})
  return out


def scalars(results: dict, model, validation: bool = False) -> dict[str, float]:
  """What TensorBoard and metrics.jsonl get of an evaluation: the figures of `metrics.all_figures(model)`
  that are scalar (with `validation`: logged at validations) and are numbers in `results`, in the results'
  order, then each latent group's KL and active units when there is more than one group."""
  keys = {f.key for f in metrics.all_figures(model) if (f.validation if validation else f.scalar)}
  return {k: v for k, v in results.items() if k in keys and _is_number(v)} | _group_scalars(results)
