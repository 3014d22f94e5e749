"""What one example is: the spec a source gives with its data, and the models and writers build from.

  ImageSpec(height, width, channels, levels)  float32 (H, W, C) in [0, 1], `levels` values a channel; stored
                                              as uint8 codes k of the values k / (levels - 1)
  VectorSpec(columns)                         float32 (D,), one entry per `Column`; a table's rows: continuous
                                              columns standardized, binary 0 / 1, categorical codes
  SequenceSpec(vocab_size, max_length, ...)   int32 (max_length,) token ids, then EOS, padded with pad_id;
                                              with the tokenizer and vocabulary that made them from text

A spec is recorded in a run's config.json (resolved.example_spec, `to_json`),
so a run is rebuilt from its own description of its data (`from_json`), not
from the code's idea of the dataset. bits/dim divide by `num_dims`.
"""

import dataclasses
import math
from typing import Any
from typing import ClassVar
from typing import Mapping

import numpy as np

COLUMN_TYPES = ('continuous', 'binary', 'categorical')
TRIM_STEP = 8  # SequenceSpec.trimmed: evaluation batches cut to a multiple of this many positions


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
  """The base: `kind`, `shape` and `dtype` of one example. Subclasses say what the axes mean."""
  kind: ClassVar[str] = ''
  dtype: ClassVar[str] = 'float32'

  @property
  def shape(self) -> tuple[int, ...]:
    raise NotImplementedError(f'{type(self).__name__}.shape')

  @property
  def num_dims(self) -> int:
    """The dimensions of one example: what bits/dim divides by."""
    return math.prod(self.shape)

  def lengths(self, x) -> np.ndarray:
    """int (n,): the dimensions each of the examples x counts (every one `num_dims`; a sequence its own tokens)."""
    return np.full(len(x), self.num_dims)

  def evaluation_order(self, x) -> np.ndarray | None:
    """The order an evaluation reads the examples x in, so that `trimmed` batches are short; None: as stored."""
    del x
    return None

  def trimmed(self, x):
    """A batch of examples (read in `evaluation_order`) cut to what its examples use; the model's outputs are
    the same for it (every example as it is)."""
    return x

  @property
  def one_hot(self) -> tuple[int, ...]:
    """Per entry, the categories an encoder reads it as one-hot (`VectorSpec`); empty: every entry as it is."""
    return ()

  def decode(self, x):
    """The model's input (float32 for float specs) from examples as a source stores them; numpy or jax arrays
    alike, so the host and the train step decode the same way."""
    return x.astype(self.dtype)

  def dummy(self, n: int) -> np.ndarray:
    """n examples of zeros, of the spec's shape and dtype: what a model is initialized with."""
    return np.zeros((n, *self.shape), self.dtype)

  def describe(self) -> str:
    """One phrase for the logs, e.g. 'images of shape (28, 28, 1)'."""
    return f'{self.kind}s of shape {self.shape}'

  def to_json(self) -> dict:
    return {'kind': self.kind, **dataclasses.asdict(self)}

  @staticmethod
  def from_json(record: Mapping[str, Any]) -> 'ExampleSpec':
    """The spec `to_json` wrote (a dict, or the ConfigDict a config.json is read into)."""
    record = dict(record)
    kind = record.pop('kind', None)
    if kind not in SPECS:
      raise ValueError(f'an example spec of kind {kind!r}; known kinds: {", ".join(SPECS)}')
    return SPECS[kind].from_fields(record)

  @classmethod
  def from_fields(cls, fields: dict) -> 'ExampleSpec':
    return cls(**fields)


@dataclasses.dataclass(frozen=True)
class ImageSpec(ExampleSpec):
  """Images (H, W, C) with values in [0, 1]; `levels` values a channel takes as the source stores them
  (256 for 8-bit data: k / 255), before any binarization."""
  height: int
  width: int
  channels: int
  levels: int = 256
  kind: ClassVar[str] = 'image'

  @property
  def shape(self) -> tuple[int, int, int]:
    return (self.height, self.width, self.channels)

  def values(self) -> np.ndarray:
    """float32 (levels,): the value of each code, k / (levels - 1), divided by numpy."""
    return np.arange(self.levels, dtype=np.float32) / np.float32(self.levels - 1)

  def decode(self, x):
    """uint8 codes to their `values` (float images pass unchanged). A lookup, not a division: XLA:CPU
    divides less exactly than numpy, and a batch decoded in the train step must equal one decoded on the host."""
    if x.dtype != np.uint8:
      return x.astype(np.float32)
    if isinstance(x, np.ndarray):
      return self.values()[x]
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top  (a jax array: the spec module stays numpy-only)
    return jnp.take(jnp.asarray(self.values()), x.astype(jnp.int32), axis=0)

  @classmethod
  def of_shape(cls, shape, levels: int = 256) -> 'ImageSpec':
    height, width, channels = (int(d) for d in shape)
    return cls(height, width, channels, levels)


@dataclasses.dataclass(frozen=True)
class Column:
  """One entry of a vector: `type` is continuous, binary or categorical (with `num_categories`).

  A table's columns also say how to go back to the data's own units (`VectorSpec.to_frame`):
    continuous   stored as (value - mean) / std, `mean` and `std` of the train split; `low` and `high` the
                 train split's range and `decimals` the values' precision (0: integers; None: any), to which
                 samples are clipped and rounded; `atoms` the values the train split takes often (a count's
                 0, a share's 0 and 1), which the table likelihood gives a probability of their own;
    binary       stored as 0 / 1, `categories` its two values (code 0, code 1);
    categorical  stored as its code, `categories` its values (index = code).
  Values are numbers or strings, as the source read them. A column without them is read as it is stored.
  """
  name: str
  type: str = 'continuous'
  num_categories: int | None = None
  mean: float | None = None
  std: float | None = None
  categories: tuple | None = None
  low: float | None = None
  high: float | None = None
  decimals: int | None = None
  atoms: tuple | None = None

  def __post_init__(self):
    if self.type not in COLUMN_TYPES:
      raise ValueError(f'column {self.name!r} has type {self.type!r}; use one of {", ".join(COLUMN_TYPES)}')
    if self.categories is not None:
      object.__setattr__(self, 'categories', tuple(self.categories))
      if self.type == 'categorical' and self.num_categories is None:
        object.__setattr__(self, 'num_categories', len(self.categories))
    if (self.type == 'categorical') != (self.num_categories is not None):
      raise ValueError(f'column {self.name!r}: num_categories is given for categorical columns, and only for them')
    if self.categories is not None:
      want = {'binary': 2, 'categorical': self.num_categories}.get(self.type)
      if len(self.categories) != want:
        raise ValueError(f'column {self.name!r} ({self.type}) has {len(self.categories)} categories; it takes '
                         f'{want or "none"}')
    if self.atoms is not None:
      object.__setattr__(self, 'atoms', tuple(float(a) for a in self.atoms))
    scaled = (self.mean, self.std, self.low, self.high, self.decimals, self.atoms)
    if self.type != 'continuous' and any(v is not None for v in scaled):
      raise ValueError(f'column {self.name!r} ({self.type}): mean, std, low, high, decimals and atoms are for '
                       'continuous columns')
    if self.std is not None and not self.std > 0:
      raise ValueError(f'column {self.name!r} has std={self.std}; it must be > 0')

  @property
  def precision(self) -> int:
    """The decimals a continuous value comes back with from its float32 stored form: its `decimals`, at most
    the 6 significant digits that float32 keeps at the column's scale (a value stored 3e-9 off 0 reads 0)."""
    kept = 5 - math.floor(math.log10(self.std or 1.0))
    return kept if self.decimals is None else min(self.decimals, kept)

  def encode(self, values) -> np.ndarray:
    """float64 (n,): `values` (the data's own) in the stored form."""
    if self.type == 'continuous':
      return (np.asarray(values, np.float64) - (self.mean or 0.0)) / (self.std or 1.0)
    if self.categories is None:
      return np.asarray(values, np.float64)
    index = {value: code for code, value in enumerate(self.categories)}
    codes = np.fromiter((index.get(v, -1) for v in values), np.float64)
    if (codes < 0).any():
      value = list(values)[int(np.argmax(codes < 0))]
      raise ValueError(f'column {self.name!r} has the value {value!r}, which is not one of its categories '
                       f'{listed(self.categories)}')
    return codes

  def decode(self, stored: np.ndarray, clip: bool = False) -> list | np.ndarray:
    """The data's own values of stored entries (n,): continuous rounded to `precision` (integers for decimals
    0), and with `clip` (samples) clipped to [low, high] first; the categories of codes (out-of-range codes
    clipped to the nearest)."""
    stored = np.asarray(stored, np.float64)
    if self.type == 'continuous':
      values = stored * (self.std or 1.0) + (self.mean or 0.0)
      if clip and self.low is not None:
        values = np.clip(values, self.low, self.high)
      if self.decimals == 0:
        return np.round(values).astype(np.int64)
      return np.round(values, self.precision) + 0.0  # + 0.0: no -0.0 from a value stored a hair below 0
    codes = np.clip(np.round(stored), 0, (self.num_categories or 2) - 1).astype(np.int64)
    return codes if self.categories is None else [self.categories[c] for c in codes]


def listed(values, most: int = 6) -> str:
  """'(a, b, ...)': the first `most` values, for one-line messages."""
  shown = ', '.join(repr(v) for v in list(values)[:most])
  return f'({shown}{", ..." if len(values) > most else ""})'


@dataclasses.dataclass(frozen=True)
class VectorSpec(ExampleSpec):
  """Flat vectors (D,) of float32, one entry per column."""
  columns: tuple[Column, ...]
  kind: ClassVar[str] = 'vector'

  def __post_init__(self):
    object.__setattr__(self, 'columns', tuple(self.columns))

  @property
  def shape(self) -> tuple[int]:
    return (len(self.columns),)

  @classmethod
  def continuous(cls, num_columns: int, prefix: str = 'x') -> 'VectorSpec':
    """D continuous columns named x0, x1, ...: a vector source that says nothing more of its columns."""
    return cls(tuple(Column(f'{prefix}{i}') for i in range(num_columns)))

  @property
  def one_hot(self) -> tuple[int, ...]:
    """Per entry, the categories an encoder reads it as one-hot (its codes are labels, not quantities); 0: as is."""
    return tuple(c.num_categories or 0 for c in self.columns)

  @property
  def log_std(self) -> float:
    """Sum of log std over the standardized columns: the log-Jacobian of the standardization, which turns a
    density of the stored rows into one in the data's own units (-log p(value) = -log p(stored) + this), for a
    row whose continuous values are none of their columns' atoms (those have a probability, which no scale
    changes)."""
    return float(sum(math.log(c.std) for c in self.columns if c.std is not None))

  def to_frame(self, x, clip: bool = False):
    """pandas.DataFrame of rows x (n, D) in the stored form, in the data's own units and categories
    (`Column.decode`; `clip` for samples: continuous values kept within the train split's range)."""
    import pandas as pd  # pylint: disable=g-import-not-at-top  (only tables need pandas)
    x = np.asarray(x)
    return pd.DataFrame({c.name: c.decode(x[:, j], clip) for j, c in enumerate(self.columns)})

  def from_frame(self, frame) -> np.ndarray:
    """float32 (n, D): the rows of a DataFrame (the data's own units) in the stored form; ValueError naming a
    column that is missing or a value outside a column's categories."""
    missing = [c.name for c in self.columns if c.name not in frame.columns]
    if missing:
      raise ValueError(f'the table has no column {missing[0]!r}; its columns are {listed(frame.columns)}')
    return np.stack([c.encode(frame[c.name].tolist()) for c in self.columns], axis=1).astype(np.float32)

  def to_json(self) -> dict:
    return {'kind': self.kind, 'columns': [dataclasses.asdict(c) for c in self.columns]}

  @classmethod
  def from_fields(cls, fields: dict) -> 'VectorSpec':
    return cls(tuple(Column(**_plain(dict(c))) for c in fields['columns']))


def _plain(fields: dict) -> dict:
  """A column's fields as JSON gives them back (through a ConfigDict too): lists as tuples."""
  return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in fields.items()}


@dataclasses.dataclass(frozen=True)
class SequenceSpec(ExampleSpec):
  """Token sequences (max_length,) of int32 ids in [0, vocab_size): the tokens, then `eos_id`, then `pad_id` to
  the end. Every loss and metric reads `mask(x)` (the tokens and the EOS, which is predicted and counted like any
  token), so padding changes nothing. A decoder starts from `bos_id`, which is never a target; `unk_id` stands for
  a token outside the vocabulary. `tokenizer` names how text became ids (`vae_jax.data.tokenizers`), with
  `vocabulary` (each id's token, ids 0-3 the special ones) and its settings, so a run turns ids back into text
  from its own config.json, and a resume on another vocabulary is refused."""
  vocab_size: int
  max_length: int
  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2
  unk_id: int = 3
  tokenizer: str = ''
  vocabulary: tuple[str, ...] = ()
  lowercase: bool = False
  tokenizer_model: str = ''  # sentencepiece: its model, base64 (the vocabulary alone cannot segment text)
  kind: ClassVar[str] = 'sequence'
  dtype: ClassVar[str] = 'int32'

  def __post_init__(self):
    object.__setattr__(self, 'vocabulary', tuple(self.vocabulary))
    if self.vocabulary and len(self.vocabulary) != self.vocab_size:
      raise ValueError(f'a sequence spec of vocab_size {self.vocab_size} lists {len(self.vocabulary)} tokens')

  @property
  def shape(self) -> tuple[int]:
    return (self.max_length,)

  def mask(self, x):
    """bool (n, max_length): the positions that hold a token or the EOS (numpy or jax alike)."""
    return x != self.pad_id

  def lengths(self, x) -> np.ndarray:
    """int (n,): each sequence's tokens, its EOS included: what per-token figures divide by."""
    return np.sum(np.asarray(x) != self.pad_id, axis=-1)

  def evaluation_order(self, x) -> np.ndarray:
    """Shortest first (stable), so that each evaluation batch is cut to its own longest sequence."""
    return np.argsort(self.lengths(x), kind='stable')

  def trimmed(self, x):
    """The batch cut after its longest sequence, rounded up to a multiple of TRIM_STEP positions (a few
    lengths, so a few compilations). Padding changes no likelihood, so the figures are those of the full rows."""
    used = int(np.max(np.sum(np.asarray(x) != self.pad_id, axis=-1), initial=1))
    return x[:, :min(self.max_length, -(-used // TRIM_STEP) * TRIM_STEP)]

  def describe(self) -> str:
    made = f' {self.tokenizer}' if self.tokenizer else ''
    return f'token sequences of at most {self.max_length} ids ({self.vocab_size}{made} tokens, EOS included)'

  @classmethod
  def from_fields(cls, fields: dict) -> 'SequenceSpec':
    return cls(**_plain(fields))


SPECS: dict[str, type[ExampleSpec]] = {s.kind: s for s in (ImageSpec, VectorSpec, SequenceSpec)}
