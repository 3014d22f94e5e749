"""The factors of variation that made a dataset: their names and sizes, and images drawn by factor value.

A source whose examples were generated from known discrete factors (`dsprites`)
gives a `Factors` with its data, and each split keeps the (N, K) factor indices
of its examples (`Split.factors`). The disentanglement metrics read both: the
codes of the examples against their factors (MIG, DCI, SAP), and fresh images
drawn with one factor held fixed (`fixed`: the BetaVAE and FactorVAE scores).
"""

import dataclasses
import math
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Factors:
  """K discrete factors: `names`, `sizes` (values each), and `render(indices (n, K) int) -> (n, H, W, C) uint8`,
  the stored images of those factor values, the same on any machine. The dataset's rows, when it holds every
  combination once, are in row-major order of the factors (the last varies fastest: `flat`)."""
  names: tuple[str, ...]
  sizes: tuple[int, ...]
  render: Callable[[np.ndarray], np.ndarray] = dataclasses.field(compare=False, repr=False)

  def __post_init__(self):
    if len(self.names) != len(self.sizes) or not all(int(s) >= 1 for s in self.sizes):
      raise ValueError(f'Factors: {len(self.names)} names {self.names} for the sizes {self.sizes}; give one size '
                       '>= 1 per name')

  @property
  def num_factors(self) -> int:
    return len(self.sizes)

  @property
  def num_combinations(self) -> int:
    return math.prod(self.sizes)

  def check(self, indices, where: str) -> np.ndarray:
    """`indices` as int32 (n, K), each column in 0..size-1; else ValueError naming `where`."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != self.num_factors or indices.dtype.kind not in 'iu':
      raise ValueError(f'{where}: factor indices of shape {indices.shape} and dtype {indices.dtype}; give int '
                       f'(n, {self.num_factors}) indices of the factors {", ".join(self.names)}')
    bad = (indices < 0) | (indices >= np.asarray(self.sizes))
    if bad.any():
      row, k = np.argwhere(bad)[0]
      raise ValueError(f'{where}: row {row} has index {indices[row, k]} of factor {self.names[k]}, which has '
                       f'{self.sizes[k]} values (0..{self.sizes[k] - 1})')
    return indices.astype(np.int32)

  def flat(self, indices) -> np.ndarray:
    """int64 (n,): the row of each factor combination in the row-major enumeration of all of them."""
    return np.ravel_multi_index(tuple(np.asarray(indices, np.int64).T), self.sizes)

  def unflat(self, rows) -> np.ndarray:
    """int32 (n, K): the factor indices of rows of the row-major enumeration (`flat`'s inverse)."""
    return np.stack(np.unravel_index(np.asarray(rows, np.int64), self.sizes), axis=1).astype(np.int32)

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    """int32 (n, K): factor indices drawn uniformly and independently, factor by factor."""
    return np.stack([rng.integers(0, s, n) for s in self.sizes], axis=1).astype(np.int32)

  def fixed(self, rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """int32 (n, K): as `sample`, but all n share one value of factor k, itself drawn uniformly
    (the "fix factor k, vary the others" batches of the BetaVAE and FactorVAE scores)."""
    if not 0 <= k < self.num_factors:
      raise ValueError(f'factor {k} of {self.num_factors} ({", ".join(self.names)}); give k in '
                       f'0..{self.num_factors - 1}')
    indices = self.sample(rng, n)
    indices[:, k] = rng.integers(0, self.sizes[k])
    return indices
