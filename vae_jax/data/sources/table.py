"""`table`: the rows of a table with typed columns, from a .csv or .npz file (data.path).

A .csv is read by pandas (its delimiter sniffed: commas, semicolons, tabs);
a .npz names its columns, one 1-D array each (a 2-D array KEY of d columns
is read as columns KEY0 .. KEY{d-1}).

Column types (`spec.Column`: continuous, binary, categorical) are those that
data.columns gives ('name:type', on the command line
--config.data.columns=age:continuous,smoker:binary), and the others' are
inferred (`infer`) and logged. A declared type that the values do not fit is
refused in one line: a continuous column holding text, a binary column with
more than two values.

Missing values (empty fields, NA, NaN) are refused in one line naming the
first row and column, or with data.missing=drop the rows that miss one are
left out, and the log counts them. Infinite values are refused.

The test split is data.test_fraction of the rows, by data.split_seed, as
`vae_jax.data.load` holds one out; it is taken here so that the
standardization of the continuous columns is the train split's alone.
Rows are stored as float32 (`VectorSpec.from_frame`): continuous columns
standardized, binary 0 / 1, categorical codes; `VectorSpec.to_frame` gives
them back in the data's own units and categories. A continuous column's
values that many of its train rows take (`atoms`: a count's 0, a share's 0
and 1) are listed in its Column, for the table likelihood to give them a
probability of their own.
"""

import csv
import importlib.util
import pathlib

from absl import logging
import numpy as np
import pandas as pd

from vae_jax import errors
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib

# A numeric column with at most this many distinct values is inferred categorical (a rating, a code, a
# count of few values); one with more, continuous. Two values make a binary column, text a categorical one.
MAX_INFERRED_CATEGORIES = 10
# A continuous column's atoms (`Column.atoms`): the values that at least this share of its train rows take, and
# at least ATOM_ROWS of them, the MAX_ATOMS most frequent (a count's first values, a share's 0 and 1).
ATOM_SHARE = 0.02
ATOM_ROWS = 10
MAX_ATOMS = 10
MAX_DECIMALS = 8  # a continuous column's values with more decimals than this have none (`Column.decimals`)
SNIFF_BYTES = 1 << 16


def _read_csv(path: pathlib.Path) -> pd.DataFrame:
  with open(path, newline='', encoding='utf-8', errors='replace') as f:
    head = f.read(SNIFF_BYTES)
  try:
    delimiter = csv.Sniffer().sniff(head.split('\n', 1)[0], delimiters=',;\t|').delimiter
  except csv.Error:
    delimiter = ','
  frame = pd.read_csv(path, sep=delimiter, skipinitialspace=True)
  frame.columns = [str(c).strip().strip('\'"') for c in frame.columns]
  return frame


def _read_npz(path: pathlib.Path) -> pd.DataFrame:
  columns = {}
  with np.load(path, allow_pickle=False) as arrays:
    for key in arrays.files:
      a = arrays[key]
      if a.ndim == 1:
        columns[key] = a
      elif a.ndim == 2:
        columns.update({f'{key}{i}': a[:, i] for i in range(a.shape[1])})
      else:
        raise errors.DataError(f'{path}: array {key!r} has shape {a.shape}; a table stores each column as a 1-D '
                               'array (or several as the columns of a 2-D one)')
  lengths = {k: len(v) for k, v in columns.items()}
  if len(set(lengths.values())) > 1:
    raise errors.DataError(f'{path}: its columns differ in length ({lengths}); every column needs a value per row')
  return pd.DataFrame(columns).replace('', np.nan)


def read(path) -> pd.DataFrame:
  """The table at `path` (.csv or .npz) as a DataFrame; one-line DataErrors for what cannot be read."""
  if not path:
    raise errors.ConfigError('data.name=table reads data.path: set it to a .csv or .npz file')
  path = pathlib.Path(path)
  if not path.is_file():
    raise errors.DataError(f'data.path={str(path)!r} is not a file; give a .csv or .npz table')
  readers = {'.csv': _read_csv, '.npz': _read_npz}
  if path.suffix.lower() not in readers:
    raise errors.DataError(f'data.path={str(path)!r} is neither .csv nor .npz; save the table as one of them')
  try:
    frame = readers[path.suffix.lower()](path)
  except errors.DataError:
    raise
  except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
    raise errors.DataError(f'{path} cannot be read as a table ({type(e).__name__}: {str(e).splitlines()[0]}); '
                           'write it again as a .csv with a header row, or as a .npz of columns') from None
  if frame.empty or not len(frame.columns):
    raise errors.DataError(f'{path} holds no rows; a table needs a header row and at least one row of values')
  if len(set(frame.columns)) < len(frame.columns):
    twice = [c for c in frame.columns if list(frame.columns).count(c) > 1][0]
    raise errors.DataError(f'{path} has two columns named {twice!r}; give each column its own name')
  return frame


def _values(series: pd.Series) -> str:
  return spec_lib.listed(sorted(series.dropna().unique().tolist(), key=_order))


def _order(value):
  return (isinstance(value, str), value if not isinstance(value, str) else 0, str(value))


def without_missing(frame: pd.DataFrame, missing: str, where: str) -> pd.DataFrame:
  """`frame` with no missing value: refused in one line naming the first (data.missing=refuse), or the rows
  that miss one left out and counted in the log (drop). Infinite values are refused either way."""
  numeric = frame.select_dtypes('number')
  infinite = np.isinf(numeric.to_numpy(np.float64)) if len(numeric.columns) else np.zeros((len(frame), 0), bool)
  if infinite.any():
    row, col = np.argwhere(infinite)[0]
    raise errors.DataError(f'{where}: column {numeric.columns[col]!r} holds {numeric.iat[row, col]} in row {row + 1}; '
                           'a table\'s values must be finite: remove or repair it')
  absent = frame.isna().to_numpy()
  if not absent.any():
    return frame
  rows = absent.any(axis=1)
  if missing == 'refuse':
    row, col = np.argwhere(absent)[0]
    raise errors.DataError(f'{where}: column {frame.columns[col]!r} has no value in row {row + 1} (rows counted from '
                           f'1 after the header; {int(rows.sum())} rows miss a value); fill them in, or set '
                           'data.missing=drop to leave those rows out')
  per_column = ', '.join(f'{name} {int(n)}' for name, n in zip(frame.columns, absent.sum(axis=0)) if n)
  logging.info('data.missing=drop: left out the %d of %d rows of %s that miss a value (per column: %s)',
               int(rows.sum()), len(frame), where, per_column)
  kept = frame.loc[~rows].reset_index(drop=True)
  if kept.empty:
    raise errors.DataError(f'{where}: every row misses a value, so data.missing=drop leaves none; fill them in')
  return kept


def declared_types(columns, names) -> dict[str, str]:
  """{name: type} of data.columns' 'name:type' entries, checked against the table's column `names`."""
  from vae_jax import config_lib  # pylint: disable=g-import-not-at-top  (config_lib imports vae_jax.data)
  out = {}
  for item in config_lib.name_list(columns):
    name, sep, kind = item.rpartition(':')
    name, kind = name.strip(), kind.strip()
    if not sep or not name:
      raise errors.ConfigError(f'data.columns entry {item!r} is not name:type; write e.g. age:continuous')
    if kind not in spec_lib.COLUMN_TYPES:
      raise errors.ConfigError(f'data.columns gives {name!r} the type {kind!r}; use one of '
                               f'{", ".join(spec_lib.COLUMN_TYPES)}')
    if name not in names:
      raise errors.ConfigError(f'data.columns names {name!r}, which the table does not have; its columns are '
                               f'{spec_lib.listed(list(names), 12)}')
    if name in out:
      raise errors.ConfigError(f'data.columns names {name!r} twice; give each column once')
    out[name] = kind
  return out


def infer(series: pd.Series) -> tuple[str, str]:
  """(type, why) of a column from its values: two values binary; text categorical; numbers with at most
  MAX_INFERRED_CATEGORIES distinct values categorical, with more continuous."""
  distinct = series.nunique()
  if distinct == 2:
    return 'binary', f'2 values {_values(series)}'
  if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
    return 'categorical', f'{distinct} text values'
  if distinct <= MAX_INFERRED_CATEGORIES:
    return 'categorical', f'{distinct} distinct numbers'
  return 'continuous', f'{distinct} distinct numbers'


def _native(value):
  """A numpy scalar as the Python value JSON and config.json keep."""
  return value.item() if isinstance(value, np.generic) else value


def decimals(values: np.ndarray) -> int | None:
  """The fewest decimals (up to MAX_DECIMALS) that every value has exactly; None when more."""
  for d in range(MAX_DECIMALS + 1):
    if np.allclose(values, np.round(values, d), rtol=0.0, atol=1e-9):
      return d
  return None


def atoms(values: np.ndarray) -> tuple[float, ...] | None:
  """The values that at least ATOM_SHARE (and ATOM_ROWS) of `values` take, at most MAX_ATOMS of the most
  frequent, in ascending order; None when there are none."""
  found, counts = np.unique(values, return_counts=True)
  often = counts >= max(ATOM_ROWS, ATOM_SHARE * len(values))
  chosen = found[often][np.argsort(-counts[often], kind='stable')][:MAX_ATOMS]
  return tuple(float(a) for a in np.sort(chosen)) or None


def column(name: str, kind: str, series: pd.Series, train_rows: np.ndarray, where: str) -> spec_lib.Column:
  """The Column of `series` as `kind`; its standardization and range from the `train_rows` alone, its
  categories from every row (a value seen only in the test split is still a category). A declared type that
  the values do not fit is refused in one line."""
  if kind == 'continuous':
    numbers = pd.to_numeric(series, errors='coerce')
    if numbers.isna().any():
      row = int(np.argmax(numbers.isna().to_numpy()))
      raise errors.DataError(f'{where}: column {name!r} is declared continuous but row {row + 1} holds '
                             f'{series.iloc[row]!r}, which is not a number; declare it categorical')
    values = numbers.to_numpy(np.float64)
    train = values[train_rows]
    std = float(np.std(train))
    if not std > 0:
      raise errors.DataError(f'{where}: column {name!r} is continuous but takes the one value {float(train[0])!r} '
                             'in the train split; declare it categorical, or leave it out of the table')
    return spec_lib.Column(name, kind, mean=float(np.mean(train)), std=std, low=float(train.min()),
                           high=float(train.max()), decimals=decimals(values), atoms=atoms(train))
  categories = sorted((_native(v) for v in series.unique()), key=_order)
  if kind == 'binary' and len(categories) != 2:
    held = (f'only the value {categories[0]!r}' if len(categories) == 1 else
            f'{len(categories)} values {_values(series)}')
    raise errors.DataError(f'{where}: column {name!r} is declared binary but takes {held}; a binary column takes '
                           'two: declare it categorical' + (' or continuous' if len(categories) > 2 else ''))
  return spec_lib.Column(name, kind, categories=tuple(categories))


def held_out(n: int, config, where: str) -> tuple[np.ndarray, np.ndarray]:
  """(train rows, test rows), sorted: data.test_fraction of the n rows by data.split_seed, as data.load holds
  out a test split."""
  num_test = int(round(config.data.test_fraction * n))
  if not 0 < num_test < n:
    raise errors.DataError(f'{where} has {n} rows; data.test_fraction={config.data.test_fraction} holds out '
                           f'{num_test} as the test split: give more rows or another fraction')
  order = np.random.default_rng(config.data.split_seed).permutation(n)
  return np.sort(order[num_test:]), np.sort(order[:num_test])


def load(config) -> sources.Loaded:
  where = str(config.data.path)
  frame = without_missing(read(config.data.path), config.data.missing, where)
  declared = declared_types(config.data.columns, frame.columns)
  train_rows, test_rows = held_out(len(frame), config, where)
  columns, described = [], []
  for name in frame.columns:
    kind, why = (declared[name], 'given') if name in declared else infer(frame[name])
    columns.append(column(name, kind, frame[name], train_rows, where))
    described.append(f'{name} {kind} ({why})')
  spec = spec_lib.VectorSpec(tuple(columns))
  logging.info('table %s: %d rows; column types (data.columns, else inferred): %s', where, len(frame),
               ', '.join(described))
  rows = spec.from_frame(frame)
  counts = {k: sum(c.type == k for c in columns) for k in spec_lib.COLUMN_TYPES}
  source = (f'{where}: {len(frame):,} rows, ' + ', '.join(f'{n} {k}' for k, n in counts.items() if n) +
            f' columns; test split {len(test_rows):,} rows (data.test_fraction={config.data.test_fraction:g}, '
            f'data.split_seed={config.data.split_seed})')
  return sources.Loaded((rows[train_rows], None), (rows[test_rows], None), source, spec)


TABLE = sources.Source('table', load)


def packaged(package: str, *parts: str) -> str:
  """The path of a file that an installed `package` ships (a table bundled with statsmodels or scikit-learn),
  found without importing the package; a ConfigError when it is not installed."""
  found = importlib.util.find_spec(package)
  if found is None or not found.submodule_search_locations:
    raise errors.ConfigError(f'this config reads a table that the {package} package ships; pip install {package}')
  return str(pathlib.Path(found.submodule_search_locations[0], *parts))
