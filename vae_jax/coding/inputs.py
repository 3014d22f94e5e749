"""The examples a coding command reads and writes: a split of the run's dataset, a .npy array, or (for a run
of token sequences) a UTF-8 text file; and a sequence run's examples as text."""

import pathlib

import numpy as np

from vae_jax import data
from vae_jax import errors
from vae_jax.data import tokenizers
from vae_jax.data.sources import text as text_source


def read_images(path: str) -> np.ndarray:
  """The array in a .npy file; a DataError names the file if it cannot be read."""
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise errors.DataError(f'cannot read --images={path} as a .npy array: {e}') from None


def encode_exactly(spec: data.SequenceSpec, texts: list[str], what: str) -> np.ndarray:
  """The rows (n, max_length) of `texts` under the run's tokenizer; a text that would not come back as it is
  (a token outside the vocabulary, a case the tokenizer lowers, spacing it does not keep, or more tokens than
  fit) is refused with one line naming it."""
  tokenizer = tokenizers.from_spec(spec)
  rows = np.full((len(texts), spec.max_length), spec.pad_id, np.int32)
  for i, t in enumerate(texts):
    ids = tokenizer.encode(t)
    why = (f'it has {len(ids)} tokens and the EOS, more than max_length={spec.max_length}'
           if len(ids) >= spec.max_length else None)
    if why is None and tokenizer.decode(ids) != t:
      why = (f'the {spec.tokenizer} tokenizer reads it back as {tokenizer.decode(ids)[:60]!r} (a token outside the '
             'vocabulary, a lowered case, or spacing it does not keep)')
    if why:
      raise errors.DataError(f'{what}, example {i} ({t[:40]!r}): {why}; this run cannot code it losslessly')
    rows[i, :len(ids)], rows[i, len(ids)] = ids, spec.eos_id
  return rows


def read_text(run, path: str) -> np.ndarray:
  """The examples of the UTF-8 file at `path` (split by the run's data.separator), as the run's token rows."""
  if run.spec.kind != 'sequence':
    raise errors.ConfigError(f'--text is for runs of token sequences; this run holds {run.spec.describe()}')
  file = pathlib.Path(path)
  if not file.is_file():
    raise errors.DataError(f'--text={path} is not a file')
  texts = text_source.split_examples(text_source.read_utf8(file), run.config.data.separator)
  if not texts:
    raise errors.DataError(f'--text={path} holds no text; give a file with at least one non-empty example')
  return encode_exactly(run.spec, texts, f'--text={path}')


def load_examples(run, split: str | None, images: str | None, text: str | None = None) -> np.ndarray:
  """The run's `split` (as its evaluation reads it: binarized once where the run binarizes), the array in the
  .npy file `images`, or the token rows of the text file `text`; exactly one of them."""
  if sum(a is not None for a in (split, images, text)) != 1:
    raise errors.ConfigError('give exactly one of --split, --images and --text')
  if images is not None:
    return read_images(images)
  if text is not None:
    return read_text(run, text)
  return getattr(data.load(run.config), split).decoded()


def as_text(spec: data.SequenceSpec, rows: np.ndarray) -> tuple[str, str]:
  """The examples of token rows as one UTF-8 text: one a line, or between % lines when any spans lines (as
  fortune files hold them); and which of the two, in words."""
  texts = tokenizers.texts_of(spec, rows)
  spans = any('\n' in t for t in texts)
  return (('\n%\n' if spans else '\n').join(texts) + '\n',
          'examples between % lines' if spans else 'one example a line')
