"""Text as token sequences: `text` (a UTF-8 file, data.path), `fortunes` (Debian's fortunes) and `words`
(Debian's wamerican word list), each example a padded row of token ids (`spec.SequenceSpec`).

Reading. A file is read as UTF-8; bytes that are not are refused in one line
naming the file and line. Examples are split by data.separator: `line` (one
a line), `blank` (paragraphs between blank lines) or `percent` (lines holding
only %, the fortune format); `auto` takes percent when a line is %, else line.
Examples empty after stripping are left out, and repeats of an earlier
example are left out and counted, so no held-out text is also trained on.
Fortune files' overstriking (a character, a backspace, a character) is kept
as the last character.

Splits. The test split is data.test_fraction of the examples by
data.split_seed, taken here so that the tokenizer (`vae_jax.data.tokenizers`,
data.tokenizer) is fitted on the train split alone; held-out tokens outside
its vocabulary become UNK, counted in the log.

Lengths. A row holds a sequence's tokens and its EOS, at most data.max_length
ids. A longer one is, by data.too_long: `truncate`d to its first
max_length - 1 tokens and the EOS (counted in the log), `drop`ped (counted), or
`refuse`d (one line, exit 2).
"""

import hashlib
import pathlib
import re

from absl import logging
import numpy as np

from vae_jax import errors
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib
from vae_jax.data import tokenizers

SEPARATORS = ('auto', 'line', 'blank', 'percent')
TOO_LONG = ('truncate', 'drop', 'refuse')
FORTUNES_DIR = '/usr/share/games/fortunes'
WORD_LISTS = ('/usr/share/dict/american-english', '/usr/share/dict/words')
_OVERSTRIKE = re.compile('.\x08')


def read_utf8(path: pathlib.Path) -> str:
  """The file's text; DataError naming the file and line of the first bytes that are not UTF-8."""
  raw = path.read_bytes()
  try:
    return raw.decode('utf-8')
  except UnicodeDecodeError as e:
    line = raw.count(b'\n', 0, e.start) + 1
    bad = raw[e.start:e.end].hex(' ')
    raise errors.DataError(f'{path}, line {line}: bytes that are not UTF-8 ({bad}); convert the file to UTF-8 '
                           f'(e.g. iconv -f latin1 -t utf-8)') from None


def split_examples(text: str, separator: str) -> list[str]:
  """The examples of a file's text, stripped, empty ones left out."""
  if separator == 'auto':
    separator = 'percent' if re.search(r'^%\s*$', text, flags=re.M) else 'line'
  if separator == 'percent':
    parts = re.split(r'^%\s*$', text, flags=re.M)
  elif separator == 'blank':
    parts = re.split(r'\n\s*\n', text)
  else:
    parts = text.splitlines()
  return [p for p in (_OVERSTRIKE.sub('', part).strip() for part in parts) if p]


def _files(path: pathlib.Path) -> list[pathlib.Path]:
  """A file, or a folder's regular files (sorted; fortune index files, *.dat, and symbolic links left out)."""
  if path.is_file():
    return [path]
  return sorted(p for p in path.iterdir() if p.is_file() and not p.is_symlink() and p.suffix != '.dat'
                and not p.name.startswith('.'))


def read_examples(path: pathlib.Path, separator: str, what: str) -> list[str]:
  """Every example of the file or folder at `path`, repeats left out (counted in the log)."""
  if not path.exists():
    raise errors.DataError(f'{what}: {path} does not exist; give data.path')
  texts = []
  for f in _files(path):
    texts += split_examples(read_utf8(f), separator)
  unique = list(dict.fromkeys(texts))
  if not unique:
    raise errors.DataError(f'{what}: {path} holds no text (an empty corpus); give a file with at least one '
                           'non-empty example')
  if len(unique) < len(texts):
    logging.info('%s: left out %d repeats of earlier examples of %d', what, len(texts) - len(unique), len(texts))
  return unique


def encode(tokenizer: tokenizers.Tokenizer, texts: list[str], max_length: int, too_long: str,
           what: str) -> tuple[np.ndarray, int]:
  """int32 (n, max_length) rows (tokens, EOS, pads) of `texts` under data.too_long, and the number of UNKs."""
  rows, cut, dropped, unknown = [], 0, 0, 0
  for i, text in enumerate(texts):
    ids = tokenizer.encode(text)
    if len(ids) + 1 > max_length:
      if too_long == 'refuse':
        raise errors.DataError(f'{what}: example {i} has {len(ids)} tokens and its EOS, more than '
                               f'data.max_length={max_length}; raise data.max_length, or set data.too_long=truncate '
                               'or drop')
      if too_long == 'drop':
        dropped += 1
        continue
      ids, cut = ids[:max_length - 1], cut + 1
    unknown += sum(1 for t in ids if t == tokenizers.UNK)
    rows.append(ids + [tokenizers.EOS] + [tokenizers.PAD] * (max_length - 1 - len(ids)))
  if cut or dropped:
    logging.info('%s: %d of %d examples are longer than data.max_length=%d (EOS included): %s', what,
                 cut + dropped, len(texts), max_length, 'truncated' if cut else 'left out (data.too_long=drop)')
  if not rows:
    raise errors.DataError(f'{what}: every example is longer than data.max_length={max_length}; raise it')
  return np.asarray(rows, np.int32).reshape(-1, max_length), unknown


def from_texts(texts: list[str], config, what: str, tokenizer_name: str,
               test: list[str] | None = None) -> sources.Loaded:
  """Splits `texts` (unless a `test` split is given), fits the tokenizer on the train split and encodes both:
  what every text source returns."""
  d = config.data
  name = d.tokenizer or tokenizer_name
  if name not in tokenizers.TOKENIZERS:
    raise errors.ConfigError(f'data.tokenizer={name!r} is not allowed; use one of {", ".join(tokenizers.TOKENIZERS)}')
  if test is not None:
    train = texts
  else:
    n = len(texts)
    num_test = int(round(d.test_fraction * n))
    if not 0 < num_test < n:
      raise errors.DataError(f'{what} has {n} examples; data.test_fraction={d.test_fraction} holds out {num_test} '
                             'for the test split: give more text or another fraction')
    order = np.random.default_rng(d.split_seed).permutation(n)
    test = [texts[i] for i in order[:num_test]]
    train = [texts[i] for i in order[num_test:]]
  tokenizer = tokenizers.TOKENIZERS[name].fit(train, d.min_count, d.max_vocab, d.lowercase)
  logging.info('%s: %d train / %d test examples; %s tokenizer with %d tokens (data.min_count=%d)', what,
               len(train), len(test), name, len(tokenizer.vocabulary), d.min_count)
  train_ids, _ = encode(tokenizer, train, d.max_length, d.too_long, f'{what} (train split)')
  test_ids, unknown = encode(tokenizer, test, d.max_length, d.too_long, f'{what} (test split)')
  if unknown:
    logging.info('%s: %d test tokens are outside the train split\'s vocabulary (UNK)', what, unknown)
  spec = spec_lib.SequenceSpec(len(tokenizer.vocabulary), d.max_length, **tokenizer.spec_fields())
  digest = hashlib.sha256('\x00'.join(train + ['\x01'] + test).encode()).hexdigest()[:16]
  return sources.Loaded((train_ids, None), (test_ids, None), what, spec,
                        fingerprint=f'{digest}-{hashlib.sha256(repr(spec.to_json()).encode()).hexdigest()[:8]}')


def check_config(config) -> None:
  d = config.data
  for field, value, allowed in (('separator', d.separator, SEPARATORS), ('too_long', d.too_long, TOO_LONG)):
    if value not in allowed:
      raise errors.ConfigError(f'data.{field}={value!r} is not allowed; use one of {", ".join(allowed)}')
  if d.tokenizer is not None and d.tokenizer not in tokenizers.TOKENIZERS:
    raise errors.ConfigError(f'data.tokenizer={d.tokenizer!r} is not allowed; use one of '
                             f'{", ".join(tokenizers.TOKENIZERS)}')
  if d.max_length < 2:
    raise errors.ConfigError(f'data.max_length={d.max_length} leaves no room for a token and the EOS; use >= 2')
  if d.min_count < 1:
    raise errors.ConfigError(f'data.min_count={d.min_count} must be >= 1')
  if d.max_vocab is not None and d.max_vocab <= len(tokenizers.SPECIALS):
    raise errors.ConfigError(f'data.max_vocab={d.max_vocab} leaves no room beside the {len(tokenizers.SPECIALS)} '
                             'special tokens; use more, or leave it unset')
  if config.data.binarize != 'none':
    raise errors.ConfigError(f'data.binarize={config.data.binarize!r} draws binary pixels; token sequences take '
                             'data.binarize=none')


def load_text(config) -> sources.Loaded:
  if not config.data.path:
    raise errors.ConfigError('data.name=text reads data.path: give a UTF-8 file (one example a line, or '
                             'examples between blank lines or % lines)')
  path = pathlib.Path(config.data.path).expanduser()
  return from_texts(read_examples(path, config.data.separator, 'text'), config, f'text {path}', 'word')


def load_fortunes(config) -> sources.Loaded:
  path = pathlib.Path(config.data.path or FORTUNES_DIR)
  if not path.exists():
    raise errors.DataError(f'fortunes: {path} does not exist; install Debian\'s fortunes (apt-get install '
                           'fortunes) or give data.path')
  separator = 'percent' if config.data.separator == 'auto' else config.data.separator
  return from_texts(read_examples(path, separator, 'fortunes'), config, f'fortunes in {path}', 'word')


def load_words(config) -> sources.Loaded:
  path = pathlib.Path(config.data.path) if config.data.path else next(
      (pathlib.Path(p) for p in WORD_LISTS if pathlib.Path(p).exists()), None)
  if path is None:
    raise errors.DataError(f'words: none of {", ".join(WORD_LISTS)} exists; install Debian\'s wamerican '
                           '(apt-get install wamerican) or give data.path')
  return from_texts(read_examples(path, 'line', 'words'), config, f'words in {path}', 'char')


# TFDS text sets (data.name=tfds:NAME) and the feature that holds their text.
TFDS_TEXT = {'yelp_polarity_reviews': 'text', 'imdb_reviews': 'text', 'lm1b': 'text'}
OPTIONS = ('tokenizer', 'max_length', 'min_count', 'max_vocab', 'lowercase', 'too_long', 'separator')
TEXT = sources.Source('text', load_text, options=OPTIONS, check_config=check_config)
FORTUNES = sources.Source('fortunes', load_fortunes, options=OPTIONS, check_config=check_config)
WORDS = sources.Source('words', load_words, options=OPTIONS, check_config=check_config)
