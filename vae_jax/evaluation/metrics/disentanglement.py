"""`disentanglement`: the field's seven disentanglement scores of the encodings, on data with known factors.

The representation is `encode`'s output (a VAE's posterior means) of images
drawn by factor value through `dataset.factors` (`vae_jax.data.Factors`):
rendered and encoded CHUNK_IMAGES at a time, never the FactorVAE score's
10,000 at once. Definitions and sample sizes are disentanglement_lib's
(`vae_jax.evaluation.disentanglement`, which says where they come from);
each number's `*_estimator` key in eval.json says how it was made.

At those sizes (config.eval.disentanglement's defaults) the metric encodes
about 2.9 million images, the BetaVAE score's 15,000 points of 64 pairs
among them, and fits DCI's trees on 10,000 codes; a sweep may shrink them,
and eval.json records the sizes used.

  beta_vae_score, factor_vae_score   accuracies (fractions): chance is 1 / the factors that vary
  mig, dci_disentanglement,          scores in [0, 1]: 0 when the codes hold nothing of the factors
  dci_completeness, sap
  dci_informativeness                mean test accuracy of the DCI classifiers (a fraction)

MIG, DCI and SAP read one set of NUM_TRAIN training and NUM_TEST test draws
(disentanglement_lib draws a fresh set for each: the same distribution, a
third of the encoding). Each estimator draws from its own stream of the
metric's key, so changing one's sample size changes no other's draws.
"""

import pathlib
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data
from vae_jax import errors
from vae_jax import progress
from vae_jax.evaluation import disentanglement as dis
from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure
from vae_jax.runtime import files

SCORE = 'score (0 to 1)'
# The estimators' sample sizes: config.eval.disentanglement's fields, whose defaults are disentanglement_lib's
# (unsupervised_study_v1), and the least each may be.
SIZE_MINIMA = {'num_train': 2, 'num_test': 1, 'score_batch_size': 2, 'score_num_train': 2, 'score_num_eval': 1,
               'num_variance_estimate': 2}
# fold_in of the metric's key that each estimator draws from (and the binarization of the images it encodes)
STREAMS = {'codes': 0, 'beta_vae': 1, 'factor_vae': 2, 'binarize': 3}


def describe(sizes: dict) -> dict:
  """eval.json's words on each estimator, with its settings."""
  n_tr, n_te, b = f'{sizes["num_train"]:,}', f'{sizes["num_test"]:,}', sizes['score_batch_size']
  per_factor = 'factors of one value left out'
  return {
      'beta_vae_score_estimator': f'logistic regression (scikit-learn defaults) on the mean |z1 - z2| of {b} image '
                                  f'pairs sharing one factor; {sizes["score_num_train"]:,} training and '
                                  f'{sizes["score_num_eval"]:,} eval points; eval accuracy',
      'factor_vae_score_estimator': f'majority vote from the least-variance code of {b} images with one factor '
                                    f'fixed; variances over the global ones of {sizes["num_variance_estimate"]:,} '
                                    f'images, codes of global std < {dis.PRUNE_THRESHOLD} left out; '
                                    f'{sizes["score_num_train"]:,} training and {sizes["score_num_eval"]:,} eval '
                                    'batches',
      'mig_estimator': f'{n_tr} draws, codes in {dis.NUM_BINS} equal-width bins, gap over the factor entropy '
                       f'(nats); {per_factor}',
      'dci_estimator': f'scikit-learn GradientBoostingClassifier (defaults) per factor, importances; fitted on '
                       f'{n_tr} draws, informativeness = test accuracy on {n_te}; {per_factor}',
      'sap_estimator': f'linear SVM (C={dis.SAP_C}, balanced) per code and factor, discrete factors; fitted on '
                       f'{n_tr} draws, accuracy on {n_te}; {per_factor}',
  }


def _rng(key: jax.Array, stream: str) -> np.random.Generator:
  return np.random.default_rng(int(jax.random.randint(jax.random.fold_in(key, STREAMS[stream]), (), 0, 2**31 - 1)))


class Disentanglement(base.Metric):
  name = 'disentanglement'
  needs = frozenset({'factors'})
  figures = (
      Figure('beta_vae_score', 'BetaVAE score: accuracy of a linear classifier naming the factor two batches of '
             'image pairs share, from their codes', 'fraction', True, label='BetaVAE', decimals=3),
      Figure('factor_vae_score', 'FactorVAE score: accuracy of a majority vote naming the fixed factor from the '
             'code of least variance', 'fraction', True, label='FactorVAE', decimals=3),
      Figure('mig', 'mutual information gap: the two codes most informative of each factor, their difference '
             'over its entropy', SCORE, True, label='MIG', decimals=3),
      Figure('dci_disentanglement', 'DCI disentanglement: how few factors each code is important for (tree '
             'importances)', SCORE, True, label='DCI-D', decimals=3),
      Figure('dci_completeness', 'DCI completeness: how few codes each factor is captured by', SCORE, True,
             label='DCI-C', decimals=3),
      Figure('dci_informativeness', 'DCI informativeness: test accuracy of tree classifiers reading each factor '
             'from the codes', 'fraction', True, label='DCI-I', decimals=3),
      Figure('sap', 'SAP: the gap in accuracy between the two codes best at predicting each factor alone',
             SCORE, True, label='SAP', decimals=3),
  )

  def check_config(self, config) -> None:
    if not data.find(config.data.name).has_factors:
      raise errors.ConfigError(f'eval.metrics names {self.name}, which draws images by factor value, but '
                               f'data.name={config.data.name} has no known factors: use data with factors '
                               '(dsprites, tfds:dsprites, tfds:shapes3d) or leave the metric out')
    for field, least in SIZE_MINIMA.items():
      value = config.eval.disentanglement[field]
      if not isinstance(value, int) or value < least:
        raise errors.ConfigError(f'eval.disentanglement.{field}={value!r} must be an integer >= {least}')

  def compute(self, ctx: base.Context) -> dict:
    reason = self.applies(ctx)
    if reason:
      raise errors.DataError(reason)
    start, factors = time.perf_counter(), ctx.dataset.factors
    sizes = {field: int(ctx.config.eval.disentanglement[field]) for field in SIZE_MINIMA}
    encode = self.images_encoder(ctx)
    rng = _rng(ctx.key, 'codes')
    with progress.stage(f'encoding {sizes["num_train"]:,} + {sizes["num_test"]:,} images drawn by factor value'):
      codes_tr, f_tr = dis.sample_codes(encode, factors, rng, sizes['num_train'])
      codes_te, f_te = dis.sample_codes(encode, factors, rng, sizes['num_test'])
    out = {'mig': dis.mig(codes_tr, f_tr)}
    with progress.stage(f'DCI: gradient-boosted trees on {len(codes_tr):,} codes of {codes_tr.shape[1]} dims'):
      out['dci_disentanglement'], out['dci_completeness'], out['dci_informativeness'] = dis.dci(
          codes_tr, f_tr, codes_te, f_te, seed=ctx.config.seed)
    with progress.stage(f'SAP: {codes_tr.shape[1]} x {factors.num_factors} linear SVMs'):
      out['sap'] = dis.sap(codes_tr, f_tr, codes_te, f_te)
    b, n_train, n_eval = sizes['score_batch_size'], sizes['score_num_train'], sizes['score_num_eval']
    pairs = (n_train + n_eval) * b
    with progress.stage(f'BetaVAE score: {2 * pairs:,} images in pairs'):
      out['beta_vae_score'] = dis.beta_vae_score(encode, factors, _rng(ctx.key, 'beta_vae'), b, n_train, n_eval)
    with progress.stage(f'FactorVAE score: {pairs + sizes["num_variance_estimate"]:,} images'):
      out['factor_vae_score'] = dis.factor_vae_score(
          encode, factors, _rng(ctx.key, 'factor_vae'), b, n_train, n_eval, sizes['num_variance_estimate'])
    out = {f.key: out[f.key] for f in self.figures}
    out.update(describe(sizes))
    out['disentanglement_factors'] = ', '.join(f'{n} ({s} values)' for n, s in zip(factors.names, factors.sizes))
    out['disentanglement_representation'] = 'posterior means (encode)' if ctx.model.stochastic else 'codes (encode)'
    out['disentanglement_seconds'] = round(time.perf_counter() - start, 2)
    return out

  @staticmethod
  def images_encoder(ctx: base.Context):
    """stored images (n, H, W, C) -> (n, d) numpy codes, as the model reads them: decoded, binarized when the
    run binarizes (fresh Bernoulli draws each call, from the metric's key), eval.batch_size at a time."""
    spec, config = ctx.dataset.spec, ctx.config
    fn = base.encoder(ctx.model, ctx.params)
    shape = tuple(ctx.dataset.factors.render(np.zeros((1, ctx.dataset.factors.num_factors), np.int32)).shape[1:])
    if shape != tuple(spec.shape):
      raise errors.DataError(f'the factors of {ctx.dataset.name} render images of shape {shape}, but the model reads '
                             f'{spec.describe()}; the disentanglement metric needs data at their own size (no '
                             'data.image_size)')
    draws = _rng(ctx.key, 'binarize') if config.data.binarize != 'none' else None

    def encode(images):
      x = spec.decode(np.asarray(images))
      if draws is not None:
        x = (draws.random(x.shape, dtype=np.float32) < x).astype(np.float32)
      step = config.eval.batch_size
      return np.concatenate([np.asarray(fn(jnp.asarray(x[i:i + step]), None)) for i in range(0, len(x), step)])
    return encode


REPRESENTATION_FILE = 'representation.npz'


@base.register_output(REPRESENTATION_FILE)
def write_representation(ctx: base.Context, results: dict, workdir) -> dict:
  """WORKDIR/representation.npz for a run on data with factors, so that any disentanglement metric can be
  recomputed outside vae_jax: the test split's representation (`encode`: a VAE's posterior means), its
  factor indices, the factors' names and sizes, and the latent-factor mutual information (nats, MIG's
  20-bin estimate). Written whole or not at all."""
  del results
  dataset = ctx.dataset
  test = dataset.test
  if dataset.factors is None or test.factors is None:
    return {}
  fn, labels = base.encoder(ctx.model, ctx.params), test.labels
  step = ctx.config.eval.batch_size
  shown = progress.Progress(f'encoding the test split for {REPRESENTATION_FILE}', len(test.examples), 'examples')
  parts = []
  for i in range(0, len(test.examples), step):
    x = data.Split(np.asarray(test.examples[i:i + step]), None, test.spec).decoded()
    y = None if labels is None else jnp.asarray(labels[i:i + step])
    parts.append(np.asarray(fn(jnp.asarray(x), y), np.float32))
    shown.update(i + len(x))
  means, factors = np.concatenate(parts), np.asarray(test.factors, np.int32)
  path = pathlib.Path(workdir) / REPRESENTATION_FILE
  with files.replacing(path, '.npz') as tmp:
    np.savez(tmp, means=means, factors=factors, factor_names=np.array(dataset.factors.names),
             factor_sizes=np.array(dataset.factors.sizes, np.int32),
             mutual_information_nats=dis.mutual_information_matrix(means, factors).astype(np.float32),
             representation=np.array('posterior means (encode)' if ctx.model.stochastic else 'codes (encode)'))
  logging.info('wrote the representation of %d test images and their factors to %s', len(means), path)
  return {}
