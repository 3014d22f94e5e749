"""Examples that need not be in memory: a lazy selection of rows, and the fingerprint a run records.

A split's examples may be a numpy array, a `np.memmap` or any array-like that
gives `len`, `shape`, `dtype`, `x[rows]` for an int array of rows (a numpy
array back) and `np.asarray(x)`. `Rows` keeps a held-out selection of such an
array without reading it, so memory-mapped data stays on disk until a batch
needs it; the streamed feed reads those batches.
"""

import hashlib
import os

import numpy as np

_FINGERPRINT_CHUNK_BYTES = 64 << 20
_SAMPLE_ABOVE_BYTES = 1 << 30
_SAMPLED_ROWS = 4096


class Rows:
  """rows `index` (int64, in order) of `base`, read only when asked."""

  def __init__(self, base, index: np.ndarray):
    self.base, self.index = base, np.asarray(index, np.int64)

  def __len__(self) -> int:
    return len(self.index)

  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self.index), *self.base.shape[1:])

  @property
  def dtype(self) -> np.dtype:
    return self.base.dtype

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * self.dtype.itemsize

  def __getitem__(self, rows):
    return np.asarray(self.base[self.index[rows]])

  def __array__(self, dtype=None, copy=None):
    del copy
    out = np.asarray(self.base[self.index])
    return out if dtype is None else out.astype(dtype)


def take(examples, rows: np.ndarray | slice):
  """`examples[rows]`: a view for a slice; for an index, a copy of an in-memory array or a `Rows` of one
  that is not in memory (a memmap or a lazy array), so nothing is read."""
  if isinstance(rows, slice):
    if isinstance(examples, Rows):
      return Rows(examples.base, examples.index[rows])
    if isinstance(examples, np.ndarray):
      return examples[rows]
    return Rows(examples, np.arange(len(examples))[rows])
  if type(examples) is np.ndarray:  # pylint: disable=unidiomatic-typecheck  (a memmap is a subclass: keep it lazy)
    return examples[rows]
  if isinstance(examples, Rows):
    return Rows(examples.base, examples.index[rows])
  return Rows(examples, rows)


def in_memory(examples) -> bool:
  return type(examples) is np.ndarray  # pylint: disable=unidiomatic-typecheck


def fingerprint_text(text: str) -> str:
  """The digest `fingerprint` gives, of a description of the data instead of their contents."""
  return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _sampled(a, rows: int) -> np.ndarray:
  """`rows` rows spread evenly over `a`, first and last included."""
  return np.asarray(a[np.unique(np.linspace(0, len(a) - 1, rows).astype(np.int64))])


def fingerprint(*arrays) -> str:
  """A digest of the arrays' shapes, dtypes and contents (None entries count as absent), read in chunks so a
  memory-mapped file is never held whole. Data not in memory and larger than `_SAMPLE_ABOVE_BYTES` are
  fingerprinted by their shape and `_SAMPLED_ROWS` rows spread over them, with the file's size and time for a
  memmap: reading all of a file of many GB would cost a minute at every start. A lazy array may give its own
  `fingerprint()` (e.g. files, sizes and times) instead of being read."""
  digest = hashlib.blake2b(digest_size=16)
  for a in arrays:
    if a is None:
      digest.update(b'none;')
      continue
    digest.update(f'{tuple(a.shape)}{np.dtype(a.dtype).str};'.encode())
    if hasattr(a, 'fingerprint'):
      digest.update(a.fingerprint().encode())
      continue
    n = len(a)
    if not in_memory(a) and int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize > _SAMPLE_ABOVE_BYTES:
      digest.update(np.ascontiguousarray(_sampled(a, _SAMPLED_ROWS)).tobytes())
      filename = getattr(a, 'filename', None)
      if filename:
        stat = os.stat(filename)
        digest.update(f'{filename}:{stat.st_size}:{stat.st_mtime_ns}'.encode())
      continue
    step = max(1, _FINGERPRINT_CHUNK_BYTES // max(1, int(np.prod(a.shape[1:])) * np.dtype(a.dtype).itemsize))
    for start in range(0, n, step):
      digest.update(np.ascontiguousarray(a[start:start + step] if isinstance(a, np.ndarray)
                                         else a[np.arange(start, min(n, start + step))]).tobytes())
  return digest.hexdigest()
