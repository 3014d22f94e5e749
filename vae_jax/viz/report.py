"""The standard pictures of a run and a Markdown page around them: `write_report(workdir)`, which
`python -m vae_jax.report --workdir=DIR` runs.

DIR/report/ gets one PNG per picture (prior samples at temperatures 1 and
0.7, reconstructions, an interpolation, a latent traversal, the mutual
information between latents and factors on data with factors (dsprites), the 2-D manifold when latent_dim=2, the test set's latent means, the training curves) and
report.md, with the text a run wrote (a sequence run's samples.txt), which shows them next to the test figures of DIR/eval.json, each
with its meaning, unit and direction as its metric or kind declares it
(`vae_jax.evaluation.metrics.all_figures`). Pictures that do not apply to the
run (prior samples of an autoencoder) are listed with the reason instead. Every file is written whole or not at all
(a temporary name, then a rename), so a report stopped by a signal (exit 75)
leaves the previous files as they were; rerunning writes them all.
"""

import dataclasses
from typing import Callable

from absl import logging
from etils import epath
import jax
import numpy as np

from vae_jax import data
from vae_jax import figures as figures_lib
from vae_jax.evaluation import metrics
from vae_jax.runs import run as run_lib
from vae_jax.runtime import files
from vae_jax.viz import plots

REPORT_DIR = 'report'
REPORT_FILE = 'report.md'
TRAVERSAL = 'latent_traversal.png'
MUTUAL_INFORMATION = 'mutual_information.png'
# Text a finished run writes beside eval.json (`metrics.OUTPUTS`), shown in report.md as it is: a sequence run's
# prior samples, reconstructions and interpolation.
TEXT_OUTPUTS = ('samples.txt',)
# Pictures a run on data with factors also sends to its writers (TensorBoard) when it ends.
FACTOR_PICTURES = (TRAVERSAL, MUTUAL_INFORMATION)


@dataclasses.dataclass(frozen=True)
class Picture:
  """One PNG of the report: its file, heading and caption, and how to draw it."""
  name: str
  title: str
  caption: str
  draw: Callable  # path -> Figure; raises plots.NotApplicable when the picture does not exist for the run


def _cell(text: str) -> str:
  """Escapes the bars of p(x|z) so they do not split a Markdown table cell."""
  return text.replace('|', '\\|')


def _eval_section(workdir: epath.Path, results: dict | None, figures) -> list[str]:
  """The table of eval.json's figures (those of `figures` it holds, in that order), or how to make it."""
  if results is None:
    return ['## Test-set evaluation', '',
            f'No {plots.EVAL_FILE} in this workdir yet: `python -m vae_jax.evaluate --workdir={workdir}` '
            'writes it.', '']
  lines = ['## Test-set evaluation', '',
           f'From `{plots.EVAL_FILE}`: means over the {results.get("num_examples", "?")} examples of the '
           f'{results.get("split", "test")} split at step {results.get("step", "?")}, per example, in nats '
           f'(binarization: {results.get("binarization", "n/a")}).', '',
           '| metric | value | unit | key | better |', '|---|---|---|---|---|']
  for f in figures_lib.shown(figures, results):
    if results[f.key] is None and not f.scalar:  # a number the run lacks reads n/a; a list or setting is left out
      continue
    value = figures_lib.format_value(f, results, ' (standard error)')
    lines.append(f'| {_cell(f.description)} | {value} | {f.unit} | `{f.key}` | {f.direction} |')
  if results.get('elbo_nats') is None:
    lines += ['', 'This run has no likelihood of x (an autoencoder): only the reconstruction is reported.']
  if results.get('likelihood_of') == 'log p(x|y)':
    lines += ['', 'This model is conditioned on the class label y: its ELBO and NLL are those of x given its '
              'label, −log p(x|y), with p(z|y) in place of p(z).']
  return lines + ['']


def _class_pairs(labels: np.ndarray | None, num_pairs: int, same_class: bool = False,
                 num_examples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Indices of the first test image of label c and of label c+1 (`same_class`: the second of label c),
  for the first `num_pairs` labels (without labels: images i and i+1 of the `num_examples`)."""
  if labels is None and num_examples is not None:
    num_pairs = max(1, min(num_pairs, num_examples - 1))
  labels = np.zeros(0, np.int32) if labels is None else labels
  classes = [c for c in np.unique(labels) if not same_class or np.sum(labels == c) > 1]
  members = [np.flatnonzero(labels == c) for c in classes]
  if len(members) < 2:
    return np.arange(num_pairs), np.arange(1, num_pairs + 1)
  idx = np.arange(min(num_pairs, len(members)))
  ends = [members[i][1] if same_class else members[(i + 1) % len(members)][0] for i in idx]
  return np.asarray([members[i][0] for i in idx]), np.asarray(ends)


def pictures(run: run_lib.Run, dataset: data.Dataset, results: dict | None, seed: int = 0) -> list[Picture]:
  """Every picture of the report, each drawn on demand with keys derived from `seed`."""
  test = dataset.test
  labels = lambda rows: None if test.labels is None else test.labels[rows]  # data without labels: None
  first_label = None if test.labels is None else int(test.labels[0])
  key = jax.random.key(seed)
  # A conditional model's z holds what the label does not, so its interpolations stay within a class.
  starts, ends = _class_pairs(test.labels, 5, same_class=run.conditional, num_examples=len(test.examples))
  pair_ends = ('the other image of the same label, both encoded and decoded with that label' if run.conditional
               else 'the first test image of the next label')

  def kl_per_dim():
    if results and results.get('kl_per_dim_nats'):
      return results['kl_per_dim_nats']
    return plots.latent_kl(run, test.images, labels=test.labels)

  kl_source = 'eval.json' if results and results.get('kl_per_dim_nats') else 'the test images'
  factor_names = () if dataset.factors is None else dataset.factors.names
  return [
      Picture('prior_samples.png', 'Prior samples', 'Samples from the prior: E[x|z] for z ~ p(z).',
              lambda p: plots.prior_samples(run, jax.random.fold_in(key, 0), 64, 1.0, path=p)),
      Picture('prior_samples_t0.7.png', 'Prior samples at temperature 0.7',
              'The same prior draws with every spread scaled by 0.7: less varied, more typical.',
              lambda p: plots.prior_samples(run, jax.random.fold_in(key, 0), 64, 0.7, path=p)),
      Picture('prior_samples_by_temperature.png', 'Prior samples by temperature',
              'One row per temperature (1, 0.85, 0.7, 0.5), the same draws in every row.',
              lambda p: plots.samples_by_temperature(run, jax.random.fold_in(key, 0), path=p)),
      Picture('samples_by_class.png', 'Samples by class',
              'A conditional model: one row of samples per class, z ~ p(z|y) decoded with the label y.',
              lambda p: plots.samples_by_class(run, jax.random.fold_in(key, 2), path=p)),
      Picture('reconstructions.png', 'Reconstructions',
              'Test images (rows marked input) with their reconstructions below them.',
              lambda p: plots.reconstructions(run, test.images[:32], jax.random.fold_in(key, 1), path=p,
                                              labels=labels(slice(32)))),
      Picture('interpolation.png', 'Interpolation',
              'Straight lines in latent space between the posterior means of the first test image of a label '
              f'and {pair_ends}, decoded.',
              lambda p: plots.interpolation(run, test.images[starts], test.images[ends], path=p,
                                            labels=labels(starts))),
      Picture(TRAVERSAL, 'Latent traversal',
              'One latent dimension at a time moved around the posterior mean of a test image; rows are the '
              f'dimensions with the most KL (per-dimension KL from {kl_source}).',
              lambda p: plots.latent_traversal(run, test.images[0], kl_per_dim(), path=p,
                                               label=first_label)),
      Picture(MUTUAL_INFORMATION, 'Latents and factors',
              'Data with known factors: the mutual information (nats) between each latent dimension\'s posterior '
              'mean, in 20 equal-width bins as MIG reads it, and each factor, over the test split; rows by KL. A '
              'disentangled code has one bright cell in each row and column.',
              lambda p: plots.mutual_information(run, test.images, test.factors, factor_names, test.labels,
                                                 kl_per_dim(), path=p)),
      Picture('latent_manifold.png', 'The 2-D latent manifold',
              'The decoder over the 2-D latent space, on a grid at Gaussian quantiles (a conditional model: as '
              'the first test image\'s label).',
              lambda p: plots.latent_manifold(run, path=p, label=first_label)),
      Picture('latent_scatter.png', 'Test images in latent space',
              'Where the test images land in latent space, colored by label.',
              lambda p: plots.latent_scatter(run, test.images, test.labels, path=p)),
      Picture('training_curves.png', 'Training curves',
              'ELBO, reconstruction and KL during training, train and validation.',
              lambda p: plots.training_curves(run, path=p)),
  ]


def factor_images(run: run_lib.Run, dataset: data.Dataset, results: dict | None) -> dict[str, np.ndarray]:
  """Data with factors: the latent traversal and the latent-factor mutual information as images for the
  run's writers (tag -> (H, W, 3) floats), each left out when it does not apply; {} for other data."""
  if dataset.factors is None:
    return {}
  images = {}
  for picture in pictures(run, dataset, results):
    if picture.name in FACTOR_PICTURES:
      try:
        images[f'pictures/{picture.name.removesuffix(".png")}'] = plots.figure_image(picture.draw(None))
      except plots.NotApplicable as e:
        logging.info('not drawn for the writers: %s: %s', picture.name, e)
  return images


def write_report(workdir: epath.PathLike, step: int | None = None, seed: int = 0) -> epath.Path:
  """Writes WORKDIR/report/*.png and report.md for the run in `workdir`; returns report.md's path."""
  workdir = epath.Path(workdir)
  run = run_lib.load_run(workdir, step)
  dataset = data.load(run.config)
  results = plots.read_eval(workdir)
  out = workdir / REPORT_DIR
  out.mkdir(parents=True, exist_ok=True)
  shown, skipped = [], []
  for picture in pictures(run, dataset, results, seed):
    try:
      with files.replacing(out / picture.name) as tmp:  # a stopped report leaves no half PNG
        picture.draw(tmp)
    except plots.NotApplicable as e:
      logging.info('skipping %s: %s', picture.name, e)
      skipped.append((picture.name, str(e)))
      continue
    logging.info('wrote %s', out / picture.name)
    shown.append(picture)
  m = run.config.model
  lines = [f'# Run report: `{workdir}`', '',
           f'{m.kind} ({m.encoder} {tuple(m.hidden_sizes)}, latent_dim={run.model.latent_dim} in groups of '
           f'{tuple(run.model.group_sizes)}, {m.prior} prior, {m.likelihood} likelihood) on '
           f'{run.config.data.name}, pictures drawn at checkpoint step {run.step}. '
           f'Written by `python -m vae_jax.report --workdir={workdir}`.', '']
  lines += _eval_section(workdir, results, metrics.all_figures(run.model))
  lines += ['## Pictures', '']
  for picture in shown:
    lines += [f'### {picture.title}', '', picture.caption, '', f'![{picture.title}]({picture.name})', '']
  for name in TEXT_OUTPUTS:
    if (workdir / name).exists():  # what the run wrote as text (token sequences: samples.txt), verbatim
      lines += [f'## {name}', '', '```text', (workdir / name).read_text(encoding='utf-8').rstrip(), '```', '']
  if skipped:
    lines += ['## Not drawn for this run', ''] + [f'- `{name}`: {why}' for name, why in skipped] + ['']
  path = out / REPORT_FILE
  with files.replacing(path) as tmp:
    tmp.write_text('\n'.join(lines))
  logging.info('wrote %s', path)
  return path

