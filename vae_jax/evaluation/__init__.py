"""Dataset-level evaluation: the ELBO, its terms and the importance-sampled NLL.

Every number is a mean over examples, in nats per example, with the sign
convention of `objectives`: elbo_nats <= 0 is a lower bound on log p(x), and
nll_nats >= 0 estimates -log p(x).

Batches are sharded over every device. Example i of the evaluated array draws
its samples from fold_in(key, i), so the numbers do not depend on the batch
size, the sample chunk or the number of devices; that is also what lets a long
evaluation save its per-example results as it goes (`SavedProgress`) and,
once interrupted, go on from the first example it had not done.

A call evaluates batch_size x sample_chunk rows at once, and its memory grows
with them (a conv VAE with a 10-component logistic mixture: 1.7 MB a row, so
17 GB for the default 1,000 x 10). Before its first call an Evaluator reads
XLA's memory analysis of the compiled call and, if it exceeds the memory
budget (`memory_budget`), shrinks the batch, and the chunk only if one example
a device still does not fit. Either way every example gets the same samples:
a smaller batch changes its results at most in the last bits (XLA may pick
other kernels for another shape), a smaller chunk adds them up in another order.
"""

import functools
import io
import json
import math
import os
import zipfile

from absl import logging
from etils import epath
import jax
import numpy as np

from vae_jax import progress as progress_lib
from vae_jax.evaluation import estimators
from vae_jax.models import likelihoods
from vae_jax.runtime import dispatch
from vae_jax.runtime import keys as keys_lib
from vae_jax.runtime import parallel

ACTIVE_UNIT_THRESHOLD = 0.01
MEMORY_FRACTION = 0.5  # of a device's memory (the host's on a CPU) that one call may take by default
MAX_ANALYSES = 4       # compilations spent at most on finding a batch that fits the budget


def active_units(means: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
  """Burda et al. (2016): latent dimensions i with Cov_x(E_q[z_i | x]) > threshold.

  `means`: (examples, latent), the posterior means of the evaluated examples.
  """
  return int(np.sum(np.var(np.asarray(means, np.float64), axis=0) > threshold))


def memory_budget(budget_gb: float | None = None) -> tuple[int, str]:
  """Bytes one evaluation call may take on each device, and where that figure comes from: `budget_gb`
  (eval.memory_budget_gb) when set, else MEMORY_FRACTION of the device's memory or, on a backend that
  reports none (the CPU), of the host's, shared by its devices. The fraction leaves room for what else
  is held (the training state, the dataset, XLA's own estimate being short)."""
  if budget_gb:
    return int(budget_gb * 1e9), f'eval.memory_budget_gb={budget_gb:g}'
  device = parallel.device_memory_bytes()
  if device:
    return int(MEMORY_FRACTION * device), f"{MEMORY_FRACTION:.0%} of the device's {_size(device)}"
  host, devices = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'), jax.local_device_count()
  return (int(MEMORY_FRACTION * host / devices),
          f"{MEMORY_FRACTION:.0%} of the host's {_size(host)}" + (f' over {devices} devices' if devices > 1 else ''))


def compiled_bytes(compiled) -> int:
  """Bytes one call of a compiled program holds on a device by XLA's memory analysis: arguments, outputs
  and temporaries (its peak_memory_in_bytes leaves the temporaries out on the CPU)."""
  m = compiled.memory_analysis()
  return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def _size(num_bytes: float) -> str:
  return f'{num_bytes / 1e9:.1f} GB' if num_bytes >= 1e9 else f'{num_bytes / 1e6:.1f} MB'


class SavedProgress:
  """The per-example results of an evaluation so far, in one .npz file that is rewritten after each
  batch (through a temporary file and a rename). `fingerprint` names what they are results of (the
  checkpoint, the split, the number of samples, ...); a file with another fingerprint is not resumed."""

  def __init__(self, path: epath.PathLike, fingerprint: dict):
    self.path = epath.Path(path)
    self.fingerprint = json.dumps(fingerprint, sort_keys=True)

  def load(self) -> dict[str, np.ndarray] | None:
    if not self.path.exists():
      return None
    try:
      with self.path.open('rb') as f:
        saved = dict(np.load(io.BytesIO(f.read()), allow_pickle=False))
      fingerprint = str(saved.pop('__fingerprint__'))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
      logging.warning('the saved evaluation progress %s is unreadable (%s); starting from the first example',
                      self.path, e)
      return None
    if fingerprint != self.fingerprint:
      logging.warning('the saved evaluation progress %s is of another evaluation (%s, not %s); starting from '
                      'the first example', self.path, fingerprint, self.fingerprint)
      return None
    return saved

  def save(self, terms: dict[str, np.ndarray]) -> None:
    if jax.process_index() != 0:  # one writer; every process reads it back on resuming
      return
    buffer = io.BytesIO()
    np.savez(buffer, __fingerprint__=np.array(self.fingerprint), **terms)
    tmp = self.path.with_name(self.path.name + '.tmp')
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(self.path)

  def remove(self) -> None:
    if self.path.exists():
      self.path.unlink()


class Evaluator:
  """Jit-compiled per-batch evaluation for one model on one mesh."""

  def __init__(self, model, batch_size: int, num_samples: int, chunk: int, mesh=None, progress: bool = False,
               mode: str = 'scan', memory_budget_gb: float | None = None):
    """`mode` dispatches the sample chunks of importance sampling (`dispatch.MODES`): all in one
    compiled scan, or from Python in unrolled blocks or one chunk per call. Training passes the
    mode it measured fastest for the same model, and vae_jax.evaluate the one the run recorded.
    `memory_budget_gb`: see `memory_budget`; `batch_size` and `chunk` shrink to fit it."""
    self.model = model
    self.mesh = mesh or parallel.make_mesh()
    self.batch_size = batch_size
    # A kind whose posterior is a point mass (vqvae) gets its exact bound from one sample.
    self.num_samples = min(num_samples, model.max_importance_samples or num_samples)
    self.progress = progress
    self.mode = mode if model.stochastic else 'scan'
    self.memory_budget_gb = memory_budget_gb
    self.call_bytes = None  # XLA's estimate of one call's bytes a device, once a call has been sized
    self._sized_up_to = 0  # the largest batch checked against the budget so far
    self._build(chunk)

  def _build(self, chunk: int) -> None:
    """The batch functions for `chunk` samples a chunk: `_scan_fn`, the whole call as one program (the one
    XLA's memory analysis reads), and `_batch_fn`, the call as `mode` dispatches it."""
    model, num_samples = self.model, self.num_samples
    self.chunk = chunk

    def stochastic(params, x, labels, indices, key):
      keys = keys_lib.per_example_keys(key, indices)
      return estimators.importance_sampled_terms(model, params, x, keys, num_samples, chunk, labels)

    def deterministic(params, x, labels, indices, key):
      keys = keys_lib.per_example_keys(key, indices)
      means, _ = model.apply({'params': params}, x, labels, method=model.encode)
      return {'recon': model.apply({'params': params}, x, keys, labels)['log_px_z'], 'mean': means}

    replicated = parallel.replicated(self.mesh)
    self._scan_fn = jax.jit(stochastic if model.stochastic else deterministic, out_shardings=replicated)
    self._batch_fn = self._scan_fn if self.mode == 'scan' else self._chunked(self.mode, replicated)

  def _chunked(self, mode: str, out_sharding):
    """The stochastic batch function with its sample chunks dispatched by a `dispatch.Runner`."""
    model, num_samples = self.model, self.num_samples
    chunk = min(self.chunk, num_samples)

    @jax.jit
    def start(params, x, labels, indices, key):  # on the mesh, like everything after it
      keys = keys_lib.per_example_keys(key, indices)
      ctx, means, carry = estimators.importance_sampling_start(model, params, x, keys, labels)
      return keys, ctx, means, carry

    def body(consts, carry, i):
      return estimators.importance_sampling_chunk(model, *consts, carry, i, chunk=chunk,
                                                  num_samples=num_samples), None

    runner = dispatch.Runner(body, mode)
    result = jax.jit(functools.partial(estimators.importance_sampling_result, num_samples=num_samples),
                     out_shardings=out_sharding)
    num_chunks = estimators.num_chunks(num_samples, chunk)
    chunk_ids = parallel.replicate(np.arange(num_chunks, dtype=np.int32), self.mesh)

    def batch_fn(params, x, labels, indices, key):
      keys, ctx, means, carry = start(params, x, labels, indices, key)
      carry, _ = runner((params, x, keys, ctx), carry, chunk_ids, num_chunks)
      return result(means, carry)

    return batch_fn

  def _rows_per_example(self) -> int:
    """Rows a call runs at once for each example: a chunk of its samples (the autoencoder: the example)."""
    return min(self.chunk, self.num_samples) if self.model.stochastic else 1

  def _fit(self, params, batch_size: int, examples: np.ndarray, labels: np.ndarray | None, key: jax.Array,
           decode=None) -> int:
    """The batch, at most `batch_size`, whose calls fit the memory budget (shrinking the chunk too where one
    example a device does not fit); logs the choice in one line.

    A candidate's bytes are XLA's memory analysis of `_scan_fn` compiled for it. In scan mode that is the
    program the calls run (jit reuses it), so a batch that fits costs no compilation of its own; the other
    modes pay one (2 s for the MLP). They hold a chunk's rows at once as the scan does, 'unrolled' its
    `dispatch.UNROLL` chunks a program together (XLA does not share their buffers: twice the bytes, measured).
    The next candidate assumes bytes = parameters + rows x bytes a row, which charges XLA's fixed temporaries
    to the rows, so it errs towards a smaller batch."""
    budget, source = memory_budget(self.memory_budget_gb)
    devices, sharding = self.mesh.devices.size, parallel.sharded(self.mesh)
    fixed = sum(leaf.nbytes for leaf in jax.tree.leaves(params))  # replicated: whole on every device
    at_once = dispatch.UNROLL if self.mode == 'unrolled' else 1
    spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
    asked, needs = f'{batch_size:,} x {self._rows_per_example()}', []
    input_dtype = decode(np.asarray(examples[:1])).dtype if decode else examples.dtype  # what the calls read
    while True:
      compiled = self._scan_fn.lower(
          params, spec((batch_size, *examples.shape[1:]), input_dtype),
          None if labels is None else spec((batch_size,), labels.dtype), spec((batch_size,), np.int32), key).compile()
      need = fixed + (compiled_bytes(compiled) - fixed) * at_once
      needs.append(need)
      per_example = self._rows_per_example() * at_once  # rows a device holds at once for each of its examples
      smallest = batch_size == devices and per_example == at_once
      if need <= budget or smallest or len(needs) == MAX_ANALYSES:
        break
      row_bytes = max(need - fixed, 1) / (batch_size // devices * per_example)
      fit = int((budget - fixed) / row_bytes)  # rows a device
      if fit >= per_example:
        batch_size = min(batch_size - devices, fit // per_example * devices)
      else:
        batch_size = devices
        self._build(max(1, min(self._rows_per_example() - 1, fit // at_once)))
    self.call_bytes = need
    rows = self._rows_per_example()
    shape = f'{batch_size:,} example{"s" if batch_size > 1 else ""}'
    if self.model.stochastic:
      shape += f' x {rows} sample{"s" if rows > 1 else ""} = {batch_size * rows:,} rows'
    line = (f'evaluation calls of {shape}{f" ({at_once} chunks a program)" if at_once > 1 else ""}: '
            f"{_size(need)} a device by XLA's memory analysis, "
            f'{"within" if need <= budget else "OVER"} the budget of {_size(budget)} ({source})')
    if len(needs) > 1:
      line += f'; shrunk from {asked}, which takes {_size(needs[0])}'
    (logging.info if need <= budget else logging.warning)('%s', line)
    return batch_size

  def per_example(self, params, examples: np.ndarray, key: jax.Array, labels: np.ndarray | None = None,
                  progress: SavedProgress | None = None, decode=None, spec=None) -> dict[str, np.ndarray]:
    """Per-example terms (log_px, elbo, recon, kl, kl_per_group, mean; recon and mean for the autoencoder).

    `labels`: the examples' classes, which a conditional model needs (others ignore them; None for data
    without labels). With
    `progress`, the terms so far are saved after every batch, and those it holds are not computed again.
    `decode` (the data's `spec.decode`) turns each batch of stored examples into the model's input. With the
    data's `spec`, the examples are read in its `evaluation_order` and each batch `trimmed` (token sequences:
    shortest first, each batch cut after its longest); every example keeps its own key, and the terms come
    back in the examples' order."""
    n, num_devices = len(examples), self.mesh.devices.size
    batch_size = min(self.batch_size, n)  # no padding a small split up to a large batch
    batch_size = -(-batch_size // num_devices) * num_devices  # ... but to a multiple of the devices
    if batch_size > self._sized_up_to:  # sized once, for the largest batch asked
      self._sized_up_to = batch_size
      fitted = self._fit(params, batch_size, examples, labels, key, decode)
      if fitted < batch_size:
        self.batch_size = batch_size = fitted
    sharding = parallel.sharded(self.mesh)
    parts, first = [], 0
    saved = progress.load() if progress is not None else None
    if saved:
      parts, first = [saved], min(len(v) for v in saved.values())
      logging.info('resuming the evaluation from %s: %d of %d examples done', progress.path, first, n)
    what = f'evaluating with {self.num_samples:,} importance samples' if self.model.stochastic else 'evaluating'
    shown = progress_lib.Progress(what, n, 'examples', start=first) if self.progress else None
    order = None if spec is None else spec.evaluation_order(examples)
    for start in range(first, n, batch_size):
      rows = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
      x = np.asarray(examples[rows])
      x = decode(x) if decode is not None else x
      x = x if order is None else spec.trimmed(x)
      real = len(x)
      pad = lambda a: np.concatenate([a, np.zeros((batch_size - real, *a.shape[1:]), a.dtype)])
      y = None if labels is None else parallel.to_global(pad(labels[rows]), sharding)
      indices = np.arange(start, start + batch_size, dtype=np.int32)  # each example's key: its own index
      if order is not None:
        indices = np.concatenate([order[start:start + batch_size], np.arange(n, n + batch_size - real)]).astype(
            np.int32)
      out = self._batch_fn(params, parallel.to_global(pad(x), sharding), y, parallel.to_global(indices, sharding),
                           key)
      parts.append({k: np.asarray(v)[:real] for k, v in out.items()})
      if progress is not None:
        parts = [{k: np.concatenate([p[k] for p in parts]) for k in parts[-1]}]
        progress.save(parts[0])
      if shown:
        shown.update(start + real)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if order is None:
      return out
    back = np.empty(n, np.int64)
    back[order] = np.arange(n)
    return {k: v[back] for k, v in out.items()}

  def gflop(self, params, example: np.ndarray, num_examples: int) -> float:
    """GFLOPs of evaluating `num_examples` examples, from XLA's cost analysis of one sample chunk at one
    and at two examples a device. The difference is the work an example adds; the rest is work done once
    a call (a VampPrior encodes its pseudo-inputs once a batch), charged once a batch of `batch_size`."""
    num_devices = self.mesh.devices.size

    def flops(n):
      chunk_fn = Evaluator(self.model, n, self.chunk, self.chunk, self.mesh)._batch_fn
      x = np.repeat(example[None], n, axis=0)
      labels = np.zeros((n,), np.int32)  # read only by a conditional model
      return dispatch.compiled_gflop(
          chunk_fn.lower(params, x, labels, np.arange(n, dtype=np.int32), jax.random.key(0)).compile())

    one, two = flops(num_devices), flops(2 * num_devices)
    per_example = (two - one) / num_devices
    per_call = one - per_example * num_devices
    calls = math.ceil(num_examples / self.batch_size)
    return (per_example * num_examples + per_call * calls) * math.ceil(self.num_samples / self.chunk)

  def evaluate(self, params, examples: np.ndarray, key: jax.Array, likelihood: str,
               labels: np.ndarray | None = None, progress: SavedProgress | None = None,
               spec=None) -> dict:
    """Means over `examples` (with their `labels`), under the keys of eval.json. bits_per_dim follows from
    the examples' `spec` (`data.ExampleSpec`): its dimensions, and for a density its levels
    (`likelihoods.bits_per_dim`); without one, every entry of an example's array on the 8-bit scale."""
    terms = self.per_example(params, examples, key, labels, progress, None if spec is None else spec.decode, spec)
    # The dimensions an example counts: an image's entries, a sequence's tokens (its own, EOS included).
    num_dims = float(np.mean(spec.lengths(examples))) if spec is not None else math.prod(examples.shape[1:])
    levels = getattr(spec, 'levels', None) if spec is not None else 256
    sizes = tuple(self.model.group_sizes)
    groups = np.split(terms['mean'], np.cumsum(sizes)[:-1], axis=-1)
    out = {'recon_nats': float(np.mean(terms['recon'])), 'num_examples': len(examples),
           'active_units': active_units(terms['mean']),
           'active_units_per_group': [active_units(g) for g in groups],
           'active_unit_threshold': ACTIVE_UNIT_THRESHOLD, 'latent_group_sizes': list(sizes)}
    if 'log_px' in terms:
      nll = -terms['log_px'].astype(np.float64)
      out.update(
          elbo_nats=float(np.mean(terms['elbo'])),
          nll_nats=float(np.mean(nll)),
          nll_stderr_nats=float(np.std(nll, ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0,
          kl_nats=float(np.mean(terms['kl'])),
          kl_per_group_nats=[float(v) for v in np.mean(terms['kl_per_group'], axis=0)],
          kl_per_dim_nats=([float(v) for v in np.mean(terms['kl_per_dim'], axis=0)]
                           if 'kl_per_dim' in terms else None),
          bits_per_dim=likelihoods.bits_per_dim(float(np.mean(nll)), num_dims, likelihood, levels),
          num_importance_samples=self.num_samples,
          # what nll_nats and elbo_nats bound: a conditional model's are those of x given its label
          likelihood_of='log p(x|y)' if self.model.conditional else 'log p(x)',
      )
      # What a kind adds to the interface's terms: its own figures in nats, and its summary of them.
      out.update({k: float(np.mean(v)) for k, v in terms.items() if k.endswith('_nats')})
      out.update(self.model.summarize(terms))
    else:  # the autoencoder has no likelihood of x: say so instead of inventing one
      out.update(elbo_nats=None, nll_nats=None, nll_stderr_nats=None, kl_nats=None, kl_per_group_nats=None,
                 kl_per_dim_nats=None, bits_per_dim=None, num_importance_samples=None,
                 likelihood_of=None)
    return out
