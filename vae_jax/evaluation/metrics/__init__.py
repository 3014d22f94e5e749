"""Metrics as a registry: what an evaluation reports of a trained model, one module per metric.

  likelihood       the ELBO, its terms, the importance-sampled NLL, active
                   units: computed by `vae_jax.evaluation.Evaluator` for every
                   evaluation; declared here.
  representation   probe and k-NN accuracy of the encodings (labelled data).
  samples          Fréchet distances of samples and reconstructions in the
                   dataset's classifier's features; conditional sample accuracy.
  table            SDMetrics' quality scores and a detection classifier's accuracy
                   of synthetic rows of a table against its test rows.
  disentanglement  the BetaVAE and FactorVAE scores, MIG, DCI and SAP of the
                   encodings of images drawn by factor value (data with factors).
  mutual_information  I(x; z) under the encoder (He et al. 2019's estimator).
  sequence         token accuracy of reconstructions from q's mean (sequence kinds).

After the final test evaluation (and in vae_jax.evaluate), the metrics that
config.eval.metrics names run when config.eval.measures is on, in that order.

Outputs (`base.OUTPUTS`, `write_outputs`) are the files a finished run
writes beside eval.json by what its data have, whatever metrics are chosen:

  samples.csv         a table's synthetic rows, in its own units (table)
  samples.txt         token sequences: prior samples, reconstructions, an
                      interpolation (sequence)
  representation.npz  data with factors: the test split's posterior means and
                      factors (disentanglement); with the MI matrix and the
                      latent traversal as images for TensorBoard

Adding a metric: subclass `Metric` (its name, figures and needs, `compute`)
and `register` it; name it in config.eval.metrics. eval.json, TensorBoard and
metrics.jsonl (its scalar figures, as test/KEY), report.md and the sweep
report then show it, with nothing else to edit.
"""

from absl import logging

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.evaluation.metrics import disentanglement
from vae_jax.evaluation.metrics import likelihood
from vae_jax.evaluation.metrics import mutual_information
from vae_jax.evaluation.metrics import representation
from vae_jax.evaluation.metrics import samples
from vae_jax.evaluation.metrics import sequence
from vae_jax.evaluation.metrics import table
from vae_jax.evaluation.metrics.base import METRICS
from vae_jax.evaluation.metrics.base import NEEDS
from vae_jax.evaluation.metrics.base import OUTPUTS
from vae_jax.evaluation.metrics.base import Context
from vae_jax.evaluation.metrics.base import Metric
from vae_jax.evaluation.metrics.base import register
from vae_jax.figures import Figure

__all__ = ['Context', 'Figure', 'METRICS', 'Metric', 'NEEDS', 'OUTPUTS', 'all_figures', 'check_config', 'compute',
           'register', 'write_outputs']


# The registry, in the order eval.json, reports and writers list the figures.
for _metric in (likelihood.Likelihood, representation.Representation, samples.Samples, table.Table,
                disentanglement.Disentanglement, mutual_information.MutualInformation, sequence.Sequence):
  register(_metric)


def check_config(config) -> None:
  """Raises errors.ConfigError unless config.eval.metrics names registered metrics, each once (read from
  METRICS when called, so a metric registered after import counts)."""
  chosen = config_lib.name_list(config.eval.metrics)
  allowed = [name for name, metric in METRICS.items() if metric.selectable]
  for name in chosen:
    if name not in allowed:
      why = (f'{name} is computed by every evaluation; ' if name in METRICS else f'{name!r} is not allowed; ')
      raise errors.ConfigError(f'eval.metrics: {why}use any of {", ".join(allowed)}')
    if chosen.count(name) > 1:
      raise errors.ConfigError(f'eval.metrics names {name} twice; name each metric once')
    METRICS[name].check_config(config)


def _kind(model):
  return model if isinstance(model, type) or model is None else type(model)


def all_figures(model=None) -> tuple[Figure, ...]:
  """Every figure an evaluation can report: the likelihood figures, the kind's own (`Kind.figures`, when
  `model`, a kind or its class, is given), then the other registered metrics', in registry order. A key
  declared twice keeps its first declaration."""
  kind = _kind(model)
  ordered = []
  for name, metric in METRICS.items():
    ordered += metric.figures
    if name == 'likelihood' and kind is not None:
      ordered += getattr(kind, 'figures', ())
  out = {}
  for figure in ordered:
    out.setdefault(figure.key, figure)
  return tuple(out.values())


def compute(ctx: Context, chosen=None) -> dict:
  """eval.json's keys of the metrics `chosen` (default: config.eval.metrics), in that order; a metric the run
  does not have what it needs for is skipped with one log line."""
  out = {}
  for name in config_lib.name_list(ctx.config.eval.metrics if chosen is None else chosen):
    metric = METRICS[name]
    reason = metric.applies(ctx)
    if reason:
      logging.info('metric %s: not computed, %s', name, reason)
      continue
    out.update(metric.compute(ctx))
  return out


def write_outputs(ctx: Context, results: dict, workdir) -> dict:
  """Runs every registered output (`base.OUTPUTS`) for a finished run: the files they write into `workdir`,
  and the images they return for the run's writers, merged."""
  images = {}
  for output in OUTPUTS.values():
    images.update(output(ctx, results, workdir) or {})
  return images
