"""Tokenizers: text to token ids and back, one class each, found by data.tokenizer in `TOKENIZERS`.

  char           one token per Unicode character (lossless)
  word           words and punctuation marks (`WORD_PATTERN`), joined back with spaces
  sentencepiece  a SentencePiece unigram model trained on the train split (`sentencepiece`, optional)

A tokenizer is fitted on the train split's texts only (`fit`), so held-out text
meets unknown tokens as a real user's would (`unk_id`, counted in the log). Its
vocabulary lives in the run's `SequenceSpec`, from which `from_spec` rebuilds
it: a finished run turns ids back into text from its own config.json. Ids 0-3
are pad, BOS, EOS and UNK in every tokenizer.
"""

import base64
import collections
import re
from typing import Iterable, Sequence

import numpy as np

from vae_jax import errors
from vae_jax.data import spec as spec_lib

SPECIALS = ('<pad>', '<bos>', '<eos>', '<unk>')
PAD, BOS, EOS, UNK = range(4)
WORD_PATTERN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


class Tokenizer:
  """A vocabulary (each id's token, `SPECIALS` first) and the rule that cuts text into its tokens."""
  name = ''

  def __init__(self, vocabulary: Sequence[str], lowercase: bool = False):
    self.vocabulary, self.lowercase = tuple(vocabulary), lowercase
    self.ids = {token: i for i, token in enumerate(self.vocabulary)}

  @classmethod
  def fit(cls, texts: Iterable[str], min_count: int = 1, max_vocab: int | None = None,
          lowercase: bool = False) -> 'Tokenizer':
    """The tokens of `texts` seen at least `min_count` times, the `max_vocab` most frequent (ties by first
    appearance, so the same texts give the same ids)."""
    counts = collections.Counter()
    for text in texts:
      counts.update(cls.cut(text.lower() if lowercase else text))
    kept = [t for t, c in counts.most_common() if c >= min_count and t not in SPECIALS]
    if max_vocab is not None:
      kept = kept[:max(0, max_vocab - len(SPECIALS))]
    return cls(SPECIALS + tuple(kept), lowercase)

  @staticmethod
  def cut(text: str) -> list[str]:
    raise NotImplementedError

  @staticmethod
  def join(tokens: list[str]) -> str:
    raise NotImplementedError

  def encode(self, text: str) -> list[int]:
    """The ids of `text`'s tokens (no BOS or EOS), UNK for those outside the vocabulary."""
    return [self.ids.get(t, UNK) for t in self.cut(text.lower() if self.lowercase else text)]

  def decode(self, ids: Iterable[int]) -> str:
    """The text of ids, stopping at the first EOS or pad; UNK shows as <unk>."""
    tokens = []
    for i in ids:
      if i in (EOS, PAD):
        break
      if i != BOS:
        tokens.append(self.vocabulary[i] if 0 <= i < len(self.vocabulary) else SPECIALS[UNK])
    return self.join(tokens)

  def spec_fields(self) -> dict:
    """What a SequenceSpec records of this tokenizer."""
    return {'tokenizer': self.name, 'vocabulary': self.vocabulary, 'lowercase': self.lowercase}


class Characters(Tokenizer):
  name = 'char'

  @staticmethod
  def cut(text: str) -> list[str]:
    return list(text)

  @staticmethod
  def join(tokens: list[str]) -> str:
    return ''.join(tokens)


class Words(Tokenizer):
  name = 'word'

  @staticmethod
  def cut(text: str) -> list[str]:
    return WORD_PATTERN.findall(text)

  @staticmethod
  def join(tokens: list[str]) -> str:
    return ' '.join(tokens)


class SentencePiece(Tokenizer):
  """A SentencePiece unigram model trained on the train split, held in the spec as its serialized model."""
  name = 'sentencepiece'

  def __init__(self, vocabulary: Sequence[str], lowercase: bool = False, model: bytes = b''):
    super().__init__(vocabulary, lowercase)
    self.model = model
    self._processor = _processor(model) if model else None

  @classmethod
  def fit(cls, texts: Iterable[str], min_count: int = 1, max_vocab: int | None = None,
          lowercase: bool = False) -> 'SentencePiece':
    del min_count  # the unigram model chooses its pieces by likelihood, not by count
    import io  # pylint: disable=g-import-not-at-top
    spm = _sentencepiece()
    texts = [t.lower() if lowercase else t for t in texts]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t.replace('\n', ' ') for t in texts), model_writer=model,
        vocab_size=max_vocab or 4000, model_type='unigram', pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
        hard_vocab_limit=False, num_threads=1, minloglevel=2, character_coverage=1.0)
    processor = _processor(model.getvalue())
    vocabulary = SPECIALS + tuple(processor.id_to_piece(i) for i in range(len(SPECIALS), processor.get_piece_size()))
    return cls(vocabulary, lowercase, model.getvalue())

  def encode(self, text: str) -> list[int]:
    return list(self._processor.encode(text.lower() if self.lowercase else text))

  def decode(self, ids: Iterable[int]) -> str:
    kept = []
    for i in ids:
      if i in (EOS, PAD):
        break
      kept.append(int(i))
    return self._processor.decode([i for i in kept if i != BOS])

  def spec_fields(self) -> dict:
    return super().spec_fields() | {'tokenizer_model': base64.b64encode(self.model).decode('ascii')}


def _sentencepiece():
  try:
    import sentencepiece  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.ConfigError('data.tokenizer=sentencepiece needs the sentencepiece package: pip install '
                             "'vae_jax[text]'") from None
  return sentencepiece


def _processor(model: bytes):
  processor = _sentencepiece().SentencePieceProcessor()
  processor.load_from_serialized_proto(model)
  return processor


TOKENIZERS: dict[str, type[Tokenizer]] = {t.name: t for t in (Characters, Words, SentencePiece)}


def from_spec(spec: spec_lib.SequenceSpec) -> Tokenizer:
  """The tokenizer a run's spec records."""
  if spec.tokenizer not in TOKENIZERS or not spec.vocabulary:
    raise ValueError(f'this sequence spec records no tokenizer ({spec.tokenizer!r}) and vocabulary to read its '
                     'ids as text')
  if spec.tokenizer == SentencePiece.name:
    return SentencePiece(spec.vocabulary, spec.lowercase, base64.b64decode(spec.tokenizer_model))
  return TOKENIZERS[spec.tokenizer](spec.vocabulary, spec.lowercase)


def texts_of(spec: spec_lib.SequenceSpec, ids: np.ndarray) -> list[str]:
  """The text of each row of ids (n, L)."""
  tokenizer = from_spec(spec)
  return [tokenizer.decode(row) for row in np.asarray(ids).tolist()]
