"""The matmul convolutions compute flax's Conv / ConvTranspose ('SAME'): same parameters, values, gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import convolution

# (height, width, kernel, stride, in channels, out channels): odd and even sizes, kernels smaller than,
# equal to and larger than the stride, channels growing and shrinking (im2col and col2im paths).
# Kernels smaller than the stride leave output phases without taps.
CASES = [(7, 7, 3, 2, 3, 5), (6, 6, 3, 1, 4, 2), (6, 6, 3, 1, 2, 4), (5, 9, 4, 3, 3, 3), (4, 4, 1, 2, 3, 2)]


def _pairs(k, s, co):
  return [(convolution.Conv(co, (k, k), s), nn.Conv(co, (k, k), (s, s), padding='SAME')),
          (convolution.ConvTranspose(co, (k, k), s), nn.ConvTranspose(co, (k, k), (s, s), padding='SAME'))]


@pytest.mark.parametrize('h,w,k,s,ci,co', CASES)
def test_matches_flax_in_parameters_values_and_gradients(h, w, k, s, ci, co):
  x = jax.random.normal(jax.random.key(0), (2, h, w, ci))
  for ours, theirs in _pairs(k, s, co):
    params = theirs.init(jax.random.key(1), x)
    jax.tree.map(np.testing.assert_array_equal, ours.init(jax.random.key(1), x), params)  # same init
    params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), atol=1e-5)
    np.testing.assert_allclose(ours.clone(impl='lax').apply(params, x), theirs.apply(params, x), atol=1e-5)
    grad = lambda m: jax.grad(lambda p, x: jnp.sum(jnp.sin(m.apply(p, x))), argnums=(0, 1))(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), grad(ours), grad(theirs))


def test_auto_is_matmul_on_cpu_and_unknown_impl_is_refused():
  assert convolution.resolve_impl('auto') == ('matmul' if jax.default_backend() == 'cpu' else 'lax')
  with pytest.raises(ValueError, match="impl='fast'"):
    convolution.resolve_impl('fast')
