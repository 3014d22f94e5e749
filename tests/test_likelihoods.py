"""Likelihoods against scipy, and the bits/dim conversion."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax.models import likelihoods


def test_bernoulli_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 4, 1)).astype(np.float32) * 3
  x = (rng.random((3, 4, 4, 1)) < 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = stats.bernoulli.logpmf(x, p).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(likelihoods.Bernoulli.log_prob(jnp.asarray(logits), jnp.asarray(x)), expected,
                             rtol=1e-5)


def test_bernoulli_log_prob_is_stable_for_large_logits():
  logits = jnp.array([[100.0, -100.0]])
  assert jnp.allclose(likelihoods.Bernoulli.log_prob(logits, jnp.array([[1.0, 0.0]])), 0.0, atol=1e-6)
  assert jnp.allclose(likelihoods.Bernoulli.log_prob(logits, jnp.array([[0.0, 0.0]])), -100.0, rtol=1e-5)


@pytest.mark.parametrize('learn_std', [False, True])
def test_gaussian_log_prob_matches_scipy(learn_std):
  rng = np.random.default_rng(1)
  outputs = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  x = rng.random((2, 3, 3, 2)).astype(np.float32)
  head = likelihoods.Gaussian(std=0.3, learn_std=learn_std)
  variables = head.init(jax.random.key(0), outputs)
  params = head.apply(variables, outputs)
  mean = 1 / (1 + np.exp(-outputs.astype(np.float64)))
  expected = stats.norm.logpdf(x, mean, 0.3).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(likelihoods.Gaussian.log_prob(params, jnp.asarray(x)), expected, rtol=1e-5)
  assert ('log_std' in variables.get('params', {})) == learn_std


def test_bits_per_dim():
  assert likelihoods.bits_per_dim(784 * math.log(2), 784, 'bernoulli') == pytest.approx(1.0)
  # A uniform density on [0, 1] is 8 bits per dimension on the 8-bit scale.
  assert likelihoods.bits_per_dim(0.0, 3072, 'gaussian') == pytest.approx(8.0)
  # A density's discrete scale follows the data's levels (an ImageSpec's); continuous vectors keep the density's.
  assert likelihoods.bits_per_dim(0.0, 64, 'gaussian', levels=17) == pytest.approx(math.log2(17))
  assert likelihoods.bits_per_dim(-8 * math.log(2), 8, 'gaussian', levels=None) == pytest.approx(-1.0)


_LEVELS = jnp.arange(256, dtype=jnp.float32) / 255.0


def _random_outputs(head, channels, pixels, seed=0):
  n = head.output_channels(channels)
  return 2.0 * jax.random.normal(jax.random.key(seed), (pixels, 1, 1, n))


def test_logistic_mixture_sums_to_one_over_the_256_values_of_a_gray_pixel():
  head = likelihoods.LogisticMixture(num_components=4, channels=1)
  outputs = _random_outputs(head, 1, pixels=3)
  params = head.apply({}, outputs)
  # log p of each pixel at each of its 256 values: (256, pixels)
  log_p = jax.vmap(lambda v: likelihoods.LogisticMixture.log_prob(params, jnp.full((3, 1, 1, 1), v)))(_LEVELS)
  np.testing.assert_allclose(jnp.sum(jnp.exp(log_p), axis=0), 1.0, rtol=1e-5)
  # Sharp components (small scales) take the tiny-probability branch and still sum to 1 closely.
  sharp = params[:2] + (params[2] - 6.0,) + params[3:]
  log_p = jax.vmap(lambda v: likelihoods.LogisticMixture.log_prob(sharp, jnp.full((3, 1, 1, 1), v)))(_LEVELS)
  np.testing.assert_allclose(jnp.sum(jnp.exp(log_p), axis=0), 1.0, rtol=1e-3)


def test_coupled_logistic_mixture_sums_to_one_over_all_rgb_values():
  head = likelihoods.LogisticMixture(num_components=2, channels=3)
  params = head.apply({}, _random_outputs(head, 3, pixels=1, seed=1))
  grid = jnp.stack(jnp.meshgrid(_LEVELS, _LEVELS, indexing='ij'), -1).reshape(-1, 2)  # (g, b) pairs

  def total_for_red(r):
    x = jnp.concatenate([jnp.full((grid.shape[0], 1), r), grid], -1).reshape(-1, 1, 1, 3)
    tiled = jax.tree.map(lambda a: jnp.broadcast_to(a, (x.shape[0], *a.shape[1:])), params)
    return jnp.sum(jnp.exp(likelihoods.LogisticMixture.log_prob(tiled, x)))

  total = float(jnp.sum(jax.lax.map(total_for_red, _LEVELS)))
  assert total == pytest.approx(1.0, rel=1e-4)


def test_categorical_sums_to_one_and_its_mean_is_the_expected_value():
  head = likelihoods.Categorical(channels=2)
  logits = head.apply({}, _random_outputs(head, 2, pixels=2))
  # One channel's probabilities over its 256 values: exp(log_prob) with the other channel held fixed,
  # divided by that channel's (fixed) probability.
  other = jnp.full((2, 1, 1, 1), 7 / 255)
  log_p = jax.vmap(lambda v: likelihoods.Categorical.log_prob(
      logits, jnp.concatenate([jnp.full((2, 1, 1, 1), v), other], -1)))(_LEVELS)
  p = np.asarray(jax.nn.softmax(logits), np.float64)           # (2, 1, 1, 2, 256)
  np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(0) / p[:, 0, 0, 1, 7], 1.0, rtol=1e-5)
  x = jnp.stack([jnp.full((2, 1, 1), 10 / 255), jnp.full((2, 1, 1), 200 / 255)], -1)
  expected = np.log(p[..., 0, 10]) + np.log(p[..., 1, 200])
  np.testing.assert_allclose(likelihoods.Categorical.log_prob(logits, x), expected.reshape(2), rtol=1e-5)
  np.testing.assert_allclose(likelihoods.Categorical.mean(logits), (p * np.arange(256) / 255).sum(-1), rtol=1e-5)


def test_8bit_samples_lie_on_the_256_levels():
  head = likelihoods.LogisticMixture(num_components=3, channels=3)
  params = head.apply({}, _random_outputs(head, 3, pixels=50))
  x = np.asarray(likelihoods.LogisticMixture.sample(jax.random.key(0), params))
  np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-4)
  assert x.min() >= 0.0 and x.max() <= 1.0


def test_logistic_tails_match_float64_for_sharp_far_components():
  """Bins many scales from a component's mean: the float32 head against the exact float64 answer."""
  from scipy import special  # pylint: disable=g-import-not-at-top
  means = np.array([-0.9, 0.95, 0.0, 0.4])
  log_scales = np.array([-7.0, -6.0, -3.0, -5.0])
  values = np.array([0, 128, 255, 77, 250])
  x = jnp.asarray(values / 255.0, jnp.float32).reshape(5, 1, 1, 1)
  for m, ls in zip(means, log_scales):  # one component, one channel
    params = (jnp.zeros((5, 1, 1, 1)), jnp.full((5, 1, 1, 1, 1), m, jnp.float32),
              jnp.full((5, 1, 1, 1, 1), ls, jnp.float32), None, None)
    got = np.asarray(likelihoods.LogisticMixture.log_prob_per_pixel(params, x))
    xs = values / 255.0 * 2 - 1
    plus = np.where(values == 255, np.inf, (xs + 1 / 255 - m) / np.exp(ls))
    minus = np.where(values == 0, -np.inf, (xs - 1 / 255 - m) / np.exp(ls))
    # log(F(plus) - F(minus)) in float64, from the side where it does not cancel
    upper = xs > m
    hi, lo = np.where(upper, -minus, plus), np.where(upper, -plus, minus)
    exact = special.log_expit(hi) + np.log(-np.expm1(special.log_expit(lo) - special.log_expit(hi)))
    np.testing.assert_allclose(got.ravel(), exact, rtol=1e-4, atol=1e-3)


def test_context_mixture_is_a_normalized_probability_of_whole_images():
  """Pixel 1 reads pixel 0 (radius 1, a 1 x 2 image): the joint sums to 1 over all 65,536 images only if
  each pixel's distribution reads nothing but the pixels before it, and pixel by pixel coding probabilities
  multiply to log_prob."""
  head = likelihoods.LogisticMixture(num_components=2, channels=1, context=1)
  outputs = 2.0 * jax.random.normal(jax.random.key(3), (1, 1, 2, head.output_channels(1)))
  params = head.apply({}, outputs)
  assert params[4].shape == (1, 1, 2, 1, 4)
  pairs = jnp.stack(jnp.meshgrid(_LEVELS, _LEVELS, indexing='ij'), -1).reshape(-1, 1, 2, 1)
  tiled = jax.tree.map(lambda a: jnp.broadcast_to(a, (pairs.shape[0], *a.shape[1:])), params)
  log_p = likelihoods.LogisticMixture.log_prob(tiled, pairs)
  assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, rel=1e-4)
  symbols = jnp.round(pairs * 255).astype(jnp.int32)
  canvas = likelihoods.LogisticMixture.to_canvas(symbols)
  coded = sum(jnp.log(jnp.take_along_axis(likelihoods.LogisticMixture.pixel_symbol_probs(tiled, canvas, i)[:, 0],
                                          symbols[:, 0, i], -1)[:, 0]) for i in range(2))
  np.testing.assert_allclose(coded, log_p, rtol=1e-4, atol=1e-4)


def test_context_samples_and_means_follow_their_neighbours():
  """Sharp components whose means copy the left neighbour: every pixel of a row repeats its first pixel,
  in samples and in the mean image, which only a pixel-by-pixel pass gives."""
  head = likelihoods.LogisticMixture(num_components=1, channels=1, context=1)
  n, height, width = 3, 2, 5
  levels = np.array([51, 153, 230])  # first pixels on the 256 levels, so rounding a copy keeps it
  first = jnp.asarray(levels / 255 * 2 - 1, jnp.float32)
  means = jnp.zeros((n, height, width, 1, 1)).at[:, :, 0, 0, 0].set(first[:, None])
  context = jnp.zeros((n, height, width, 1, 4)).at[:, :, 1:, 0, 3].set(1.0)  # offset (0, -1): the left pixel
  params = (jnp.zeros((n, height, width, 1)), means, jnp.full((n, height, width, 1, 1), -10.0), None, context)
  want = np.broadcast_to(levels[:, None, None, None] / 255, (n, height, width, 1))
  np.testing.assert_allclose(likelihoods.LogisticMixture.sample(jax.random.key(0), params), want, atol=1e-6)
  np.testing.assert_allclose(likelihoods.LogisticMixture.mean(params), want, atol=1e-5)
  assert head.output_channels(1) == 3 + 4


def test_context_bernoulli_is_a_normalized_probability_of_whole_images():
  """A 2 x 3 binary image with radius 1: the joint sums to 1 over its 64 images only if each pixel reads
  nothing but the pixels before it, and pixel by pixel coding probabilities multiply to log_prob."""
  head = likelihoods.Bernoulli(context=1)
  outputs = 2.0 * jax.random.normal(jax.random.key(5), (1, 2, 3, head.output_channels(1)))
  params = head.apply({}, outputs)
  assert head.autoregressive and params[1].shape == (1, 2, 3, 1, 4)
  images = jnp.asarray(np.array([[(b >> k) & 1 for k in range(6)] for b in range(64)], np.float32)).reshape(64, 2, 3, 1)
  tiled = jax.tree.map(lambda a: jnp.broadcast_to(a, (64, *a.shape[1:])), params)
  log_p = likelihoods.Bernoulli.log_prob(tiled, images)
  assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, rel=1e-5)
  symbols = images.astype(jnp.int32)
  canvas = likelihoods.Bernoulli.to_canvas(symbols)
  flat = symbols.reshape(64, 6)
  coded = sum(jnp.log(jnp.take_along_axis(likelihoods.Bernoulli.pixel_symbol_probs(tiled, canvas, i)[:, 0],
                                          flat[:, i:i + 1], -1)[:, 0]) for i in range(6))
  np.testing.assert_allclose(coded, log_p, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='pixel_symbol_probs'):
    likelihoods.Bernoulli.symbol_probs(params)


def test_context_bernoulli_samples_and_means_copy_the_left_pixel():
  """Each row's first pixel is certain and the others copy their left neighbour: a pixel-by-pixel pass
  repeats it along the row, in samples and in the probabilities."""
  n, height, width = 4, 2, 5
  first = np.array([1.0, 0.0, 1.0, 0.0])
  logits = jnp.zeros((n, height, width, 1)).at[:, :, 0, 0].set(jnp.asarray(60.0 * first - 30.0)[:, None])
  context = jnp.zeros((n, height, width, 1, 4)).at[:, :, 1:, 0, 3].set(30.0)  # offset (0, -1): the left pixel
  want = np.broadcast_to(first[:, None, None, None], (n, height, width, 1))
  np.testing.assert_array_equal(likelihoods.Bernoulli.sample(jax.random.key(0), (logits, context)), want)
  np.testing.assert_allclose(likelihoods.Bernoulli.mean((logits, context)), want, atol=1e-6)
  assert likelihoods.Bernoulli(context=1).output_channels(1) == 1 + 4
