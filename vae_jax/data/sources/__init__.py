"""Where examples come from: a `Source` per dataset, one module per kind of source.

  idx           mnist and fashion_mnist from MNIST-format IDX files (data.idx_dir, Debian's
                dataset-fashion-mnist), falling back to TFDS
  tfds          any TFDS image dataset, tfds:NAME (and cifar10)
  digits        scikit-learn's bundled 8x8 digits (no download)
  dsprites      dSprites, rendered procedurally from its factors (no download)
  array         images in a .npy / .npz file, or numpy arrays handed to train_and_evaluate
  image_folder  a folder of image files, class subfolders as labels
  table         the rows of a table: a .csv or .npz (data.path), typed columns

A source only reads: it gives the train and test examples as stored (uint8
images, float vectors), their labels or None, a test split or None, and the
`ExampleSpec`; a source whose data were made from known factors also gives
the `Factors` and each example's factor indices. `vae_jax.data.load` does the rest for every source alike (the
checks, a held-out test split, the validation split, binarization, the checks
against the config). Sources are found by name in `vae_jax.data.SOURCES`;
registering one there makes it a valid data.name.
"""

import dataclasses
from typing import Any
from typing import Callable

import numpy as np

from vae_jax.data import factors as factors_lib
from vae_jax.data import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class Loaded:
  """What a source read: (examples, labels or None) of its train and test splits (test None: the data have
  none, and one is held out), where it read them from (for the logs), and what an example is; for data made
  from known factors, the `Factors` and the int (N, K) factor indices of each split's examples."""
  train: tuple[np.ndarray, np.ndarray | None]
  test: tuple[np.ndarray, np.ndarray | None] | None
  source: str
  spec: spec_lib.ExampleSpec
  fingerprint: str | None = None  # of what was read, when the source knows it cheaper than hashing the arrays
  factors: factors_lib.Factors | None = None
  train_factors: np.ndarray | None = None  # (N_train, K) indices, given with `factors`
  test_factors: np.ndarray | None = None   # (N_test, K) indices, given with `factors` and a test split


@dataclasses.dataclass(frozen=True)
class Source:
  """A dataset by name: `load(config) -> Loaded`, and its number of classes (None when unlabelled),
  known without loading (a conditional model is checked against it before any data is read). `options`: the
  data.* fields only this source reads (another source refuses values other than their defaults);
  `check_config(config)`: its checks of them, before anything is read; `has_factors`: its data come with
  known factors of variation (`Loaded.factors`), so a metric that needs them is allowed at config time."""
  name: str
  load: Callable[[Any], Loaded]
  num_classes: int | None = None
  options: tuple[str, ...] = ()
  check_config: Callable[[Any], None] | None = None
  has_factors: bool = False
