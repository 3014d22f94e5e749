"""How disentangled a representation is, against known factors of variation: the field's standard scores.

Definitions and default sample sizes are disentanglement_lib's (Locatello et
al. 2019, google-research/disentanglement_lib, evaluation/metrics/*.py and
config/unsupervised_study_v1/metric_configs/*.gin); the code is vae_jax's own.

  mig(codes, factors)            Mutual Information Gap (Chen et al. 2018): codes discretized into NUM_BINS
                                 equal-width bins, MI with each factor in nats, the gap between the two most
                                 informative codes over the factor's entropy, averaged over factors.
  dci(...)                       DCI (Eastwood & Williams 2018): one gradient-boosted tree classifier per factor
                                 (scikit-learn GradientBoostingClassifier, its defaults, as disentanglement_lib);
                                 disentanglement and completeness are 1 - entropy of the importance matrix's rows
                                 (base: the number of factors) and columns (base: the number of codes), weighted;
                                 informativeness is the classifiers' mean test accuracy.
  sap(...)                       SAP (Kumar et al. 2018): per code and factor, the test accuracy of a linear SVM
                                 (C = 0.01, balanced classes) on that code alone (or, continuous, the squared
                                 correlation); the gap between the two best codes, averaged over factors.
  beta_vae_score(encode, ...)    BetaVAE score (Higgins et al. 2017): a logistic regression predicting which
                                 factor two batches of 64 pairs share, from the mean |z1 - z2|; its eval accuracy.
  factor_vae_score(encode, ...)  FactorVAE score (Kim & Mnih 2018): for batches with one factor fixed, the code of
                                 least variance (each code's variance over the global one, codes of global scale
                                 under PRUNE_THRESHOLD left out); a majority-vote classifier from code to factor;
                                 its eval accuracy.
  mutual_information_matrix      the (codes, factors) MI matrix in nats that MIG reads, for pictures.

Factors that take one value only (dSprites' colour) carry no information and are left out of every score.
The two sampling scores draw images through a `Factors` (names, sizes, sample(rng, n), render(indices)) and
`encode(images) -> (n, d)` codes, CHUNK_IMAGES images at a time: no call holds more (the FactorVAE score's
published 10,000-image variance batch exhausted memory in the disentanglement challenge's starter kit).
"""

import warnings

import numpy as np

NUM_BINS = 20                # MIG: histogram discretizer, equal-width bins over each code's range
NUM_TRAIN = 10_000           # MIG, DCI, SAP: codes the estimator is fitted on
NUM_TEST = 5_000             # DCI, SAP: codes it is scored on
BATCH_SIZE = 64              # BetaVAE / FactorVAE: images per batch with a factor fixed
NUM_EVAL = 5_000             # BetaVAE / FactorVAE: batches scored
NUM_VARIANCE_ESTIMATE = 10_000  # FactorVAE: images the global variances are estimated on
PRUNE_THRESHOLD = 0.05       # FactorVAE: codes of global standard deviation below this are collapsed
SAP_C = 0.01                 # SAP: the linear SVM's regularization (discrete factors)
CHUNK_IMAGES = 2048          # the most images rendered and encoded at once


def informative(factors: np.ndarray) -> np.ndarray:
  """Column indices of the factors (n, K) that take more than one value."""
  factors = np.asarray(factors)
  return np.array([k for k in range(factors.shape[1]) if np.unique(factors[:, k]).size > 1], np.int64)


def discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
  """(n, d) int bin of each code among num_bins equal-width bins over its own range (numpy's histogram edges;
  a constant code falls in one bin)."""
  codes = np.asarray(codes, np.float64)
  out = np.empty(codes.shape, np.int64)
  for j in range(codes.shape[1]):
    edges = np.histogram_bin_edges(codes[:, j], num_bins)
    out[:, j] = np.digitize(codes[:, j], edges[1:-1])  # 0 .. num_bins - 1, the maximum in the last bin
  return out


def _labels(values: np.ndarray) -> tuple[np.ndarray, int]:
  _, inverse = np.unique(values, return_inverse=True)
  return inverse.ravel(), int(inverse.max()) + 1 if inverse.size else 0


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
  """I(a; b) in nats of two discrete samples (n,), from their contingency table (scikit-learn's
  mutual_info_score, which disentanglement_lib uses, gives the same)."""
  ia, na = _labels(a)
  ib, nb = _labels(b)
  joint = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).astype(np.float64) / len(ia)
  pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
  nz = joint > 0
  return float(max(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])), 0.0))


def entropy(factors: np.ndarray) -> np.ndarray:
  """(K,) empirical entropy in nats of each factor column."""
  factors = np.asarray(factors)
  return np.array([discrete_mutual_information(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mutual_information_matrix(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
  """(d, K) I(code_j; factor_k) in nats, codes discretized into num_bins equal-width bins (`discretize`)."""
  binned, factors = discretize(codes, num_bins), np.asarray(factors)
  return np.array([[discrete_mutual_information(binned[:, j], factors[:, k]) for k in range(factors.shape[1])]
                   for j in range(binned.shape[1])])


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> float:
  """Mutual Information Gap in [0, 1] of codes (n, d) against factor indices (n, K)."""
  factors = np.asarray(factors)[:, informative(factors)]
  m = mutual_information_matrix(codes, factors, num_bins)
  top = np.sort(m, axis=0)[::-1]
  second = top[1] if len(top) > 1 else np.zeros(top.shape[1])
  return float(np.mean((top[0] - second) / entropy(factors)))


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
  """1 - entropy (in base `base`) of each column of nonnegative weights p, normalized (plus 1e-11, as
  disentanglement_lib, so an all-zero column counts as uniform); 1 where base < 2 (one outcome)."""
  if base < 2:
    return np.ones(p.shape[1])
  q = (p + 1e-11) / np.sum(p + 1e-11, axis=0, keepdims=True)
  return 1.0 - (-np.sum(q * np.log(q), axis=0) / np.log(base))


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
  """(disentanglement, completeness) of an importance matrix (d codes, K factors)."""
  importance = np.abs(np.asarray(importance, np.float64))
  d, k = importance.shape
  weights = importance if importance.sum() > 0 else np.ones_like(importance)
  per_code = _one_minus_entropy(importance.T, k)
  per_factor = _one_minus_entropy(importance, d)
  disentanglement = np.sum(per_code * weights.sum(1) / weights.sum())
  completeness = np.sum(per_factor * weights.sum(0) / weights.sum())
  return float(disentanglement), float(completeness)


def dci(codes_tr, f_tr, codes_te, f_te, seed: int = 0) -> tuple[float, float, float]:
  """(disentanglement, completeness, informativeness): gradient-boosted tree importances of each code for each
  factor (one GradientBoostingClassifier per factor, scikit-learn's defaults), informativeness the mean test
  accuracy of those classifiers. Slow, as disentanglement_lib's: 100 trees per class, so dSprites' 113 factor
  values on 10,000 codes of 10 dims take about 5 minutes on one core (measured, 2026-12-02)."""
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top  (a second and a half to import)
  keep = informative(f_tr)
  codes_tr, codes_te = np.asarray(codes_tr), np.asarray(codes_te)
  importance = np.zeros((codes_tr.shape[1], len(keep)))
  accuracy = []
  for i, k in enumerate(keep):
    model = ensemble.GradientBoostingClassifier(random_state=seed).fit(codes_tr, f_tr[:, k])
    importance[:, i] = np.abs(model.feature_importances_)
    accuracy.append(np.mean(model.predict(codes_te) == f_te[:, k]))
  disentanglement, completeness = dci_scores(importance)
  return disentanglement, completeness, float(np.mean(accuracy))


def sap_matrix(codes_tr, f_tr, codes_te, f_te, continuous: bool = False) -> np.ndarray:
  """(d, K) score of each code alone for each factor: a linear SVM's test accuracy (discrete factors), or
  cov^2 / (var code * var factor) on the training codes (continuous; 0 for a constant code)."""
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  codes_tr, codes_te, f_tr, f_te = (np.asarray(a) for a in (codes_tr, codes_te, f_tr, f_te))
  out = np.zeros((codes_tr.shape[1], f_tr.shape[1]))
  for j in range(codes_tr.shape[1]):
    for k in range(f_tr.shape[1]):
      if continuous:
        cov = np.cov(codes_tr[:, j], f_tr[:, k], ddof=1)
        out[j, k] = cov[0, 1]**2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
      else:
        classifier = svm.LinearSVC(C=SAP_C, class_weight='balanced').fit(codes_tr[:, j:j + 1], f_tr[:, k])
        out[j, k] = np.mean(classifier.predict(codes_te[:, j:j + 1]) == f_te[:, k])
  return out


def sap(codes_tr, f_tr, codes_te, f_te, continuous: bool = False) -> float:
  """SAP score: the mean over factors of the gap between the two highest entries of `sap_matrix`."""
  keep = informative(f_tr)
  scores = np.sort(sap_matrix(codes_tr, np.asarray(f_tr)[:, keep], codes_te, np.asarray(f_te)[:, keep],
                              continuous), axis=0)
  return float(np.mean(scores[-1] - scores[-2])) if len(scores) > 1 else float(np.mean(scores[-1]))


# The two scores that draw images by factor value.

def _varied(factors_obj) -> np.ndarray:
  """Indices of the factors of a Factors that take more than one value: those a score may fix."""
  return np.array([k for k, size in enumerate(factors_obj.sizes) if size > 1], np.int64)


def _encode_in_chunks(encode, factors_obj, indices: np.ndarray) -> np.ndarray:
  """encode(render(indices)) of (n, K) factor indices, CHUNK_IMAGES images at a time: (n, d) codes."""
  parts = [np.asarray(encode(factors_obj.render(indices[i:i + CHUNK_IMAGES])), np.float64)
           for i in range(0, len(indices), CHUNK_IMAGES)]
  return np.concatenate(parts)


def sample_codes(encode, factors_obj, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(codes (n, d), factor indices (n, K)) of n images drawn uniformly over the factors, encoded in chunks."""
  indices = np.concatenate([np.asarray(factors_obj.sample(rng, min(CHUNK_IMAGES, n - i)))
                            for i in range(0, n, CHUNK_IMAGES)])
  return _encode_in_chunks(encode, factors_obj, indices), indices


def _points_per_chunk(images_per_point: int) -> int:
  return max(1, CHUNK_IMAGES // images_per_point)


def _beta_vae_points(encode, factors_obj, rng, batch_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
  """n (feature, label) points: label a factor fixed within each of batch_size pairs (each pair its own value),
  feature the mean over the pairs of |z1 - z2|."""
  varied, features, labels = _varied(factors_obj), [], []
  per_chunk = _points_per_chunk(2 * batch_size)
  for start in range(0, n, per_chunk):
    p = min(per_chunk, n - start)
    fixed = varied[rng.integers(len(varied), size=p)]
    first = np.asarray(factors_obj.sample(rng, p * batch_size))
    second = np.asarray(factors_obj.sample(rng, p * batch_size)).copy()
    rows, cols = np.arange(p * batch_size), np.repeat(fixed, batch_size)
    second[rows, cols] = first[rows, cols]
    z1 = _encode_in_chunks(encode, factors_obj, first).reshape(p, batch_size, -1)
    z2 = _encode_in_chunks(encode, factors_obj, second).reshape(p, batch_size, -1)
    features.append(np.mean(np.abs(z1 - z2), axis=1))
    labels.append(fixed)
  return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(encode, factors_obj, rng: np.random.Generator, batch_size: int = BATCH_SIZE,
                   num_train: int = NUM_TRAIN, num_eval: int = NUM_EVAL) -> float:
  """BetaVAE score: eval accuracy of a logistic regression (scikit-learn's defaults, as disentanglement_lib)
  fitted on num_train points, scored on num_eval fresh ones (`_beta_vae_points`). Chance: 1 / factors varied."""
  from sklearn import exceptions  # pylint: disable=g-import-not-at-top
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  train_x, train_y = _beta_vae_points(encode, factors_obj, rng, batch_size, num_train)
  eval_x, eval_y = _beta_vae_points(encode, factors_obj, rng, batch_size, num_eval)
  with warnings.catch_warnings():
    # lbfgs stops at its default 100 iterations on separable points; the accuracy is what is reported.
    warnings.simplefilter('ignore', exceptions.ConvergenceWarning)
    model = linear_model.LogisticRegression(random_state=int(rng.integers(2**31 - 1))).fit(train_x, train_y)
  return float(model.score(eval_x, eval_y))


def _factor_vae_votes(encode, factors_obj, rng, batch_size: int, n: int, global_variance: np.ndarray,
                      active: np.ndarray) -> np.ndarray:
  """(K, d) counts over n batches of batch_size images, each with one varied factor fixed to one value: how
  often each code had the least variance (over its global variance, among the active codes) when factor k
  was fixed."""
  varied, active_codes = _varied(factors_obj), np.flatnonzero(active)
  votes = np.zeros((len(factors_obj.sizes), len(global_variance)), np.int64)
  per_chunk = _points_per_chunk(batch_size)
  for start in range(0, n, per_chunk):
    p = min(per_chunk, n - start)
    fixed = varied[rng.integers(len(varied), size=p)]
    indices = np.asarray(factors_obj.sample(rng, p * batch_size)).reshape(p, batch_size, -1).copy()
    points = np.arange(p)
    indices[points, :, fixed] = indices[points, 0, fixed][:, None]
    codes = _encode_in_chunks(encode, factors_obj, indices.reshape(p * batch_size, -1)).reshape(p, batch_size, -1)
    local = np.var(codes[:, :, active_codes], axis=1, ddof=1) / global_variance[active_codes]
    np.add.at(votes, (fixed, active_codes[np.argmin(local, axis=1)]), 1)
  return votes


def factor_vae_score(encode, factors_obj, rng: np.random.Generator, batch_size: int = BATCH_SIZE,
                     num_train: int = NUM_TRAIN, num_eval: int = NUM_EVAL,
                     num_variance_estimate: int = NUM_VARIANCE_ESTIMATE, threshold: float = PRUNE_THRESHOLD) -> float:
  """FactorVAE score: eval accuracy of the majority-vote classifier (each code votes for the factor it was
  most often the least-variance code of, over num_train batches) on num_eval fresh batches; 0 when every
  code's global standard deviation is under `threshold`. Chance: about 1 / factors varied."""
  codes, _ = sample_codes(encode, factors_obj, rng, num_variance_estimate)
  global_variance = np.var(codes, axis=0, ddof=1)
  active = np.sqrt(global_variance) >= threshold
  if not active.any():
    return 0.0
  train_votes = _factor_vae_votes(encode, factors_obj, rng, batch_size, num_train, global_variance, active)
  classifier = np.argmax(train_votes, axis=0)  # code -> factor
  eval_votes = _factor_vae_votes(encode, factors_obj, rng, batch_size, num_eval, global_variance, active)
  return float(eval_votes[classifier, np.arange(eval_votes.shape[1])].sum() / eval_votes.sum())
