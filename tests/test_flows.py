"""The inverse autoregressive flow: its log-determinant against jax.jacfwd, and its autoregressive structure."""

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.models import flows


def _random_flow(dim=5, steps=3, context=4):
  flow = flows.IAF(steps, hidden=16)
  z = jax.random.normal(jax.random.key(0), (1, dim))
  h = jax.random.normal(jax.random.key(1), (1, context))
  params = flow.init(jax.random.key(2), z, h)
  # The output layers start at zero (a near-identity flow); perturb every weight so the test means something.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  return flow, params, z, h


def test_log_det_is_log_abs_det_of_the_jacobian():
  flow, params, z, h = _random_flow()
  out, log_det = flow.apply(params, z, h)
  jac = jax.jacfwd(lambda v: flow.apply(params, v[None], h)[0][0])(z[0])
  _, expected = jnp.linalg.slogdet(jac)
  np.testing.assert_allclose(log_det[0], expected, rtol=1e-5, atol=1e-5)
  assert out.shape == z.shape


def test_each_step_is_autoregressive():
  flow, params, z, h = _random_flow(steps=1)
  jac = np.asarray(jax.jacfwd(lambda v: flow.apply(params, v[None], h)[0][0])(z[0]))
  # Output i depends on inputs <= i only: the Jacobian is lower triangular with a nonzero diagonal.
  np.testing.assert_allclose(np.triu(jac, 1), 0.0, atol=1e-7)
  assert np.all(np.abs(np.diag(jac)) > 1e-3)


def test_made_masks_connect_only_earlier_inputs():
  a, b, c = flows.made_masks(4, 7)
  reach = (a.astype(int) @ b.astype(int) @ c.astype(int)) > 0  # input i reaches output j
  assert not np.any(np.tril(reach))  # never itself or a later input
  assert np.all(reach[0, 1:])         # the first input reaches every later output


def test_a_grid_of_vectors_flows_per_position():
  """z (n, h, w, c): autoregressive over the channels at each position, positions independent, and
  the log-determinant that of the whole map."""
  flow = flows.IAF(2, hidden=8)
  z = jax.random.normal(jax.random.key(0), (1, 2, 2, 3))
  h = jax.random.normal(jax.random.key(1), (1, 2, 2, 4))
  params = flow.init(jax.random.key(2), z, h)
  leaves, tree = jax.tree.flatten(params)
  params = jax.tree.unflatten(tree, [p + 0.5 * jax.random.normal(jax.random.key(i), p.shape)
                                     for i, p in enumerate(leaves)])
  _, log_det = flow.apply(params, z, h)
  jac = np.asarray(jax.jacfwd(lambda v: flow.apply(params, v.reshape(z.shape), h)[0].ravel())(z.ravel()))
  blocks = [jac[i:i + 3, i:i + 3] for i in range(0, 12, 3)]
  np.testing.assert_allclose(jac, np.asarray(jax.scipy.linalg.block_diag(*blocks)), atol=1e-7)
  np.testing.assert_allclose(log_det[0], np.linalg.slogdet(jac)[1], rtol=1e-5, atol=1e-5)
