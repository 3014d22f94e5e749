"""What one example is: the spec a source gives with its data, and the models and writers build from.

  ImageSpec(height, width, channels, levels)  float32 (H, W, C) in [0, 1], `levels` values a channel
  VectorSpec(columns)                         float32 (D,), one entry per `Column`
  SequenceSpec(vocab_size, max_length, pad_id) int32 (max_length,) token ids, padded with pad_id

A spec is recorded in a run's config.json (resolved.example_spec, `to_json`),
so a run is rebuilt from its own description of its data (`from_json`), not
from the code's idea of the dataset. bits/dim divide by `num_dims`.
"""

import dataclasses
import math
from typing import Any, ClassVar, Mapping

import numpy as np

COLUMN_TYPES = ('continuous', 'binary', 'categorical')


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

  @classmethod
  def of_shape(cls, shape, levels: int = 256) -> 'ImageSpec':
    height, width, channels = (int(d) for d in shape)
    return cls(height, width, channels, levels)


@dataclasses.dataclass(frozen=True)
class Column:
  """One entry of a vector: `type` is continuous, binary or categorical (with `num_categories`)."""
  name: str
  type: str = 'continuous'
  num_categories: int | None = None

  def __post_init__(self):
    if self.type not in COLUMN_TYPES:
      raise ValueError(f'column {self.name!r} has type {self.type!r}; use one of {", ".join(COLUMN_TYPES)}')
    if (self.type == 'categorical') != (self.num_categories is not None):
      raise ValueError(f'column {self.name!r}: num_categories is given for categorical columns, and only for them')


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

  def to_json(self) -> dict:
    return {'kind': self.kind, 'columns': [dataclasses.asdict(c) for c in self.columns]}

  @classmethod
  def from_fields(cls, fields: dict) -> 'VectorSpec':
    return cls(tuple(Column(**dict(c)) for c in fields['columns']))


@dataclasses.dataclass(frozen=True)
class SequenceSpec(ExampleSpec):
  """Token sequences (max_length,) of int32 ids in [0, vocab_size), padded at the end with `pad_id`."""
  vocab_size: int
  max_length: int
  pad_id: int = 0
  kind: ClassVar[str] = 'sequence'
  dtype: ClassVar[str] = 'int32'

  @property
  def shape(self) -> tuple[int]:
    return (self.max_length,)


SPECS: dict[str, type[ExampleSpec]] = {s.kind: s for s in (ImageSpec, VectorSpec, SequenceSpec)}
