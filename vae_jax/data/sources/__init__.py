"""Where examples come from: a `Source` per dataset, one module per kind of source.

  idx     mnist and fashion_mnist from MNIST-format IDX files (data.idx_dir, Debian's
          dataset-fashion-mnist), falling back to TFDS
  tfds    datasets that tensorflow-datasets downloads (cifar10)
  digits  scikit-learn's bundled 8x8 digits (no download)

A source only reads: it gives the train and test examples as stored (uint8 or
float), their labels or None, and the `ExampleSpec`. `vae_jax.data.load`
does the rest for every source alike (unit floats, the validation split,
binarization, the checks against the config). Sources are found by name in
`vae_jax.data.SOURCES`; registering one there makes it a valid data.name.
"""

import dataclasses
from typing import Any, Callable

import numpy as np

from vae_jax.data import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class Loaded:
  """What a source read: (examples, labels or None) of its train and test splits, where it read them
  from (for the logs), and what an example is."""
  train: tuple[np.ndarray, np.ndarray | None]
  test: tuple[np.ndarray, np.ndarray | None]
  source: str
  spec: spec_lib.ExampleSpec


@dataclasses.dataclass(frozen=True)
class Source:
  """A dataset by name: `load(config) -> Loaded`, and its number of classes (None when unlabelled),
  known without loading (a conditional model is checked against it before any data is read)."""
  name: str
  load: Callable[[Any], Loaded]
  num_classes: int | None = None
