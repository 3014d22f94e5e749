"""Lossless compression with a run's model: bits-back coding on an ANS stack.

BB-ANS (Townsend, Bird & Barber 2019), in the top-down order HiLLoC
(Townsend et al. 2020) uses for hierarchies. For latent groups z_0 (top) ...
z_{G-1} and one image x:

  compress     pop  z_g ~ Q(z_g | x, z_<g)   for g = 0 .. G-1   (takes back bits already on the stack)
               push x   with p(x | z)
               push z_g with P(z_g | z_<g)   for g = G-1 .. 0
  decompress   the same steps undone in reverse: pop z_0 .. z_{G-1}, pop x, push the z's back with Q.

The net cost of an image is -log p(x|z) - log P(z) + log Q(z|x): the
negative ELBO of the discretized model, in expectation over z ~ Q.

An autoregressive p(x|z) (the logistic mixture with a pixel context) is
pushed pixel by pixel, the last first, each pixel with its probabilities
given the pixels before it, so decompression pops them in raster order and
rebuilds the context as it goes: H x W small steps a batch instead of one.

Discretization (as in BB-ANS): each latent dimension is cut into 2^bucket_bits
buckets of equal mass under its prior p(z_g | z_<g), a diagonal Gaussian. A
bucket index then costs exactly bucket_bits under the prior (a uniform
model), its latent value is the bucket's median, and Q puts on it q's mass
between its edges. More buckets resolve q more finely at no cost in the
expected rate, but need more bits on the stack before the first pop;
DEFAULT_BUCKET_BITS is where the measured rate stopped improving
(RESULTS.md, "Lossless compression").

A mixture prior (VampPrior, mog), P(z) = sum_k pi_k P_k(z), does not factorize
over dimensions. Its group is cut into the equal-mass buckets of the mixture's
moment-matched Gaussian, and the component is one more latent, coded with
bits back (as BB-ANS codes any latent): pop k ~ q(k | b) = pi_k P_k(b) / P(b),
push the bucket indices b with component k's masses on the buckets (which
factorize over dimensions), push k with pi. The net cost is
-log P_k(b) - log pi_k + log q(k | b) = -log P(b) for every k: the mixture's
exact mass on the box, so the rate is still the discretized model's negative
ELBO, and every step is one batched call over all dimensions. (Format
version 1 pushed b one dimension at a time under P(b_d | b_<d): the same
rate, but 40 sequential calls a chunk, each weighing every component on every
bucket; 19 times slower on the VampPrior HVAE, RESULTS.md.)

The examples are coded in chunks, each run through the networks as one padded
batch of `batch_size`. Each chunk codes as many examples as the bits already
on the stack can pay for with their pops (`Coder._next_chunk`: the first from
a few seed words, then more as the stack grows), so that every pop gets its
bits back even where an example's net cost is far below its pops (a short
sentence, a collapsed posterior); the chunk's size is pushed last, and
decoding pops it first. (Versions 1-3 chose chunks of at most half the
examples already coded, which starves the pops of such examples.) The seed
words are the bottom of the stack, part of the file, and decompression ends
with exactly them, which checks the whole round trip.

Exactness needs the decoder to compute bit-identical probabilities, so both
directions run the same compiled functions on the same padded inputs, and a
file records the backend it was made on and refuses another.

File format (version 4): MAGIC, the binary header
(`_header_bytes`: the format version, the first 8 bytes of the SHA-256 of the
run's config, of its parameters and of the payload, the checkpoint step, the
number of words, the coding settings, the coded array's shape and dtype, the
backend: under 80 bytes with the magic), then the ANS words as little-endian uint32.
Versions 1 to 3 start with JSON_MAGIC, a uint32 length and a JSON header with
whole hashes; they still decode (`_CHANGED_IN`).

Token sequences (`TokenCodec`) are coded the same way, with an autoregressive
p(x|z) over positions: a row codes its tokens and its EOS, and decoding stops
a row at its EOS. Per dimension, for them, is per token (EOS counted).
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import struct
import time

import constriction
import jax
import jax.numpy as jnp
from jax.scipy import special
import numpy as np

from vae_jax import errors
from vae_jax import progress
from vae_jax.data import spec as data_spec
from vae_jax.models import likelihoods

MAGIC = b'VAEJAXB4'  # version 4 on: a binary header follows
JSON_MAGIC = b'VAEJAXBB'  # versions 1-3: a uint32 length and a JSON header follow
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
# What each version changed, and the last commit that decodes the older files it touches; the rest of
# an older file codes as this version does, so it still decodes. Version 2: a mixture prior's group
# (version 1 pushed it one dimension at a time). Version 3: the logistic mixture's bin masses (one
# sigmoid an edge rather than four a bin: the same numbers to rounding, but not bit for bit). Version 4: the
# binary header, and chunk sizes on the stack (older files decode with their fixed schedule).
_CHANGED_IN = ((2, 'a mixture prior', 'c41061c'), (3, 'a logistic-mixture likelihood', '740e27b'))
DEFAULT_BUCKET_BITS = 8
DEFAULT_BATCH_SIZE = 200
MAX_TABLE = 2**23  # symbol probabilities per network batch
_SPARE_BITS = 64  # left on the stack under a chunk's pops (the ANS state's own bits)
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


class CompressedFileError(errors.UserError):
  """A compressed file that is damaged, of another format, or made with another run."""


def config_hash(config) -> str:
  return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def params_hash(params) -> str:
  """SHA-256 of every parameter's bytes in tree order: two checkpoints of one config differ here."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()


def bucket_masses(prior_mean, prior_log_var, q_mean, q_log_var, bits: int) -> jax.Array:
  """q's mass in each of the 2^bits equal-prior-mass buckets, (..., 2^bits).

  Each difference of CDFs is taken on the side of q's mean where the two
  values are not both near 1, so no mass is lost to cancellation.
  """
  count = 2**bits
  quantiles = special.ndtri(jnp.arange(1, count, dtype=jnp.float32) / count)  # the count-1 inner edges
  edges = prior_mean[..., None] + jnp.exp(0.5 * prior_log_var)[..., None] * quantiles
  t = (edges - q_mean[..., None]) * jnp.exp(-0.5 * q_log_var)[..., None]
  inf = jnp.full(t.shape[:-1] + (1,), jnp.inf)
  t = jnp.concatenate([-inf, t, inf], axis=-1)
  lo, hi = t[..., :-1], t[..., 1:]
  return jnp.where(lo > 0, special.ndtr(-lo) - special.ndtr(-hi), special.ndtr(hi) - special.ndtr(lo))


def _interval_masses(t: jax.Array) -> jax.Array:
  """Standard normal mass between consecutive standardized edges t (..., m+1), (..., m)."""
  return likelihoods.interval_masses(t, lambda s: 0.5 * jax.lax.erfc(s * (1 / math.sqrt(2))))


def reference_gaussian(log_weights, means, log_vars) -> tuple[jax.Array, jax.Array]:
  """The diagonal Gaussian (mean, log_var), each (n, d), whose equal-mass buckets a group is cut into: the
  prior itself when it is one Gaussian (K = 1), else the mixture's mean and variance per dimension."""
  if means.shape[-2] == 1:
    return means[..., 0, :], log_vars[..., 0, :]
  w = jax.nn.softmax(log_weights, axis=-1)[..., None]
  mean = jnp.sum(w * means, axis=-2)
  var = jnp.sum(w * (jnp.exp(log_vars) + jnp.square(means - mean[..., None, :])), axis=-2)
  return mean, jnp.log(var)


def _bucket_edges(log_weights, means, log_vars, bits: int) -> jax.Array:
  """The 2^bits + 1 bucket edges of every dimension, (n, D, 2^bits + 1), -inf .. inf: the equal-mass
  quantiles of the group's reference Gaussian."""
  ref_mean, ref_log_var = reference_gaussian(log_weights, means, log_vars)
  grid = special.ndtri(jnp.arange(2**bits + 1, dtype=jnp.float32) / 2**bits)
  return ref_mean[..., None] + jnp.exp(0.5 * ref_log_var)[..., None] * grid


def component_posterior(log_weights, means, log_vars, index, bits: int) -> jax.Array:
  """q(k | b) = pi_k P_k(b) / P(b), (n, K): which of the mixture's components (log_weights (n, K), means
  and log_vars (n, K, D)) the box of buckets with indices `index` (n, D) came from."""
  edges = _bucket_edges(log_weights, means, log_vars, bits)
  chosen = jnp.stack([jnp.take_along_axis(edges, index[..., None], -1)[..., 0],
                      jnp.take_along_axis(edges, index[..., None] + 1, -1)[..., 0]], axis=-1)  # (n, D, 2)
  mass = _interval_masses((chosen[:, None] - means[..., None]) * jnp.exp(-0.5 * log_vars)[..., None])[..., 0]
  # A floor keeps a component whose mass underflows from making every weight -inf; both directions
  # compute the same numbers, so the floor costs a sliver of rate, never exactness.
  return jax.nn.softmax(log_weights + jnp.sum(jnp.log(jnp.maximum(mass, 1e-30)), axis=-1), axis=-1)


def component_masses(log_weights, means, log_vars, component, bits: int) -> jax.Array:
  """P_k(b_d): the mass of component k = `component` (n,) on every bucket of every dimension,
  (n, D, 2^bits)."""
  edges = _bucket_edges(log_weights, means, log_vars, bits)
  mean = jnp.take_along_axis(means, component[:, None, None], axis=1)[:, 0]
  log_var = jnp.take_along_axis(log_vars, component[:, None, None], axis=1)[:, 0]
  return _interval_masses((edges - mean[..., None]) * jnp.exp(-0.5 * log_var)[..., None])


def bucket_values(prior_mean, prior_log_var, index, bits: int) -> jax.Array:
  """The latent value of each bucket index: the bucket's median under the prior."""
  u = (index.astype(jnp.float32) + 0.5) / 2**bits
  return prior_mean + jnp.exp(0.5 * prior_log_var) * special.ndtri(u)


def chunk_sizes(n: int, batch_size: int) -> list[int]:
  """How many examples each chunk of a version 1-3 file codes: at most half of those already coded, at least
  1, at most batch_size. (Version 4 chooses each chunk by the bits on the stack, `Coder._next_chunk`.)"""
  sizes, done = [], 0
  while done < n:
    size = min(batch_size, max(1, done // 2), n - done)
    sizes.append(size)
    done += size
  return sizes


def seed_words(latent_dim: int, bucket_bits: int) -> np.ndarray:
  """Fixed pseudo-random words at the bottom of the stack: enough for the first image's pops."""
  count = math.ceil(latent_dim * bucket_bits / 32) + 2
  words = np.random.default_rng(0).integers(1, 2**32, size=count, dtype=np.uint32)
  return words  # never 0, so the top word is a valid end of ANS data


@dataclasses.dataclass
class Header:
  """What a file says about itself; decompression checks every field against the run."""
  config_sha256: str
  params_sha256: str
  step: int
  image_shape: tuple[int, ...]  # of the coded array, images first
  dtype: str
  scale: int  # the array holds symbols / scale (255 for 8-bit images in [0, 1], else 1)
  bucket_bits: int
  batch_size: int
  backend: str
  payload_sha256: str = ''
  num_words: int = 0
  format_version: int = FORMAT_VERSION


_BINARY = struct.Struct('<B8s8s8sIIIHBB')  # version 4 on: the fixed fields of the header, then the shape
_HASH_BYTES = 8  # of each SHA-256 that a version 4 header keeps: a 1 in 2^64 chance of missing another run


def _short(text: str) -> bytes:
  data = text.encode('ascii')
  return bytes([len(data)]) + data


def _header_bytes(header: Header) -> bytes:
  """The binary header (version 4): a few dozen bytes, so that a small corpus's file is its payload."""
  digest = lambda h: bytes.fromhex(h)[:_HASH_BYTES]
  fixed = _BINARY.pack(header.format_version, digest(header.config_sha256), digest(header.params_sha256),
                       digest(header.payload_sha256), header.step, header.num_words, header.batch_size, header.scale,
                       header.bucket_bits, len(header.image_shape))
  return (fixed + struct.pack(f'<{len(header.image_shape)}I', *header.image_shape) + _short(header.dtype)
          + _short(header.backend))


def _parse_header(blob: bytes, start: int) -> tuple[Header, int]:
  """A version 4 header at `start`, and where the payload begins."""
  version, config, params, payload, step, words, batch, scale, bits, ndim = _BINARY.unpack_from(blob, start)
  at = start + _BINARY.size
  shape = struct.unpack_from(f'<{ndim}I', blob, at)
  at += 4 * ndim
  texts = []
  for _ in range(2):
    size = blob[at]
    texts.append(blob[at + 1:at + 1 + size].decode('ascii'))
    at += 1 + size
  return Header(config.hex(), params.hex(), step, tuple(shape), texts[0], scale, bits, batch, texts[1], payload.hex(),
                words, version), at


def write_file(path: os.PathLike, header: Header, words: np.ndarray) -> int:
  """Writes the file atomically (a temporary name, then a rename; the temporary file is removed if the write
  fails or a signal stops it), so no reader ever takes half a file for a whole one; returns its size in bytes."""
  payload = np.asarray(words, dtype='<u4').tobytes()
  header = dataclasses.replace(header, payload_sha256=hashlib.sha256(payload).hexdigest(), num_words=len(words))
  blob = MAGIC + _header_bytes(header) + payload
  tmp = f'{os.fspath(path)}.tmp-{os.getpid()}'
  try:
    with open(tmp, 'wb') as f:
      f.write(blob)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return len(blob)


def same_hash(recorded: str, full: str) -> bool:
  """Whether a header's hash (whole, or its first bytes from version 4 on) is that of `full`."""
  return bool(recorded) and full.startswith(recorded)


def read_file(path: os.PathLike) -> tuple[Header, np.ndarray]:
  """The header and words of a file; a damaged or foreign file is a CompressedFileError."""
  try:
    blob = open(path, 'rb').read()
  except OSError as e:
    raise CompressedFileError(f'cannot read {path}: {e.strerror}') from None
  if not blob.startswith((MAGIC, JSON_MAGIC)):
    raise CompressedFileError(f'{path} is not a vae_jax compressed file (it does not start with {MAGIC!r})')
  try:
    if blob.startswith(MAGIC):  # version 4 on: a binary header
      header, end = _parse_header(blob, len(MAGIC))
    else:  # versions 1 to 3: JSON, after its length
      (size,) = struct.unpack('<I', blob[len(JSON_MAGIC):len(JSON_MAGIC) + 4])
      start = len(JSON_MAGIC) + 4
      meta = json.loads(blob[start:start + size].decode())
      header, end = Header(**{**meta, 'image_shape': tuple(meta['image_shape'])}), start + size
  except (ValueError, TypeError, KeyError, UnicodeDecodeError, struct.error, IndexError):
    raise CompressedFileError(f'{path} has a damaged header: the file is truncated or corrupted') from None
  if header.format_version not in READABLE_VERSIONS:
    raise CompressedFileError(f'{path} has format version {header.format_version}; this vae_jax reads versions '
                              f'{", ".join(map(str, READABLE_VERSIONS))}')
  payload = blob[end:]
  if len(payload) != 4 * header.num_words or not same_hash(header.payload_sha256, hashlib.sha256(payload).hexdigest()):
    raise CompressedFileError(f'{path} is damaged: its payload ({len(payload)} bytes) does not match the '
                              f'checksum in its header; compress the examples again')
  return header, np.frombuffer(payload, dtype='<u4').astype(np.uint32)


def _table(probs, real: int) -> np.ndarray:
  """The first `real` rows of per-symbol probabilities, flat (symbols, alphabet), for constriction."""
  probs = np.asarray(probs)[:real]
  return np.ascontiguousarray(probs.reshape(-1, probs.shape[-1]), dtype=np.float32)


class PixelCodec:
  """Pushes and pops images with p(x|z) through the run's likelihood head: every pixel in one call when the
  pixels are independent given z, else pixel by pixel (a pixel context)."""

  def __init__(self, model, params, spec):
    self.params, self.shape = params, tuple(int(d) for d in spec.shape)
    self.head = type(model.likelihood)
    self.autoregressive = bool(model.likelihood.autoregressive)
    # Probabilities per image in one call: an autoregressive head's table is one pixel at a time.
    self.table = (self.shape[-1] if self.autoregressive else math.prod(self.shape)) * self.head.num_symbols
    apply = lambda p, *args, method: model.apply({'params': p}, *args, method=method)
    self._symbol_probs = jax.jit(lambda p, z: self.head.symbol_probs(apply(p, z, method=model.decode)))
    self._decode = jax.jit(lambda p, z: apply(p, z, method=model.decode))
    # Pixel i's probabilities given the images' symbols, of which only those before i are read: compression
    # passes the whole images, decompression those decoded so far, and both get the same numbers.
    self._pixel_probs = jax.jit(lambda params, s, i: self.head.pixel_symbol_probs(params, self.head.to_canvas(s), i))
    self.model_input = jax.jit(self.head.from_symbols)

  def symbols(self, examples: np.ndarray) -> tuple[np.ndarray, int]:
    return to_symbols(self.head, examples, self.shape)

  def push(self, ans, s: np.ndarray, z: np.ndarray, real: int) -> None:
    """Pushes the first `real` images of the batch s with p(x|z), the last pixel first when they depend on
    each other, so that decoding pops them in raster order."""
    if not self.autoregressive:
      ans.encode_reverse(s[:real].ravel(), _CATEGORICAL, _table(self._symbol_probs(self.params, z), real))
      return
    params, flat = self._decode(self.params, z), s.reshape(len(s), -1, s.shape[-1])
    for i in reversed(range(flat.shape[1])):
      probs = _table(self._pixel_probs(params, s, np.int32(i)), real)
      ans.encode_reverse(np.ascontiguousarray(flat[:real, i].ravel()), _CATEGORICAL, probs)

  def pop(self, ans, z: np.ndarray, real: int) -> np.ndarray:
    """Undoes `push`: the batch's symbols (batch, H, W, C), zero past `real`."""
    s = np.zeros((len(z), *self.shape), np.int32)
    if not self.autoregressive:
      s[:real] = ans.decode(_CATEGORICAL, _table(self._symbol_probs(self.params, z), real)).reshape(real, *self.shape)
      return s
    params, flat = self._decode(self.params, z), s.reshape(len(s), -1, s.shape[-1])  # flat is a view of s
    for i in range(flat.shape[1]):
      probs = _table(self._pixel_probs(params, s, np.int32(i)), real)
      flat[:real, i] = ans.decode(_CATEGORICAL, probs).reshape(real, -1)
    return s


class TokenCodec:
  """Pushes and pops token sequences (`SequenceSpec` rows: tokens, EOS, pads) with p(x|z) one position at a
  time, through the kind's `decoder_start` and `next_token_probs`. Each row codes its tokens and its EOS and
  nothing after: decoding knows a row has ended when it pops the EOS. Both directions step the same compiled
  decoder on the same inputs (a finished row reads its EOS, then pads, in both), so the probabilities agree bit
  for bit; compression steps through every position first, then pushes them last first."""

  def __init__(self, model, params, spec):
    self.params, self.shape, self.spec = params, (int(spec.max_length),), spec
    self.table = int(spec.vocab_size)
    apply = lambda p, *args, method: model.apply({'params': p}, *args, method=method)
    self._start = jax.jit(lambda p, z: apply(p, z, method=model.decoder_start))
    self._next = jax.jit(lambda p, carry, token, z, i: apply(p, carry, token, z, i, method=model.next_token_probs))
    self.model_input = jnp.asarray

  def symbols(self, examples: np.ndarray) -> tuple[np.ndarray, int]:
    return sequence_symbols(self.spec, examples), 1

  def _steps(self, z: np.ndarray, rows: np.ndarray | None):
    """Yields (i, probabilities of position i (batch, vocab), the token read next); `rows` gives the tokens
    read (compression), else the caller sends each decoded token in (decompression)."""
    carry, token = self._start(self.params, z), np.full(len(z), self.spec.bos_id, np.int32)
    for i in range(self.shape[0]):
      carry, probs = self._next(self.params, carry, token, z, np.int32(i))
      sent = yield i, probs
      token = rows[:, i] if rows is not None else sent

  def push(self, ans, s: np.ndarray, z: np.ndarray, real: int) -> None:
    lengths = self.spec.lengths(s[:real])
    tables = []
    for i, probs in self._steps(z, s):
      tables.append(np.asarray(probs)[:real])
      if i + 1 == lengths.max():
        break
    for i in reversed(range(len(tables))):
      alive = lengths > i
      ans.encode_reverse(np.ascontiguousarray(s[:real][alive, i]), _CATEGORICAL, _table(tables[i][alive], alive.sum()))

  def pop(self, ans, z: np.ndarray, real: int) -> np.ndarray:
    """Undoes `push`: the batch's rows (batch, max_length), pads past `real`; each row's positions are popped
    until its EOS, the same steps that compression took."""
    s = np.full((len(z), *self.shape), self.spec.pad_id, np.int32)
    alive = np.arange(len(z)) < real
    steps = self._steps(z, None)
    i, probs = next(steps)
    while True:
      rows = np.flatnonzero(alive)
      s[rows, i] = ans.decode(_CATEGORICAL, _table(np.asarray(probs)[rows], len(rows)))
      alive &= s[:, i] != self.spec.eos_id
      if not alive.any():
        return s
      if i + 1 == self.shape[0]:  # the last position's EOS is certain: only a damaged file gets here
        raise ValueError(f'a sequence runs past max_length={self.shape[0]} without its EOS')
      i, probs = steps.send(s[:, i])


EXAMPLE_CODECS = {'image': PixelCodec, 'sequence': TokenCodec}  # by ExampleSpec.kind


class Coder:
  """Bits-back compression of examples (images or token sequences, `EXAMPLE_CODECS`) with one model and its
  parameters."""

  def __init__(self, model, params, spec, bucket_bits: int = DEFAULT_BUCKET_BITS,
               batch_size: int = DEFAULT_BATCH_SIZE):
    spec = spec if isinstance(spec, data_spec.ExampleSpec) else data_spec.ImageSpec.of_shape(spec)
    if spec.kind not in EXAMPLE_CODECS:
      raise errors.ConfigError(f'bits-back coding here codes {" and ".join(EXAMPLE_CODECS)} examples; this run '
                               f'holds {spec.describe()}')
    obstacle = getattr(model, 'coding_obstacle', 'this kind has no bits-back coding')
    if obstacle:
      raise errors.UserError(f'cannot compress with this model: {obstacle}')
    if not 1 <= bucket_bits <= 16:
      raise errors.ConfigError(f'--bucket_bits={bucket_bits} must be in 1..16 (the coder works to 24 bits)')
    if batch_size < 1:
      raise errors.ConfigError(f'--batch_size={batch_size} must be >= 1')
    self.model, self.params, self.bits = model, params, bucket_bits
    self.codec = EXAMPLE_CODECS[spec.kind](model, params, spec)
    self.example_shape = self.codec.shape
    # An 8-bit head's table is 256 probabilities a pixel (and its mixture's work ten times that): keep a
    # batch's table near 2^23 floats. The batch is part of the file's header, so decoding uses the same.
    self.batch_size = min(batch_size, max(1, MAX_TABLE // self.codec.table))
    self._sizes = constriction.stream.model.Uniform(self.batch_size)
    bounds = np.cumsum((0,) + tuple(model.group_sizes))
    # A model with no latent (the `lm`) has no group: its examples are coded under p(x) alone, at -log p(x).
    self.groups = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    self.latent_dim = int(bounds[-1])
    apply = lambda p, *args, method: model.apply({'params': p}, *args, method=method)

    def masses(p, x, z, g):
      *prior, qm, qlv = apply(p, x, z, method=model.latent_gaussians)[g]
      return bucket_masses(*reference_gaussian(*prior), qm, qlv, bucket_bits)

    def values(p, z, index, g):
      *prior, _, _ = apply(p, None, z, method=model.latent_gaussians)[g]
      return bucket_values(*reference_gaussian(*prior), index, bucket_bits)

    # A mixture group's prior is computed once per batch (for the VampPrior that runs the encoder over
    # its pseudo-inputs), then the probabilities of its component codec from it.
    self._prior = jax.jit(lambda p, z, g: apply(p, None, z, method=model.latent_gaussians)[g][:3], static_argnums=2)
    self._weights = jax.jit(lambda log_weights: jax.nn.softmax(log_weights, axis=-1))
    self._component_posterior = jax.jit(functools.partial(component_posterior, bits=bucket_bits))
    self._component_masses = jax.jit(functools.partial(component_masses, bits=bucket_bits))
    self._masses = jax.jit(masses, static_argnums=3)
    self._values = jax.jit(values, static_argnums=3)
    # The groups whose prior is a mixture (K > 1), from the shapes alone.
    shapes = jax.eval_shape(lambda p: apply(p, None, jnp.zeros((1, self.latent_dim)), method=model.latent_gaussians),
                            params) if self.groups else []
    self.mixture_groups = frozenset(g for g, parts in enumerate(shapes) if parts[1].shape[-2] > 1)
    # The most bits an example's pops can take from the stack: its bucket indices, and each mixture's component.
    self.pop_bits = self.latent_dim * bucket_bits + sum(
        math.ceil(math.log2(shapes[g][1].shape[-2])) for g in self.mixture_groups)

  def _pad(self, a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros((self.batch_size - len(a), *a.shape[1:]), a.dtype)])

  def _latent_value(self, z: np.ndarray, index: np.ndarray, g: int) -> None:
    z[:, self.groups[g]] = np.asarray(self._values(self.params, z, index[:, self.groups[g]], g))

  def _partial(self, z: np.ndarray, g: int) -> np.ndarray:
    """z with group g and those below it zero: what compression had chosen when it coded group g."""
    out = z.copy()
    out[:, self.groups[g].start:] = 0.0
    return out

  def compress(self, symbols: np.ndarray, version: int = FORMAT_VERSION) -> np.ndarray:
    """The ANS words that code `symbols` (n, *example shape) int: the images' values as symbol indices, or the
    sequences' token ids; as a file of format `version` lays them out (an older one: to test that it decodes)."""
    ans = constriction.stream.stack.AnsCoder(seed_words(self.latent_dim, self.bits))
    uniform = constriction.stream.model.Uniform(2**self.bits)
    start, shown = 0, progress.Progress('compressing', len(symbols), 'examples')
    fixed = iter(chunk_sizes(len(symbols), self.batch_size)) if version < 4 else None
    while start < len(symbols):
      real = next(fixed) if fixed else self._next_chunk(ans, len(symbols) - start)
      s = self._pad(symbols[start:start + real])
      x = self.codec.model_input(s)
      z = np.zeros((self.batch_size, self.latent_dim), np.float32)
      index = np.zeros((self.batch_size, self.latent_dim), np.int32)
      for g, group in enumerate(self.groups):  # pop z_g ~ Q(z_g | x, z_<g), top first
        probs = _table(self._masses(self.params, x, z, g), real)
        index[:real, group] = ans.decode(_CATEGORICAL, probs).reshape(real, -1)
        self._latent_value(z, index, g)
      self.codec.push(ans, s, z, real)
      for g in reversed(range(len(self.groups))):  # push z_g with its prior
        group = self.groups[g]
        if g in self.mixture_groups:
          self._push_mixture(ans, self._prior(self.params, self._partial(z, g), g), index[:, group], real)
        else:  # a uniform bucket index
          ans.encode_reverse(np.ascontiguousarray(index[:real, group].ravel()), uniform)
      if not fixed:
        ans.encode_reverse(np.array([real - 1], np.int32), self._sizes)  # decoding pops the chunk's size first
      start += real
      shown.update(start)
    return ans.get_compressed()

  def _next_chunk(self, ans, left: int) -> int:
    """How many examples the next chunk codes: as many as the bits already on the stack can pay for with their
    pops, so that every pop gets its bits back (at least 1, from the seed words; at most batch_size)."""
    if not self.pop_bits:
      return min(self.batch_size, left)
    return max(1, min(self.batch_size, left, (ans.num_bits() - _SPARE_BITS) // self.pop_bits))

  def _chunks_backwards(self, ans, n: int, version: int):
    """(start, size) of each chunk, the last first: popped from the stack (version 4 on), or the fixed
    schedule of `chunk_sizes` (versions 1-3)."""
    if version < 4:
      sizes = chunk_sizes(n, self.batch_size)
      yield from reversed(list(zip(np.cumsum([0] + sizes[:-1]).tolist(), sizes)))
      return
    end = n
    while end > 0:
      real = int(ans.decode(self._sizes, 1)[0]) + 1
      if real > end:
        raise ValueError(f'a chunk of {real} examples where {end} are left')
      end -= real
      yield end, real

  def _push_mixture(self, ans, prior, group_index: np.ndarray, real: int) -> None:
    """Pushes a mixture group's bucket indices (batch, D) with bits back on the component: pop k ~ q(k | b),
    push b with component k's masses, push k with the mixture's weights. Net: -log P(b) in expectation."""
    component = np.zeros(self.batch_size, np.int32)
    posterior = self._component_posterior(*prior, group_index)
    component[:real] = ans.decode(_CATEGORICAL, _table(posterior, real))
    masses = self._component_masses(*prior, component)
    ans.encode_reverse(np.ascontiguousarray(group_index[:real].ravel()), _CATEGORICAL, _table(masses, real))
    ans.encode_reverse(component[:real], _CATEGORICAL, _table(self._weights(prior[0]), real))

  def _pop_mixture(self, ans, prior, real: int) -> np.ndarray:
    """Undoes `_push_mixture`: pops k and the bucket indices, pushes k back with q(k | b)."""
    component = np.zeros(self.batch_size, np.int32)
    component[:real] = ans.decode(_CATEGORICAL, _table(self._weights(prior[0]), real))
    masses = _table(self._component_masses(*prior, component), real)
    group_index = np.zeros((self.batch_size, masses.shape[0] // real), np.int32)
    group_index[:real] = ans.decode(_CATEGORICAL, masses).reshape(real, -1)
    posterior = self._component_posterior(*prior, group_index)
    ans.encode_reverse(component[:real], _CATEGORICAL, _table(posterior, real))
    return group_index

  def decompress(self, words: np.ndarray, n: int, version: int = FORMAT_VERSION) -> np.ndarray:
    """The symbols (n, *example shape) that `compress` coded into `words` (a file of format `version`);
    refuses a stack that does not end where compression began."""
    ans = constriction.stream.stack.AnsCoder(words)
    uniform = constriction.stream.model.Uniform(2**self.bits)
    out = np.zeros((n, *self.example_shape), np.int32)
    shown = progress.Progress('decompressing', n, 'examples')
    for start, real in self._chunks_backwards(ans, n, version):
      z = np.zeros((self.batch_size, self.latent_dim), np.float32)
      index = np.zeros((self.batch_size, self.latent_dim), np.int32)
      for g, group in enumerate(self.groups):
        if g in self.mixture_groups:
          index[:, group] = self._pop_mixture(ans, self._prior(self.params, z, g), real)
        else:
          index[:real, group] = ans.decode(uniform, real * (group.stop - group.start)).reshape(real, -1)
        self._latent_value(z, index, g)
      s = self.codec.pop(ans, z, real)
      out[start:start + real] = s[:real]
      x = self.codec.model_input(s)
      for g in reversed(range(len(self.groups))):  # push z_g back with Q, undoing compression's pops
        probs = _table(self._masses(self.params, x, self._partial(z, g), g), real)
        ans.encode_reverse(np.ascontiguousarray(index[:real, self.groups[g]].ravel()), _CATEGORICAL, probs)
      shown.update(n - start)  # decoded last chunk first: the images from `start` on are done
    if not np.array_equal(ans.get_compressed(), seed_words(self.latent_dim, self.bits)):
      raise CompressedFileError('decoding did not end at the stack compression began with: the file was made '
                                'with other parameters or is damaged')
    return out


def to_symbols(head, images: np.ndarray, image_shape) -> tuple[np.ndarray, int]:
  """Symbol indices of `images` for the head, and the scale the array stores them at; refuses values
  outside the head's alphabet with one line."""
  images = np.asarray(images)
  shape = tuple(int(d) for d in image_shape)
  if images.ndim == len(shape) and shape[-1] == 1:
    images = images[..., None]
  if images.ndim != len(shape) + 1 or images.shape[1:] != shape:
    raise errors.DataError(f'the images have shape {images.shape}; this run codes images of shape '
                           f'(n, {", ".join(map(str, shape))})')
  scale = 1 if head.num_symbols == 2 or np.issubdtype(images.dtype, np.integer) else head.num_symbols - 1
  symbols = np.round(images.astype(np.float64) * scale)
  inside = symbols.size and symbols.min() >= 0 and symbols.max() < head.num_symbols
  # Exactly the array that decompression will rebuild from the symbols, or refused.
  if not inside or not np.array_equal(_rebuild(symbols, images.dtype, scale), images):
    allowed = ('0 and 1' if head.num_symbols == 2 else
               f'the integers 0..{head.num_symbols - 1}, or k/{head.num_symbols - 1} for those k')
    raise errors.DataError(f'the images hold values other than {allowed}, which this run\'s likelihood codes')
  return symbols.astype(np.int32), scale


def _rebuild(symbols: np.ndarray, dtype, scale: int) -> np.ndarray:
  dtype = np.dtype(dtype)
  out = symbols.astype(dtype)
  return out if scale == 1 else out / dtype.type(scale)


def sequence_symbols(spec, rows: np.ndarray) -> np.ndarray:
  """Token-id rows (n, max_length) in the spec's form (tokens, one EOS, then pads), as int32; anything else is
  refused with one line, since it would not come back as it went in."""
  rows = np.asarray(rows)
  if rows.ndim != 2 or rows.shape[1] != spec.max_length or not np.issubdtype(rows.dtype, np.integer):
    raise errors.DataError(f'the sequences are {rows.dtype} of shape {rows.shape}; this run codes integer token ids '
                           f'of shape (n, {spec.max_length})')
  tokens = (rows >= 0) & ~np.isin(rows, (spec.pad_id, spec.bos_id, spec.eos_id))
  ends = np.cumsum(rows == spec.eos_id, axis=1)
  form = np.where(ends == 0, tokens, np.where((ends == 1) & (rows == spec.eos_id), True, rows == spec.pad_id))
  bad = np.flatnonzero(~(form.all(axis=1) & (ends[:, -1] == 1) & (rows.max(axis=1) < spec.vocab_size)))
  if bad.size:
    raise errors.DataError(f'sequence {bad[0]} is not tokens (ids {spec.unk_id}..{spec.vocab_size - 1}), one EOS '
                           f'({spec.eos_id}) and pads ({spec.pad_id}): {rows[bad[0]].tolist()}')
  return rows.astype(np.int32)


def from_symbols(symbols: np.ndarray, header: Header) -> np.ndarray:
  """The array compression was given, from its symbols."""
  return _rebuild(symbols, header.dtype, header.scale).reshape(header.image_shape)


def timed(fn, *args):
  t0 = time.perf_counter()
  result = fn(*args)
  return result, time.perf_counter() - t0


def _coder(run, bucket_bits: int, batch_size: int) -> Coder:
  return Coder(run.model, run.params, run.spec, bucket_bits, batch_size)


def compress_run(run, examples: np.ndarray, out: os.PathLike, bucket_bits: int = DEFAULT_BUCKET_BITS,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
  """Compresses `examples` (images, or token-id rows) with a loaded run (`vae_jax.runs.run.load_run`) into the
  file `out`; returns its figures. Per dimension is per pixel and channel, or per token (EOS counted)."""
  coder = _coder(run, bucket_bits, batch_size)
  symbols, scale = coder.codec.symbols(examples)
  words, seconds = timed(coder.compress, symbols)
  header = Header(config_sha256=config_hash(run.config), params_sha256=params_hash(run.params), step=run.step,
                  image_shape=tuple(np.asarray(examples).shape), dtype=str(np.asarray(examples).dtype), scale=scale,
                  bucket_bits=bucket_bits, batch_size=coder.batch_size, backend=jax.default_backend())
  size = write_file(out, header, words)
  dims = int(np.sum(run.spec.lengths(symbols)))
  return {'file': os.fspath(out), 'num_examples': len(symbols), 'num_dims': dims, 'file_bytes': size,
          'payload_bits': 32 * len(words), 'seed_bits': 32 * len(seed_words(coder.latent_dim, bucket_bits)),
          'latent_dim': coder.latent_dim, 'bits_per_example': 8 * size / len(symbols), 'bits_per_dim': 8 * size / dims,
          'payload_bits_per_dim': 32 * len(words) / dims, 'bucket_bits': bucket_bits,
          'compress_seconds': round(seconds, 2), 'compress_examples_per_sec': round(len(symbols) / seconds, 1)}


def decompress_run(run, path: os.PathLike) -> tuple[np.ndarray, dict]:
  """The examples the file at `path` holds, decoded with a loaded run, and the figures of decoding."""
  header, words = read_file(path)
  checks = [('config', header.config_sha256, config_hash(run.config)),
            ('parameters', header.params_sha256, params_hash(run.params))]
  for what, made, have in checks:
    if not same_hash(made, have):
      raise CompressedFileError(f'{path} was made with another run ({what} hash {made[:12]}, this run\'s is '
                                f'{have[:12]}, step {run.step}); decompress it with the run and checkpoint that '
                                f'made it (step {header.step})')
  if header.backend != jax.default_backend():
    raise CompressedFileError(f'{path} was made on {header.backend} and this is {jax.default_backend()}: the '
                              'probabilities must be computed bit for bit as when it was made; decompress it on '
                              f'{header.backend}')
  coder = _coder(run, header.bucket_bits, header.batch_size)
  touched = {'a mixture prior': bool(coder.mixture_groups),
             'a logistic-mixture likelihood': getattr(coder.codec, 'head', None) is likelihoods.LogisticMixture}
  for version, what, commit in _CHANGED_IN:
    if header.format_version < version and touched[what]:
      raise CompressedFileError(f'{path} has format version {header.format_version}, whose coding of {what} this '
                                f'vae_jax no longer reads; decompress it with vae_jax at commit {commit}')
  try:
    symbols, seconds = timed(coder.decompress, words, header.image_shape[0], header.format_version)
  except ValueError as e:  # constriction refuses data that no coder could have written
    raise CompressedFileError(f'{path} is damaged: {e}') from None
  return from_symbols(symbols, header), {'num_examples': len(symbols), 'decompress_seconds': round(seconds, 2),
                                         'decompress_examples_per_sec': round(len(symbols) / seconds, 1)}
