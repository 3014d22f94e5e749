"""`seqvae` and `lm`: a sentence VAE (Bowman et al. 2016) and its baseline, an LSTM language model, for token
sequences (`vae_jax.data.SequenceSpec`).

seqvae: q(z|x) is a diagonal Gaussian read from a bidirectional LSTM's last
states over x's tokens and EOS; p(z) = N(0, I); p(x|z) is an LSTM over the
tokens, BOS first, with z turned into its initial state and/or joined to every
input (model.z_to_decoder: init | input | both). lm is the same decoder with
no z: log p(x) exactly, so its "NLL" needs no importance samples.

Every loss and figure reads the spec's mask: the tokens and the EOS are
predicted and counted, padding is neither. log p(x|z) is summed over a
sequence's positions, in nats per sequence; `summarize` adds the per-token
figures (nll_per_token_nats = sum of NLLs / sum of tokens, EOS counted, and
perplexity = exp of it) and the count they divide by.

Decoding (`generate`): greedy, sampled (with a temperature) or beam search,
from any z: the prior's (`sample`), q's mean or a draw (`reconstruct`), or a
path between two sentences' codes (`vae_jax.evaluation.metrics.sequence`).
`decode`, `sample` and `reconstruct` return token ids (n, max_length) in the
data's form (tokens, EOS, pads), which the `Tokens` head passes through as
its "mean" and "sample", so every caller of the kind interface gets examples.

Word dropout (Bowman et al.) replaces decoder inputs by UNK with
probability model.word_dropout, in training only (`training_terms`, read by
the `sequence_elbo` objective); the evaluation's terms never drop a word.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import errors
from vae_jax.data import tokenizers
from vae_jax.figures import Figure
from vae_jax.models import gaussian
from vae_jax.models import kind

Z_TO_DECODER = ('init', 'input', 'both')
DECODING = ('greedy', 'sample', 'beam')
_WORD_DROPOUT_STREAM = 7  # folded into an example's key for its word dropout, apart from its z's draw
_NEG = -1e9

BASELINE = 'baseline_lm'  # the parameters of the language model a seqvae trains beside it (model.baseline_lm)

FIGURES = (
    Figure('nll_per_token_nats', '−log p(x) per token: the summed NLL over the summed tokens, EOS counted',
           'nats per token', False, label='NLL/token (nats)', decimals=3),
    Figure('perplexity', 'exp(nll_per_token_nats)', 'per token', False, label='perplexity'),
    Figure('num_tokens', 'tokens the per-token figures divide by (each sequence\'s tokens and its EOS)', 'count',
           scalar=False),
    Figure('lm_nll_nats', 'the language model trained in the same run (model.baseline_lm): its exact −log p(x)',
           'nats per sequence', False, label='LM NLL (nats)'),
    Figure('lm_nll_per_token_nats', 'the same, per token (EOS counted)', 'nats per token', False,
           label='LM NLL/token (nats)', decimals=3),
    Figure('nll_minus_lm_nats', 'nll_nats − lm_nll_nats, paired over the same sequences: below 0, the VAE '
           'beats its language model', 'nats per sequence', False, label='NLL − LM (nats)',
           error='nll_minus_lm_stderr_nats'),
    Figure('nll_minus_lm_stderr_nats', 'standard error of nll_minus_lm_nats over the test sequences',
           'nats per sequence', scalar=False),
)


class Tokens(nn.Module):
  """The head of p(x|z) for token sequences: the decoder samples and decodes tokens itself (they depend on
  the earlier tokens), so a sequence kind's "parameters of p(x|z)" are token ids, which pass through."""
  discrete = True
  autoregressive = True
  coding_obstacle = None

  @staticmethod
  def mean(ids: jax.Array) -> jax.Array:
    return ids

  @staticmethod
  def sample(key: jax.Array, ids: jax.Array) -> jax.Array:
    del key
    return ids


class SequenceDecoder(nn.Module):
  """An LSTM over token embeddings, with z (or nothing, latent_dim 0) as its initial state and/or input."""
  vocab_size: int
  embed_dim: int
  hidden_size: int
  z_init: bool = True
  z_input: bool = True

  def setup(self):
    self.embed = nn.Embed(self.vocab_size, self.embed_dim, name='embed')
    self.rnn = nn.RNN(nn.OptimizedLSTMCell(self.hidden_size), return_carry=True, name='lstm')
    self.to_state = nn.Dense(2 * self.hidden_size, name='z_to_state')
    self.out = nn.Dense(self.vocab_size, name='logits')

  def start(self, z: jax.Array | None, n: int):
    """The LSTM's initial (cell, hidden) state: from z, or zeros."""
    if z is None or not self.z_init:
      zeros = jnp.zeros((n, self.hidden_size), jnp.float32)
      return zeros, zeros
    c, h = jnp.split(jnp.tanh(self.to_state(z)), 2, axis=-1)
    return c, h

  def run(self, carry, tokens: jax.Array, z: jax.Array | None):
    """(carry, logits (n, T, vocab)) after reading `tokens` (n, T) from `carry`."""
    h = self.embed(tokens)
    if z is not None and self.z_input:
      h = jnp.concatenate([h, jnp.broadcast_to(z[:, None, :], (*h.shape[:2], z.shape[-1]))], axis=-1)
    carry, outputs = self.rnn(h, initial_carry=carry)
    return carry, self.out(outputs).astype(jnp.float32)

  def __call__(self, tokens: jax.Array, z: jax.Array | None) -> jax.Array:
    return self.run(self.start(z, tokens.shape[0]), tokens, z)[1]


def decoder_inputs(x: jax.Array) -> jax.Array:
  """BOS, then x shifted right by one: what the decoder reads to predict x."""
  bos = jnp.full((x.shape[0], 1), tokenizers.BOS, x.dtype)
  return jnp.concatenate([bos, x[:, :-1]], axis=1)


def token_log_probs(logits: jax.Array, last: jax.Array | bool) -> jax.Array:
  """log p(x_t | x_<t, z) of every token (..., vocab): pad and BOS are never emitted, and where `last` (the
  row's last position) EOS is certain, so that the probabilities of all rows of the data's form (tokens, EOS,
  pads) sum to 1."""
  vocab = jnp.arange(logits.shape[-1])
  never = (vocab == tokenizers.PAD) | (vocab == tokenizers.BOS)
  logits = jnp.where(never | (jnp.asarray(last)[..., None] & (vocab != tokenizers.EOS)), -jnp.inf, logits)
  return jax.nn.log_softmax(logits, axis=-1)


def masked_log_prob(logits: jax.Array, x: jax.Array, pad_id: int, max_length: int | None = None) -> jax.Array:
  """sum over x's tokens and EOS of log p(x_t | x_<t, z), (n,), in nats; padding contributes nothing. x may be
  cut short of the spec's `max_length` (default: its own width), whose last position alone has a certain EOS."""
  last = jnp.arange(x.shape[1]) == (x.shape[1] if max_length is None else max_length) - 1
  log_p = jnp.take_along_axis(token_log_probs(logits, last), x[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(x != pad_id, log_p, 0.0), axis=-1)


def dropped_words(inputs: jax.Array, keys: jax.Array, rate: float) -> jax.Array:
  """`inputs` with each word (not BOS, not padding) replaced by UNK with probability `rate`, example j's
  choices drawn from keys[j] alone."""
  if rate <= 0:
    return inputs
  u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, _WORD_DROPOUT_STREAM),
                                            inputs.shape[1:]))(keys)
  droppable = (inputs != tokenizers.BOS) & (inputs != tokenizers.PAD)
  return jnp.where(droppable & (u < rate), tokenizers.UNK, inputs)


class SequenceKind(kind.Kind):
  """What `seqvae` and `lm` share: the decoder, the per-token figures, and decoding."""
  figures = FIGURES
  options = {'embed_dim': 256, 'rnn_size': 512, 'z_to_decoder': 'both', 'word_dropout': 0.0,
             'aggressive_encoder': False, 'aggressive_epochs': 2.0, 'aggressive_encoder_steps': 10,
             'decoding': 'greedy', 'beam_size': 5, 'temperature': 1.0}

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if config.data.get('binarize', 'none') != 'none':
      raise errors.ConfigError(f'model.kind={m.kind} reads token ids; use data.binarize=none')
    if m.z_to_decoder not in Z_TO_DECODER:
      raise errors.ConfigError(f'model.z_to_decoder={m.z_to_decoder!r} is not allowed; use one of '
                               f'{", ".join(Z_TO_DECODER)}')
    if not 0 <= m.word_dropout < 1:
      raise errors.ConfigError(f'model.word_dropout={m.word_dropout} must be in [0, 1)')
    if m.decoding not in DECODING:
      raise errors.ConfigError(f'model.decoding={m.decoding!r} is not allowed; use one of {", ".join(DECODING)}')
    for field in ('embed_dim', 'rnn_size', 'beam_size', 'aggressive_encoder_steps'):
      if m[field] < 1:
        raise errors.ConfigError(f'model.{field}={m[field]} must be >= 1')
    if m.aggressive_epochs < 0 or m.temperature <= 0:
      raise errors.ConfigError(f'model.aggressive_epochs={m.aggressive_epochs} must be >= 0 and '
                               f'model.temperature={m.temperature} > 0')

  @staticmethod
  def _spec(config, spec):
    if spec.kind != 'sequence':
      raise errors.ConfigError(f'model.kind={config.model.kind} models token sequences; data.name='
                               f'{config.data.name!r} holds {spec.describe()}: use text, fortunes or words')
    return spec

  @classmethod
  def summarize(cls, terms: dict) -> dict:
    tokens = float(np.sum(np.asarray(terms['num_tokens'], np.float64)))
    log_px = np.asarray(terms['log_px'], np.float64)
    per_token = -float(np.sum(log_px)) / tokens
    out = {'nll_per_token_nats': per_token, 'perplexity': math.exp(per_token), 'num_tokens': int(round(tokens))}
    if 'lm_nll_nats' in terms:  # the baseline LM trained in the same run: its NLL of the same sequences
      lm = np.asarray(terms['lm_nll_nats'], np.float64)
      diff = -log_px - lm
      out.update(lm_nll_per_token_nats=float(np.sum(lm)) / tokens, nll_minus_lm_nats=float(np.mean(diff)),
                 nll_minus_lm_stderr_nats=float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0)
    return out

  # Decoding, from a z (n, d) or none (the language model).

  def _step(self, carry, token, z):
    carry, logits = self.decoder.run(carry, token[:, None], z)
    return carry, logits[:, 0]

  def generate(self, z: jax.Array | None, n: int, key: jax.Array | None = None, mode: str = 'greedy',
               temperature: float = 1.0, beam_size: int = 5) -> jax.Array:
    """Token ids (n, max_length) decoded from z: the most probable token at each step (`greedy`), a draw from
    p(x_t | x_<t, z) at `temperature` (`sample`, from `key`), or the most probable sequence of a beam search of
    `beam_size` (`beam`); each row ends with EOS (forced at the last position) and padding."""
    if mode == 'beam':
      return self._beam(z, n, beam_size)
    length = self.max_length

    def body(mdl, state, i):
      carry, token, done = state
      carry, logits = mdl._step(carry, token, z)  # pylint: disable=protected-access
      log_p = token_log_probs(logits / (temperature if mode == 'sample' else 1.0), i == length - 1)
      if mode == 'greedy':
        nxt = jnp.argmax(log_p, axis=-1)
      else:
        nxt = jax.random.categorical(jax.random.fold_in(key, i), log_p)
      nxt = jnp.where(done, tokenizers.PAD, nxt).astype(jnp.int32)
      return (carry, nxt, done | (nxt == tokenizers.EOS)), nxt

    scan = nn.scan(body, variable_broadcast='params', split_rngs={'params': False}, length=length)
    start = (self.decoder.start(z, n), jnp.full((n,), tokenizers.BOS, jnp.int32), jnp.zeros((n,), bool))
    _, ids = scan(self, start, jnp.arange(length))
    return ids.T

  def _beam(self, z: jax.Array | None, n: int, beam_size: int) -> jax.Array:
    """Beam search: `beam_size` partial sequences an example, scored by their summed log-probability; a beam
    that has emitted EOS keeps its score and pads. The best beam of each example at the end."""
    length, b = self.max_length, beam_size
    tile = lambda a: None if a is None else jnp.repeat(a, b, axis=0)  # (n * b, ...), example-major
    zb = tile(z)

    def body(mdl, state, i):
      carry, token, done, scores, ids = state
      carry, logits = mdl._step(carry, token, zb)  # pylint: disable=protected-access
      log_p = jnp.maximum(token_log_probs(logits, i == length - 1), _NEG)  # finite: top_k of -inf ties
      vocab = log_p.shape[-1]
      pad_only = jnp.full((vocab,), _NEG).at[tokenizers.PAD].set(0.0)
      log_p = jnp.where(done[:, None], pad_only, log_p)
      total = (scores[:, None] + log_p).reshape(n, b * vocab)
      # At the first step every beam of an example is the same: take the top tokens of beam 0 alone.
      total = jnp.where((i == 0) & (jnp.arange(b * vocab) >= vocab)[None], _NEG, total)
      best, flat = jax.lax.top_k(total, b)
      parent = flat // vocab + (jnp.arange(n) * b)[:, None]
      parent, nxt = parent.reshape(-1), (flat % vocab).reshape(-1).astype(jnp.int32)
      carry = jax.tree.map(lambda a: a[parent], carry)
      ids = ids[parent].at[:, i].set(nxt)
      done = done[parent] | (nxt == tokenizers.EOS) | (nxt == tokenizers.PAD)
      return (carry, nxt, done, best.reshape(-1), ids), None

    scan = nn.scan(body, variable_broadcast='params', split_rngs={'params': False}, length=length)
    start = (self.decoder.start(zb, n * b), jnp.full((n * b,), tokenizers.BOS, jnp.int32),
             jnp.zeros((n * b,), bool), jnp.zeros((n * b,), jnp.float32), jnp.zeros((n * b, length), jnp.int32))
    (_, _, _, scores, ids), _ = scan(self, start, jnp.arange(length))
    best = jnp.argmax(scores.reshape(n, b), axis=-1)
    return ids.reshape(n, b, length)[jnp.arange(n), best]

  def _decoding(self, key, n, z):
    return self.generate(z, n, key, self.decoding, self.temperature, self.beam_size)

  # The decoder one position at a time, for entropy coding (`vae_jax.coding.bitsback.TokenCodec`).

  def decoder_start(self, z: jax.Array):
    """The decoder's state before the first position, from z (n, latent_dim)."""
    return self.decoder.start(z if self.latent_dim else None, z.shape[0])

  def next_token_probs(self, carry, token: jax.Array, z: jax.Array, i: jax.Array):
    """(carry, p(x_i | x_<i, z) (n, vocab)) after reading `token` (n,), the token before position i (BOS
    first): the probabilities that `masked_log_prob` reads at position i."""
    carry, logits = self._step(carry, token, z if self.latent_dim else None)
    return carry, jnp.exp(token_log_probs(logits, i == self.max_length - 1))


class SeqVAE(SequenceKind):
  """Bidirectional-LSTM encoder, Gaussian q(z|x), N(0, I) prior, LSTM decoder. Interface: `models.kind.Kind`.

  With model.baseline_lm, a language model (the decoder's size, no z) trains beside it in the same run, on the
  same batches, as a parameter group of its own (`sequence_elbo`): the VAE trains exactly as without it, and
  eval.json gives the LM's exact NLL of the same test sequences and the paired difference
  (`nll_minus_lm_nats`, with its standard error over the sequences).
  """
  options = {**SequenceKind.options, 'baseline_lm': False}
  latent_dim: int
  vocab_size: int
  max_length: int
  embed_dim: int
  rnn_size: int
  z_to_decoder: str = 'both'
  word_dropout: float = 0.0
  decoding: str = 'greedy'
  beam_size: int = 5
  temperature: float = 1.0
  baseline_lm: bool = False
  objective = 'sequence_elbo'
  likelihood = Tokens()

  @classmethod
  def build(cls, config, spec) -> 'SeqVAE':
    spec, m = cls._spec(config, spec), config.model
    return cls(latent_dim=m.latent_dim, vocab_size=spec.vocab_size, max_length=spec.max_length,
               embed_dim=m.embed_dim, rnn_size=m.rnn_size, z_to_decoder=m.z_to_decoder,
               word_dropout=m.word_dropout, decoding=m.decoding, beam_size=m.beam_size, temperature=m.temperature,
               baseline_lm=m.baseline_lm)

  def setup(self):
    self.encoder_embed = nn.Embed(self.vocab_size, self.embed_dim, name='encoder_embed')
    self.encoder = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(self.rnn_size)),
                                    nn.RNN(nn.OptimizedLSTMCell(self.rnn_size)), return_carry=True, name='encoder')
    self.to_q = nn.Dense(2 * self.latent_dim, name='q')
    self.decoder = SequenceDecoder(self.vocab_size, self.embed_dim, self.rnn_size,
                                   z_init=self.z_to_decoder in ('init', 'both'),
                                   z_input=self.z_to_decoder in ('input', 'both'), name='decoder')
    if self.baseline_lm:
      self.baseline = SequenceDecoder(self.vocab_size, self.embed_dim, self.rnn_size, z_init=False, z_input=False,
                                      name=BASELINE)

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return (self.latent_dim,)

  def infer(self, x: jax.Array, labels: jax.Array | None = None) -> dict:
    del labels
    lengths = jnp.sum(x != tokenizers.PAD, axis=-1)
    (forward, backward), _ = self.encoder(self.encoder_embed(x), seq_lengths=lengths)
    h = jnp.concatenate([forward[1], backward[1]], axis=-1)  # each direction's last (cell, hidden): hidden
    return {'h': self.to_q(h).astype(jnp.float32)}

  def encode(self, x: jax.Array, labels: jax.Array | None = None):
    h = self.infer(x, labels)['h']
    return h[:, :self.latent_dim], h[:, self.latent_dim:]

  def _posterior_sample(self, ctx: dict, keys: jax.Array):
    mean, log_var = ctx['h'][:, :self.latent_dim], ctx['h'][:, self.latent_dim:]
    z, log_q = gaussian.draw(keys, mean, log_var)
    return z, log_q, mean, log_var

  def _terms(self, x: jax.Array, ctx: dict, keys: jax.Array, word_dropout: float) -> dict:
    z, log_q, mean, log_var = self._posterior_sample(ctx, keys)
    inputs = dropped_words(decoder_inputs(x), keys, word_dropout)
    log_px_z = masked_log_prob(self.decoder(inputs, z), x, tokenizers.PAD, self.max_length)
    log_p = -0.5 * jnp.sum(gaussian.LOG_2PI + z**2, axis=-1)
    kl_per_dim = 0.5 * (jnp.exp(log_var) + mean**2 - 1.0 - log_var)
    out = {'log_px_z': log_px_z, 'log_ratio': log_p - log_q, 'kl_per_dim': kl_per_dim,
           'kl': jnp.sum(kl_per_dim, axis=-1, keepdims=True),
           'num_tokens': jnp.sum(x != tokenizers.PAD, axis=-1).astype(jnp.float32)}
    if self.baseline_lm:  # exact, and the same for every z: no word dropout, as a plain LM's evaluation
      out['lm_nll_nats'] = -masked_log_prob(self.baseline(decoder_inputs(x), None), x, tokenizers.PAD, self.max_length)
    return out

  def terms(self, x: jax.Array, ctx: dict, keys: jax.Array) -> dict:
    return self._terms(x, ctx, keys, 0.0)

  def training_terms(self, x: jax.Array, keys: jax.Array) -> dict:
    """`terms` with word dropout on the decoder's inputs: what the sequence_elbo objective trains on."""
    return self._terms(x, self.infer(x), keys, self.word_dropout)

  def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Token ids decoded from z by model.decoding (a sampled decoding draws from a fixed key)."""
    del labels
    return self._decoding(jax.random.key(0), z.shape[0], z)

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels: jax.Array | None = None) -> jax.Array:
    """Token ids sampled from p(x|z), z ~ N(0, temperature^2 I)."""
    del labels
    k_z, k_x = jax.random.split(key)
    z = temperature * jax.random.normal(k_z, (n, self.latent_dim))
    return self.generate(z, n, k_x, 'sample', self.temperature)

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Token ids decoded (model.decoding) from z ~ q(z|x)."""
    z, _, _, _ = self._posterior_sample(self.infer(x, labels), keys)
    return self._decoding(keys[0], x.shape[0], z)

  def __call__(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None) -> dict:
    return self.terms(x, self.infer(x, labels), keys)

  coding_obstacle = None

  def latent_gaussians(self, x: jax.Array | None, z: jax.Array, labels: jax.Array | None = None):
    """[(prior log_weights, means, log_vars, q mean, q log_var)]: N(0, I) and q(z|x); q's are None when x is
    None."""
    n, d = z.shape
    prior = (jnp.zeros((n, 1)), jnp.zeros((n, 1, d)), jnp.zeros((n, 1, d)))
    return [prior + ((None, None) if x is None else self.encode(x, labels))]


class LanguageModel(SequenceKind):
  """The LSTM decoder with no latent: log p(x) exactly. Its z is empty (latent_dim 0), its KL 0, and one
  "importance sample" gives its likelihood exactly."""
  vocab_size: int
  max_length: int
  embed_dim: int
  rnn_size: int
  word_dropout: float = 0.0
  decoding: str = 'greedy'
  beam_size: int = 5
  temperature: float = 1.0
  latent_dim = 0
  objective = 'sequence_elbo'
  max_importance_samples = 1
  likelihood = Tokens()

  @classmethod
  def check_config(cls, config) -> None:
    super().check_config(config)
    if config.model.get('baseline_lm', False):
      raise errors.ConfigError('model.baseline_lm trains a language model beside a seqvae; model.kind=lm is one '
                               'already: leave it False')

  @classmethod
  def build(cls, config, spec) -> 'LanguageModel':
    spec, m = cls._spec(config, spec), config.model
    return cls(vocab_size=spec.vocab_size, max_length=spec.max_length, embed_dim=m.embed_dim, rnn_size=m.rnn_size,
               word_dropout=m.word_dropout, decoding=m.decoding, beam_size=m.beam_size, temperature=m.temperature)

  def setup(self):
    self.decoder = SequenceDecoder(self.vocab_size, self.embed_dim, self.rnn_size, z_init=False, z_input=False,
                                   name='decoder')

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return (0,)

  def infer(self, x: jax.Array, labels: jax.Array | None = None) -> dict:
    del labels
    return {'empty': jnp.zeros((x.shape[0], 0), jnp.float32)}

  def encode(self, x: jax.Array, labels: jax.Array | None = None):
    del labels
    return jnp.zeros((x.shape[0], 0), jnp.float32), None  # an empty code, a point mass

  def _terms(self, x: jax.Array, keys: jax.Array, word_dropout: float) -> dict:
    inputs = dropped_words(decoder_inputs(x), keys, word_dropout)
    n = x.shape[0]
    return {'log_px_z': masked_log_prob(self.decoder(inputs, None), x, tokenizers.PAD,
                                                self.max_length),
            'log_ratio': jnp.zeros((n,), jnp.float32), 'kl': jnp.zeros((n, 1), jnp.float32),
            'num_tokens': jnp.sum(x != tokenizers.PAD, axis=-1).astype(jnp.float32)}

  def terms(self, x: jax.Array, ctx: dict, keys: jax.Array) -> dict:
    del ctx
    return self._terms(x, keys, 0.0)

  def training_terms(self, x: jax.Array, keys: jax.Array) -> dict:
    return self._terms(x, keys, self.word_dropout)

  def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    del labels
    return self._decoding(jax.random.key(0), z.shape[0], None)

  def sample(self, key: jax.Array, n: int, temperature=1.0, labels: jax.Array | None = None) -> jax.Array:
    del temperature, labels
    return self.generate(None, n, key, 'sample', self.temperature)

  def reconstruct(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    del labels
    return self._decoding(keys[0], x.shape[0], None)

  def __call__(self, x: jax.Array, keys: jax.Array, labels: jax.Array | None = None) -> dict:
    return self.terms(x, None, keys)

  coding_obstacle = None  # coded under p(x) alone (no latent, no bits back): the baseline of seqvae's file
