"""`disentanglement`: the field's seven disentanglement scores of the encodings, on data with known factors.

The representation is `encode`'s output (a VAE's posterior means) of images
drawn by factor value through `dataset.factors` (`vae_jax.data.Factors`):
rendered and encoded CHUNK_IMAGES at a time, never the FactorVAE score's
10,000 at once. Definitions and sample sizes are disentanglement_lib's
(`vae_jax.evaluation.disentanglement`, which says where they come from);
each number's `*_estimator` key in eval.json says how it was made.

At those sizes the metric encodes about 2.9 million images (the BetaVAE
score 1.9 million: 15,000 points of 64 pairs) and fits DCI's trees, about 5
minutes on one core for dSprites; `SIZES` holds the sizes it uses.

  beta_vae_score, factor_vae_score   accuracies (fractions): chance is 1 / the factors that vary
  mig, dci_disentanglement,          scores in [0, 1]: 0 when the codes hold nothing of the factors
  dci_completeness, sap
  dci_informativeness                mean test accuracy of the DCI classifiers (a fraction)

MIG, DCI and SAP read one set of NUM_TRAIN training and NUM_TEST test draws
(disentanglement_lib draws a fresh set for each: the same distribution, a
third of the encoding). Each estimator draws from its own stream of the
metric's key, so changing one's sample size changes no other's draws.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import errors
from vae_jax import progress
from vae_jax.evaluation import disentanglement as dis
from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure

SCORE = 'score (0 to 1)'
# The estimators' sample sizes, disentanglement_lib's defaults (unsupervised_study_v1); read when the metric
# runs, so a test or a notebook can shrink them here.
SIZES = {'num_train': dis.NUM_TRAIN, 'num_test': dis.NUM_TEST, 'batch_size': dis.BATCH_SIZE,
         'num_eval': dis.NUM_EVAL, 'num_variance_estimate': dis.NUM_VARIANCE_ESTIMATE}
# fold_in of the metric's key that each estimator draws from (and the binarization of the images it encodes)
STREAMS = {'codes': 0, 'beta_vae': 1, 'factor_vae': 2, 'binarize': 3}


def describe(sizes: dict) -> dict:
  """eval.json's words on each estimator, with its settings."""
  n_tr, n_te, b = f'{sizes["num_train"]:,}', f'{sizes["num_test"]:,}', sizes['batch_size']
  per_factor = 'factors of one value left out'
  return {
      'beta_vae_score_estimator': f'logistic regression (scikit-learn defaults) on the mean |z1 - z2| of {b} image '
                                  f'pairs sharing one factor; {sizes["num_train"]:,} training and '
                                  f'{sizes["num_eval"]:,} eval points; eval accuracy',
      'factor_vae_score_estimator': f'majority vote from the least-variance code of {b} images with one factor '
                                    f'fixed; variances over the global ones of {sizes["num_variance_estimate"]:,} '
                                    f'images, codes of global std < {dis.PRUNE_THRESHOLD} left out; '
                                    f'{sizes["num_train"]:,} training and {sizes["num_eval"]:,} eval batches',
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

  def compute(self, ctx: base.Context) -> dict:
    reason = self.applies(ctx)
    if reason:
      raise errors.DataError(reason)
    start, sizes, factors = time.perf_counter(), dict(SIZES), ctx.dataset.factors
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
    pairs = (sizes['num_train'] + sizes['num_eval']) * sizes['batch_size']
    with progress.stage(f'BetaVAE score: {2 * pairs:,} images in pairs'):
      out['beta_vae_score'] = dis.beta_vae_score(encode, factors, _rng(ctx.key, 'beta_vae'), sizes['batch_size'],
                                                 sizes['num_train'], sizes['num_eval'])
    with progress.stage(f'FactorVAE score: {pairs + sizes["num_variance_estimate"]:,} images'):
      out['factor_vae_score'] = dis.factor_vae_score(
          encode, factors, _rng(ctx.key, 'factor_vae'), sizes['batch_size'], sizes['num_train'], sizes['num_eval'],
          sizes['num_variance_estimate'])
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
