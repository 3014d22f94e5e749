"""`hvae`: a top-down hierarchical VAE (LVAE, NVAE and VDVAE's inference scheme).

Latent groups z_0 (top) ... z_{G-1}. A bottom-up deterministic pass turns x
into features; a top-down pass, shared by generation and inference, carries a
state s from the top:

  p(z_0) = model.prior,   p(z_g | z_<g) = N(prior_net_g(s)),   q(z_g | x, z_<g) = N(posterior_net_g(s, features))
  s <- update_g(s, z_g),  p(x | z) = likelihood(output(s))

so the prior and the posterior of every group read the same state, and
sampling runs the same blocks without x. Each group's KL is in closed form
(two diagonal Gaussians), except the top group's under a prior without one
(vampprior, mog), which is the single-sample estimate.

With model.posterior_flow=iaf every group's posterior is its Gaussian pushed
through its own IAF (`flows`), whose context the posterior net also gives:
q(z_g | x, z_<g) = IAF_g(N(...); context_g), as in the IAF paper's
hierarchical ResNet VAE. Every KL is then the single-sample estimate, and
the top-down state reads the flowed z_g.

Two block families, chosen by `model.encoder`:
  mlp:  dense nets; groups of `latent_dim` units (the two-level HVAE of the
        VampPrior and Exemplar VAE papers with groups_per_stage=(1, 1));
  conv: VDVAE-style residual blocks; stage r works at 1/2^r of the image
        size with hidden_sizes[r] channels and groups_per_stage[r] groups of
        `latent_dim` channels each; any depth.
"""

import itertools
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import data
from vae_jax import errors
from vae_jax.models import blocks
from vae_jax.models import convolution
from vae_jax.models import flows
from vae_jax.models import gaussian
from vae_jax.models import kind
from vae_jax.models import likelihoods
from vae_jax.models import priors


def _flat(a: jax.Array) -> jax.Array:
  return a.reshape(a.shape[0], -1)


def _halve(a: jax.Array) -> jax.Array:
  return jnp.split(a, 2, axis=-1)


def _gaussian_and_context(out: jax.Array, z: int):
  """(mean, log_var, context or None) from a posterior net's output channels [mean | log_var | context]."""
  out = out.astype(jnp.float32)
  return out[..., :z], out[..., z:2 * z], (out[..., 2 * z:] if out.shape[-1] > 2 * z else None)


class DenseTopDown(nn.Module):
  """Dense blocks: features h = MLP(x); the state s is a vector of hidden_sizes[-1] units."""
  hidden_sizes: Sequence[int]
  num_groups: int
  group_dim: int
  out_shape: Sequence[int]
  activation: str = 'relu'
  dtype: jnp.dtype = jnp.float32
  context_dim: int = 0  # units of context each posterior also gives its group's flow

  def setup(self):
    width, z = self.hidden_sizes[-1], self.group_dim
    net = lambda out, name: blocks.MLP((width,), out, self.activation, self.dtype, name=name)
    self.bottom_up = blocks.MLP(tuple(self.hidden_sizes[:-1]), width, self.activation, self.dtype, name='bottom_up')
    self.start = self.param('start', nn.initializers.zeros_init(), (width,))
    self.priors = [net(2 * z, f'prior_{g}') for g in range(1, self.num_groups)]
    self.posteriors = [net(2 * z + self.context_dim, f'posterior_{g}') for g in range(self.num_groups)]
    self.updates = [net(width, f'update_{g}') for g in range(self.num_groups)]
    self.output = blocks.MLPDecoder(tuple(reversed(self.hidden_sizes)), self.out_shape, self.activation,
                                    self.dtype, name='output')

  def group_shapes(self) -> list[tuple[int, ...]]:
    return [(self.group_dim,)] * self.num_groups

  def features(self, x: jax.Array):
    return self.bottom_up(x.reshape(x.shape[0], -1))

  def initial(self, n: int) -> jax.Array:
    return jnp.broadcast_to(self.start, (n, self.start.shape[0]))

  def prior(self, g: int, s: jax.Array):
    """(mean, log_var) of p(z_g | z_<g) (None for the top group), and what `update` needs from it."""
    return (None if g == 0 else tuple(_halve(self.priors[g - 1](s).astype(jnp.float32)))), None

  def posterior(self, g: int, s: jax.Array, features: jax.Array):
    """(mean, log_var, context or None) of q(z_g | x, z_<g)."""
    return _gaussian_and_context(self.posteriors[g](jnp.concatenate([features, s], -1)), self.group_dim)

  def update(self, g: int, s: jax.Array, z: jax.Array, extra) -> jax.Array:
    del extra
    return s + self.updates[g](jnp.concatenate([z, s], -1))

  def out(self, s: jax.Array) -> jax.Array:
    return self.output(s)


class ConvTopDown(nn.Module):
  """VDVAE-style blocks. Stage r has resolution ceil(size / 2^r) and channels[r] channels."""
  channels: Sequence[int]
  groups_per_stage: Sequence[int]
  group_dim: int
  out_shape: Sequence[int]
  activation: str = 'gelu'
  dtype: jnp.dtype = jnp.float32
  context_dim: int = 0  # channels of context each posterior also gives its group's flow

  def _sizes(self):
    h, w = self.out_shape[:2]
    return [(-(-h // 2**r), -(-w // 2**r)) for r in range(len(self.groups_per_stage))]

  def _stages_top_down(self) -> list[int]:
    """The stage of each group, top group first."""
    return [r for r in reversed(range(len(self.groups_per_stage))) for _ in range(self.groups_per_stage[r])]

  def setup(self):
    chans, groups = self.channels, self.groups_per_stage
    num_stages, total = len(groups), sum(groups)
    scale = 1.0 / math.sqrt(total)
    block = lambda c, name, **kw: blocks.ResBlock(c, activation=self.activation, dtype=self.dtype, name=name, **kw)
    conv = lambda c, k, name: convolution.Conv(c, (k, k), dtype=self.dtype, name=name)
    self.stem = conv(chans[0], 3, 'stem')
    self.encoder_blocks = [block(chans[r], f'encoder_{r}_{i}', out_scale=scale)
                           for r in range(num_stages) for i in range(groups[r])]
    self.down = [conv(chans[r + 1], 1, f'down_{r}') for r in range(num_stages - 1)]
    top_h, top_w = self._sizes()[-1]
    self.start = self.param('start', nn.initializers.zeros_init(), (top_h, top_w, chans[-1]))
    stages, z = self._stages_top_down(), self.group_dim
    self.priors = [block(chans[r], f'prior_{g}', residual=False, out_scale=0.0,
                         out_width=chans[r] + (2 * z if g else 0)) for g, r in enumerate(stages)]
    self.posteriors = [block(chans[r], f'posterior_{g}', residual=False, out_width=2 * z + self.context_dim)
                       for g, r in enumerate(stages)]
    self.projections = [convolution.Conv(chans[r], (1, 1), dtype=self.dtype, name=f'z_projection_{g}',
                                         kernel_init=nn.initializers.variance_scaling(scale**2, 'fan_in',
                                                                                      'truncated_normal'))
                        for g, r in enumerate(stages)]
    self.decoder_blocks = [block(chans[r], f'decoder_{g}', out_scale=scale) for g, r in enumerate(stages)]
    self.up = [conv(chans[r], 1, f'up_{r}') for r in range(num_stages - 1)]
    self.output = conv(self.out_shape[-1], 3, 'output')

  def group_shapes(self) -> list[tuple[int, ...]]:
    sizes = self._sizes()
    return [(*sizes[r], self.group_dim) for r in self._stages_top_down()]

  def features(self, x: jax.Array) -> tuple[jax.Array, ...]:
    a = self.stem(x.astype(self.dtype))
    feats, i = [], 0
    for r, count in enumerate(self.groups_per_stage):
      for _ in range(count):
        a = self.encoder_blocks[i](a)
        i += 1
      feats.append(a)
      if r < len(self.down):
        a = self.down[r](nn.avg_pool(a, (2, 2), (2, 2), padding='SAME'))
    return tuple(feats)

  def initial(self, n: int) -> jax.Array:
    return jnp.broadcast_to(self.start, (n, *self.start.shape)).astype(self.dtype)

  def prior(self, g: int, s: jax.Array):
    out = self.priors[g](s)
    c = s.shape[-1]
    if g == 0:
      return None, out
    mean, log_var = _halve(out[..., c:].astype(jnp.float32))
    return (mean, log_var), out[..., :c]

  def posterior(self, g: int, s: jax.Array, features):
    """(mean, log_var, context or None) of q(z_g | x, z_<g), each (n, h, w, channels)."""
    r = self._stages_top_down()[g]
    return _gaussian_and_context(self.posteriors[g](jnp.concatenate([s, features[r].astype(s.dtype)], -1)),
                                 self.group_dim)

  def update(self, g: int, s: jax.Array, z: jax.Array, extra: jax.Array) -> jax.Array:
    s = s + extra + self.projections[g](z.astype(s.dtype))
    s = self.decoder_blocks[g](s)
    stages = self._stages_top_down()
    return self._climb(s, stages[g], stages[g + 1] if g + 1 < len(stages) else 0)

  def _climb(self, s: jax.Array, stage: int, target: int) -> jax.Array:
    """Carries the state from `stage` up to the larger resolution of stage `target`: nearest 2x, then 1x1."""
    for r in range(stage, target, -1):
      h, w = self._sizes()[r - 1]
      s = self.up[r - 1](jnp.repeat(jnp.repeat(s, 2, axis=1), 2, axis=2)[:, :h, :w])
    return s

  def out(self, s: jax.Array) -> jax.Array:
    return self.output(blocks.ACTIVATIONS[self.activation](s))


FAMILIES: dict[str, Callable] = {
    'mlp': lambda m, sizes, out_shape, dtype, context: DenseTopDown(
        sizes, sum(m.groups_per_stage), m.latent_dim, out_shape, m.activation, dtype, context),
    'conv': lambda m, sizes, out_shape, dtype, context: ConvTopDown(
        sizes if len(sizes) > 1 else sizes * len(m.groups_per_stage), tuple(m.groups_per_stage), m.latent_dim,
        out_shape, m.activation, dtype, context),
}


class HVAE(kind.Kind):
  """The interface is `vae_jax.models.kind.Kind`; the model is in this module's docstring."""
  net: nn.Module
  likelihood: nn.Module
  prior: nn.Module = priors.StandardNormal()
  flows: Sequence[nn.Module] = ()  # one posterior flow per group, or none

  @classmethod
  def check_config(cls, config) -> None:
    priors.check_unconditional(config)
    m = config.model
    groups = tuple(m.groups_per_stage)
    if not groups or any(int(g) < 0 for g in groups) or sum(groups) < 1:
      raise errors.ConfigError(f'model.groups_per_stage={groups} must list how many latent groups each stage '
                               'holds (>= 0 each, at least one in all)')
    if m.encoder == 'conv':
      if len(m.hidden_sizes) not in (1, len(groups)):
        raise errors.ConfigError(f'model.hidden_sizes={tuple(m.hidden_sizes)} must give one channel count, or one '
                                 f'per stage of model.groups_per_stage={groups}')
      if m.activation == 'glu':
        raise errors.ConfigError('model.activation=glu halves the channels of a residual block; use gelu, swish, '
                                 'elu or relu with model.kind=hvae and model.encoder=conv')
      if groups[-1] < 1:
        raise errors.ConfigError(f'model.groups_per_stage={groups}: the last (lowest-resolution) stage must hold '
                                 'a latent group, the top of the hierarchy')

  @classmethod
  def build(cls, config, spec: data.ExampleSpec) -> 'HVAE':
    m = config.model
    if m.encoder == 'conv':
      blocks.image_dims(spec, 'model.kind=hvae with model.encoder=conv', halvings=len(m.hidden_sizes) - 1)
    likelihood, out_shape = likelihoods.for_spec(config, spec)
    net = FAMILIES[m.encoder](m, tuple(int(h) for h in m.hidden_sizes), out_shape, jnp.dtype(m.dtype),
                              flows.context_dim(config))
    shapes = net.group_shapes()
    group_flows = tuple(f for f in (flows.make(config) for _ in shapes) if f is not None)
    return cls(net=net, likelihood=likelihood, prior=priors.make(config, spec.shape, math.prod(shapes[0])),
               flows=group_flows)

  @property
  def kl_note(self) -> str | None:
    if self.flows:
      return flows.KL_NOTE
    return None if self.prior.closed_form_kl else priors.SINGLE_SAMPLE_KL_NOTE

  @property
  def group_shapes(self) -> list[tuple[int, ...]]:
    return self.net.group_shapes()

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return tuple(math.prod(s) for s in self.group_shapes)

  @property
  def latent_dim(self) -> int:
    return sum(self.group_sizes)

  def infer(self, x: jax.Array, labels: jax.Array | None = None):
    del labels  # unconditional
    return self.net.features(x)

  def _top_q(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Gaussian q(z_0 | u) of the top group (before any flow): what the VampPrior's components are."""
    mean, log_var, _ = self.net.posterior(0, self.net.initial(u.shape[0]), self.net.features(u))
    return _flat(mean), _flat(log_var)

  def _walk(self, n: int, pick, features=None):
    """The top-down pass: pick(g, q, p) -> (z_g, record) chooses z_g; returns the records (q and p
    added) per group and the decoder output."""
    s = self.net.initial(n)
    records = []
    for g in range(len(self.group_shapes)):
      p, extra = self.net.prior(g, s)
      q = None if features is None else self.net.posterior(g, s, features)
      z, record = pick(g, q, p)
      records.append({**record, 'q': q, 'p': p})
      s = self.net.update(g, s, z, extra)
    return records, self.likelihood(self.net.out(s).astype(jnp.float32))

  def _flow(self, g: int, z0: jax.Array, context: jax.Array):
    """z_g and log |det dz_g/dz0| (0 without a flow)."""
    if not self.flows:
      return z0, 0.0
    return self.flows[g](z0, context)

  def _posterior_pick(self, keys: jax.Array):
    def pick(g, q, p):
      del p
      mean, log_var, context = q
      eps = gaussian.per_example_normal(gaussian.fold_in_each(keys, g), mean.shape[1:])
      z0 = mean + jnp.exp(0.5 * log_var) * eps
      z, log_det = self._flow(g, z0, context)
      return z, {'z': z, 'z0': z0, 'log_det': log_det}
    return pick

  def terms(self, x: jax.Array, ctx, keys: jax.Array) -> dict[str, jax.Array]:
    records, params = self._walk(x.shape[0], self._posterior_pick(keys), ctx)
    kls, log_ratio = [], 0.0
    for g, r in enumerate(records):
      z, mq, lvq = _flat(r['z']), _flat(r['q'][0]), _flat(r['q'][1])
      log_q = gaussian.log_prob(_flat(r['z0']), mq, lvq) - r['log_det']
      if g == 0:
        log_p = self.prior.log_prob(z, self._top_q)
        kl = jnp.sum(self.prior.kl_per_dim(mq, lvq), axis=-1) if self.prior.closed_form_kl else None
      else:
        mp, lvp = _flat(r['p'][0]), _flat(r['p'][1])
        log_p = gaussian.log_prob(z, mp, lvp)
        kl = gaussian.kl(mq, lvq, mp, lvp)
      kls.append(log_q - log_p if self.flows or kl is None else kl)  # the single-sample estimate, or closed form
      log_ratio = log_ratio + log_p - log_q
    log_px_z = type(self.likelihood).log_prob(params, x)
    return {'log_px_z': log_px_z, 'kl': jnp.stack(kls, axis=-1), 'log_ratio': log_ratio}

  def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """The Gaussian posterior means and log-variances of every group along the mean path (each z_<g
    at its mean, pushed through its flow when there is one), flat."""
    def pick(g, q, p):
      del p
      return self._flow(g, q[0], q[2])[0], {}
    records, _ = self._walk(x.shape[0], pick, self.infer(x, labels))
    return (jnp.concatenate([_flat(r['q'][0]) for r in records], -1),
            jnp.concatenate([_flat(r['q'][1]) for r in records], -1))

  def _split(self, z: jax.Array) -> list[jax.Array]:
    parts = jnp.split(z, list(itertools.accumulate(self.group_sizes))[:-1], axis=-1)
    return [p.reshape(z.shape[0], *shape) for p, shape in zip(parts, self.group_shapes)]

  def decode(self, z: jax.Array, labels: jax.Array | None = None):
    """p(x | z) for a flat z of all groups (top group first)."""
    del labels
    zs = self._split(jnp.asarray(z, jnp.float32))
    _, params = self._walk(z.shape[0], lambda g, q, p: (zs[g], {}))
    return params

  def log_px_given_z(self, z: jax.Array, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return type(self.likelihood).log_prob(self.decode(z, labels), x)

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels: jax.Array | None = None):
    del labels
    temps = priors.group_temperatures(temperature, len(self.group_shapes))

    def pick(g, q, p):
      del q
      k = jax.random.fold_in(key, g)
      if g == 0:
        z = self.prior.sample(k, n, self.group_sizes[0], temps[0], self._top_q)
        return z.reshape(n, *self.group_shapes[0]), {}
      mean, log_var = p
      return mean + temps[g] * jnp.exp(0.5 * log_var) * jax.random.normal(k, mean.shape), {}

    _, params = self._walk(n, pick)
    return params

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
    _, params = self._walk(x.shape[0], self._posterior_pick(keys), self.infer(x, labels))
    return params

  @property
  def coding_obstacle(self) -> str | None:
    if self.flows:
      return 'q(z_g|x, z_<g) goes through a posterior flow, so it is not the diagonal Gaussian the coder discretizes'
    return self.likelihood.coding_obstacle

  def latent_gaussians(self, x: jax.Array | None, z: jax.Array, labels: jax.Array | None = None):
    """Per group, top first: (prior log_weights, means, log_vars, q mean, q log_var), flat, each read from
    the top-down path through the given z's groups above it; the top prior as priors.as_mixture gives it,
    the others one Gaussian (K = 1); q's are None when x is None."""
    del labels
    zs = self._split(jnp.asarray(z, jnp.float32))
    records, _ = self._walk(z.shape[0], lambda g, q, p: (zs[g], {}), None if x is None else self.infer(x))
    out = []
    for g, r in enumerate(records):
      prior = (priors.as_mixture(self.prior, z.shape[0], self.group_sizes[0], self._top_q) if g == 0
               else (jnp.zeros((z.shape[0], 1)), _flat(r['p'][0])[:, None], _flat(r['p'][1])[:, None]))
      out.append(prior + ((None, None) if x is None else (_flat(r['q'][0]), _flat(r['q'][1]))))
    return out
