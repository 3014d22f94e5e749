"""`vqvae`: discrete latents (van den Oord et al. 2017), with a PixelCNN prior over the codes as stage 2.

The encoder maps x to a grid z_e (h, w, D); each vector is replaced by its
nearest of K codebook vectors (z_q, codes c), and the decoder reads z_q with
the straight-through gradient z_e + sg(z_q - z_e). Training adds, per
example, commitment_cost * |z_e - sg(z_q)|^2 (and, for a codebook learned by
gradient, |sg(z_e) - z_q|^2) to -log p(x|z_q): the interface's `aux_loss`.

The codebook either follows its assigned vectors by exponential moving
averages (model.codebook_ema_decay > 0, the default 0.99) or is learned by
gradient (0). Either way each code keeps an EMA of how many vectors it is
assigned per step; a code whose count falls below model.dead_code_threshold
is restarted at a random encoder output of the batch. Those statistics (and
the EMA codebook) live among the parameters but are read through
stop_gradient, so the optimizer leaves them as they are; `update_state`
rewrites them after every step of the first stage. The kind's objective
(`vae_jax.training.objectives.vector_quantized`) adds the commitment to the
loss, runs `update_state`, and lists the two stages.

As a latent-variable model: q(c|x) is a point mass, so KL(q || p) = -log p(c)
and log p(x) >= log p(x|z_q) + log p(c), exact with one importance sample.
p(c) is the PixelCNN (`pixelcnn`), which stage 2 trains on the frozen first
stage for model.code_prior_epochs; it starts exactly uniform (log K per
code), so stage 1 is scored with the uniform prior. eval.json reports both
bounds (`nll_bound_nats`, `nll_bound_uniform_prior_nats`) and the codebook's
use (`codebook_perplexity`, `codes_used`).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import errors
from vae_jax import figures as figures_lib
from vae_jax.models import blocks
from vae_jax.models import kind
from vae_jax.models import likelihoods
from vae_jax.models import pixelcnn
from vae_jax.models import priors

_USAGE_DECAY = 0.99  # of the per-code assignment counts when the codebook itself is learned by gradient


def codebook_use(usage: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Perplexity exp(H) of the share of assignments each code got, and how many codes got any.

  `usage` (..., K): assignments per code, summed over whatever the leading axes hold."""
  counts = jnp.sum(usage.reshape(-1, usage.shape[-1]), axis=0)
  share = counts / jnp.maximum(jnp.sum(counts), 1e-12)
  entropy = -jnp.sum(jnp.where(share > 0, share * jnp.log(jnp.where(share > 0, share, 1.0)), 0.0))
  return jnp.exp(entropy), jnp.sum(counts > 0)


class Quantizer(nn.Module):
  """Nearest-neighbour quantization against a codebook (K, D), with per-code assignment counts."""
  num_codes: int
  dim: int
  ema: bool

  def setup(self):
    init = nn.initializers.variance_scaling(1.0, 'fan_in', 'uniform')
    self.codebook = self.param('codebook', init, (self.num_codes, self.dim))
    self.count = self.param('count', nn.initializers.ones_init(), (self.num_codes,))

  def vectors(self) -> jax.Array:
    """The codebook as the model reads it: constant to the optimizer when it follows EMAs."""
    return jax.lax.stop_gradient(self.codebook) if self.ema else self.codebook

  def __call__(self, z_e: jax.Array) -> tuple[jax.Array, jax.Array]:
    """codes (..., ) of the nearest codebook vector to each z_e (..., D), and those vectors."""
    book = self.vectors()
    flat = z_e.reshape(-1, self.dim)
    distances = (jnp.sum(flat**2, axis=-1, keepdims=True) - 2.0 * flat @ book.T + jnp.sum(book**2, axis=-1)[None])
    codes = jnp.argmin(jax.lax.stop_gradient(distances), axis=-1).reshape(z_e.shape[:-1])
    return codes, book[codes]

  def updated(self, z_e: jax.Array, codes: jax.Array, key: jax.Array, decay: float, dead_threshold: float) -> dict:
    """The new codebook (EMA mode) and counts after assigning z_e to `codes`, dead codes restarted."""
    flat, flat_codes = z_e.reshape(-1, self.dim), codes.reshape(-1)
    one_hot = jax.nn.one_hot(flat_codes, self.num_codes, dtype=jnp.float32)
    assigned = jnp.sum(one_hot, axis=0)
    usage_decay = decay if self.ema else _USAGE_DECAY
    count = usage_decay * self.count + (1.0 - usage_decay) * assigned
    codebook = self.codebook
    if self.ema:
      sums = decay * self.codebook * self.count[:, None] + (1.0 - decay) * one_hot.T @ flat
      codebook = sums / jnp.maximum(count, 1e-6)[:, None]
    dead = count < dead_threshold
    restart = flat[jax.random.randint(key, (self.num_codes,), 0, flat.shape[0])]
    return {'codebook': jnp.where(dead[:, None], restart, codebook), 'count': jnp.where(dead, 1.0, count)}


class VQVAE(kind.Kind):
  """The interface is `vae_jax.models.kind.Kind`; the model is in this module's docstring."""
  encoder: nn.Module
  decoder: nn.Module
  likelihood: nn.Module
  quantizer: Quantizer
  prior: pixelcnn.PixelCNN
  grid: tuple[int, int]
  commitment_cost: float = 0.25
  ema_decay: float = 0.99
  dead_code_threshold: float = 0.01

  max_importance_samples = 1  # q(c|x) is a point mass: one sample gives the bound exactly
  options = {
      'codebook_size': 512,         # K codes
      'commitment_cost': 0.25,      # weight of |z_e - sg(z_q)|^2 (van den Oord et al.'s beta)
      'codebook_ema_decay': 0.99,   # the codebook follows EMAs of its vectors; 0: learned by gradient
      'dead_code_threshold': 0.01,  # a code assigned fewer vectors per step (EMA) is restarted
      'code_prior_epochs': 0.0,     # epochs of stage 2, the PixelCNN prior over codes (0: none)
      'code_prior_channels': 64,    # width of the PixelCNN
      'code_prior_layers': 5,       # masked residual layers of the PixelCNN
  }
  objective = 'vqvae'  # vae_jax.training.objectives.vector_quantized: the commitment, the codebook, two stages
  figures = (
      figures_lib.Figure('nll_bound_nats', '−log p(x|z_q) − log p(z_q): the bound with the learned prior over codes',
                         'nats per example', higher_is_better=False),
      figures_lib.Figure('nll_bound_uniform_prior_nats',
                         '−log p(x|z_q) + (codes) · log K: the bound with a uniform prior', 'nats per example',
                         higher_is_better=False),
      figures_lib.Figure('codebook_perplexity', 'codebook perplexity, exp(entropy of the codes used)', 'codes',
                         higher_is_better=True, validation=True),
      figures_lib.Figure('codes_used', 'codes assigned to at least one test vector', 'count',
                         higher_is_better=True, validation=True),
  )
  coding_obstacle = ('q(c|x) is a point mass, so there are no bits to get back; coding the codes directly under '
                     'the PixelCNN prior is not implemented')

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if m.encoder != 'conv':
      raise errors.ConfigError(f'model.kind=vqvae quantizes a grid of vectors, which needs model.encoder=conv '
                               f'(got {m.encoder!r})')
    if m.prior != 'standard_normal' or m.posterior_flow != 'none':
      raise errors.ConfigError(f'model.kind=vqvae has its own prior over codes (a PixelCNN, model.code_prior_*) '
                               f'and no posterior flow; leave model.prior and model.posterior_flow at their '
                               f'defaults (got {m.prior!r}, {m.posterior_flow!r})')
    if m.num_importance_samples != 1:
      raise errors.ConfigError('model.kind=vqvae has a point-mass posterior: the IWAE bound equals the ELBO; '
                               'set model.num_importance_samples=1')
    for ok, message in ((m.codebook_size >= 2, f'model.codebook_size={m.codebook_size} must be >= 2'),
                        (m.commitment_cost >= 0, f'model.commitment_cost={m.commitment_cost} must be >= 0'),
                        (0 <= m.codebook_ema_decay < 1, f'model.codebook_ema_decay={m.codebook_ema_decay} must be in '
                         '[0, 1)'),
                        (m.code_prior_epochs >= 0, f'model.code_prior_epochs={m.code_prior_epochs} must be >= 0'),
                        (m.code_prior_channels >= 1 and m.code_prior_layers >= 0,
                         'model.code_prior_channels must be >= 1 and model.code_prior_layers >= 0')):
      if not ok:
        raise errors.ConfigError(message)

  @classmethod
  def build(cls, config, spec) -> 'VQVAE':
    m = config.model
    height, width, channels = blocks.image_dims(spec, 'model.kind=vqvae',
                                                'use another model.kind, with model.encoder=mlp', len(m.hidden_sizes))
    sizes = tuple(int(h) for h in m.hidden_sizes)
    dtype = jnp.dtype(m.dtype)
    likelihood = likelihoods.make(config, channels)
    grid = (height, width)
    for _ in sizes:
      grid = (-(-grid[0] // 2), -(-grid[1] // 2))
    return cls(encoder=blocks.ConvGridEncoder(sizes, m.latent_dim, m.activation, dtype),
               decoder=blocks.ConvGridDecoder(sizes, (height, width, likelihood.output_channels(channels)),
                                              m.activation, dtype),
               likelihood=likelihood,
               quantizer=Quantizer(m.codebook_size, m.latent_dim, m.codebook_ema_decay > 0),
               prior=pixelcnn.PixelCNN(m.codebook_size, m.code_prior_channels, m.code_prior_layers),
               grid=grid, commitment_cost=m.commitment_cost, ema_decay=m.codebook_ema_decay,
               dead_code_threshold=m.dead_code_threshold)

  kl_note = ('the KL of q(c|x), a point mass on the nearest codes, is -log p(c) under the code prior: exact; '
             'the prior is uniform (log K per code) until stage 2 trains it')

  @property
  def latent_dim(self) -> int:
    return self.grid[0] * self.grid[1] * self.quantizer.dim

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return (self.latent_dim,)

  @property
  def num_codes(self) -> int:
    return self.quantizer.num_codes

  def infer(self, x: jax.Array, labels: jax.Array | None = None) -> dict:
    del labels  # unconditional
    z_e = self.encoder(x).astype(jnp.float32)
    codes, z_q = self.quantizer(z_e)
    return {'z_e': z_e, 'z_q': z_q, 'codes': codes}

  def _decode_grid(self, z: jax.Array):
    return self.likelihood(self.decoder(z).astype(jnp.float32))

  def terms(self, x: jax.Array, ctx: dict, keys: jax.Array) -> dict[str, jax.Array]:
    del keys  # nothing is random: q(c|x) is a point mass
    z_e, z_q, codes = ctx['z_e'], ctx['z_q'], ctx['codes']
    n = x.shape[0]
    per_example = lambda a: jnp.sum(a.reshape(n, -1), axis=-1)
    log_px_z = type(self.likelihood).log_prob(self._decode_grid(z_e + jax.lax.stop_gradient(z_q - z_e)), x)
    log_pc = self.prior.log_prob(codes)
    aux = self.commitment_cost * per_example((z_e - jax.lax.stop_gradient(z_q))**2)
    if self.ema_decay <= 0:  # the codebook learns by gradient: move it toward its vectors
      aux = aux + per_example((jax.lax.stop_gradient(z_e) - z_q)**2)
    uniform = codes[0].size * math.log(self.num_codes)
    return {'log_px_z': log_px_z, 'kl': -log_pc[:, None], 'log_ratio': log_pc, 'aux_loss': aux,
            'code_usage': jnp.sum(jax.nn.one_hot(codes.reshape(n, -1), self.num_codes), axis=1),
            'nll_bound_nats': -(log_px_z + log_pc), 'nll_bound_uniform_prior_nats': uniform - log_px_z}

  @classmethod
  def summarize(cls, terms: dict) -> dict:
    """The codebook's use over the evaluated examples, from their summed `code_usage`."""
    perplexity, used = codebook_use(terms['code_usage'])
    return {'codebook_perplexity': float(perplexity), 'codes_used': int(used)}

  def update_state(self, x: jax.Array, labels: jax.Array | None, key: jax.Array) -> dict:
    """The parameters that follow the data rather than the gradient (codebook EMA, counts), recomputed
    after every update of the first stage (the objective's `after_update`)."""
    ctx = self.infer(x, labels)
    return {'quantizer': self.quantizer.updated(ctx['z_e'], ctx['codes'], key, self.ema_decay,
                                                self.dead_code_threshold)}

  def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, None]:
    """The quantized grid z_q, flat (n, h * w * D): what the decoder reads."""
    z_q = self.infer(x, labels)['z_q']
    return z_q.reshape(z_q.shape[0], -1), None

  def decode(self, z: jax.Array, labels: jax.Array | None = None):
    del labels
    return self._decode_grid(jnp.asarray(z, jnp.float32).reshape(z.shape[0], *self.grid, self.quantizer.dim))

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels: jax.Array | None = None):
    del labels
    (t,) = priors.group_temperatures(temperature, 1)
    codes = self.prior.sample(key, n, self.grid, t)
    return self._decode_grid(self.quantizer.vectors()[codes])

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None):
    del keys
    return self._decode_grid(self.infer(x, labels)['z_q'])

