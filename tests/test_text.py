"""Token sequences: tokenizers, the text sources and their refusals, the sequence kinds' likelihood against
exact answers (it sums to 1, padding changes nothing, an exact posterior recovers log p(x)), beam search,
the remedies' schedules, He et al.'s mutual information, and one trained run."""

import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import config_lib
from vae_jax import data
from vae_jax import errors
from vae_jax import models
from vae_jax.data import tokenizers
from vae_jax.data.sources import text as text_source
from vae_jax.evaluation import estimators
from vae_jax.evaluation.metrics import mutual_information
from vae_jax.evaluation.metrics import sequence as sequence_metric
from vae_jax.models import seqvae
from vae_jax.training import optimizer
from vae_jax.training import step as step_lib

CORPUS = """the cat sat on the mat
%
a dog ran in the park
%
the dog sat
%
a cat ran
%
the park is green
%
on the mat a cat
%
green is the cat
%
the dog ran on the mat
%
a mat is green
%
the cat is in the park
"""


def text_config(path, **overrides):
  """A tiny seqvae on the corpus at `path`."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  base = {'data.name': 'text', 'data.path': str(path), 'data.binarize': 'none', 'data.max_length': 8,
          'data.num_validation': 2, 'data.test_fraction': 0.2, 'batch_size': 4, 'model.kind': 'seqvae',
          'model.likelihood': 'categorical', 'model.latent_dim': 3, 'model.embed_dim': 8, 'model.rnn_size': 8,
          'eval.batch_size': 4, 'eval.num_importance_samples': 4, 'eval.sample_chunk': 4, 'num_epochs': 2}
  return tiny_config(**{**base, **overrides})


@pytest.fixture
def corpus(tmp_path):
  path = tmp_path / 'corpus.txt'
  path.write_text(CORPUS, encoding='utf-8')
  return path


# ---------------------------------------------------------------- tokenizers and sources


def test_tokenizers_round_trip_and_count_the_vocabulary():
  texts = ['Hello, world!', 'hello world', 'über café']
  chars = tokenizers.Characters.fit(texts)
  assert chars.vocabulary[:4] == tokenizers.SPECIALS
  for t in texts:
    assert chars.decode(chars.encode(t) + [tokenizers.EOS, 0, 0]) == t  # lossless, stopping at the EOS
  words = tokenizers.Words.fit(texts, min_count=2, lowercase=True)
  assert set(words.vocabulary[4:]) == {'hello', 'world'}  # seen twice once lowercased; the rest are UNK
  assert words.encode('Hello, there') == [words.ids['hello'], tokenizers.UNK, tokenizers.UNK]
  assert words.decode(words.encode('hello world')) == 'hello world'
  assert tokenizers.Words.fit(texts, max_vocab=6).vocabulary[4:] == ('world', 'Hello')  # most frequent first


def test_sentencepiece_round_trips_through_the_spec():
  pytest.importorskip('sentencepiece')
  texts = [line for line in CORPUS.splitlines() if line != '%'] * 5
  piece = tokenizers.SentencePiece.fit(texts, max_vocab=40)
  spec = data.SequenceSpec(len(piece.vocabulary), 16, **piece.spec_fields())
  again = tokenizers.from_spec(data.ExampleSpec.from_json(json.loads(json.dumps(spec.to_json()))))
  assert again.decode(again.encode('the cat sat on the mat')) == 'the cat sat on the mat'


def test_text_source_splits_tokenizes_on_train_and_pads(corpus):
  config = text_config(corpus)
  dataset = data.load(config)
  spec = dataset.spec
  assert spec.tokenizer == 'word' and spec.max_length == 8
  assert len(dataset.test.examples) == 2 and len(dataset.validation.examples) == 2
  assert len(dataset.train.examples) == 6
  for split in (dataset.train, dataset.validation, dataset.test):
    x = split.examples
    lengths = spec.lengths(x)
    assert (x[np.arange(len(x)), lengths - 1] == tokenizers.EOS).all()  # the EOS ends every row ...
    assert (spec.mask(x).sum(axis=1) == lengths).all() and (x[~spec.mask(x)] == tokenizers.PAD).all()  # ... pads
  texts = set(tokenizers.texts_of(spec, dataset.test.examples))
  assert texts <= {t.strip() for t in CORPUS.split('%')} | {t for t in texts if '<unk>' in t}


def test_too_long_truncates_drops_or_refuses(corpus):
  spec = data.load(text_config(corpus, **{'data.max_length': 4})).spec  # 'the cat sat on the mat': 6 words
  assert spec.max_length == 4
  dropped = data.load(text_config(corpus, **{'data.max_length': 5, 'data.too_long': 'drop', 'batch_size': 1,
                                             'data.num_validation': 1}))
  assert all(len(t.split()) <= 4 for t in tokenizers.texts_of(dropped.spec, dropped.train.examples))
  with pytest.raises(errors.DataError, match=r'example \d+ has \d+ tokens .* data.max_length=4'):
    data.load(text_config(corpus, **{'data.max_length': 4, 'data.too_long': 'refuse'}))


def test_bad_text_is_refused_in_one_line(tmp_path):
  empty = tmp_path / 'empty.txt'
  empty.write_text('\n%\n  \n', encoding='utf-8')
  with pytest.raises(errors.DataError, match='holds no text'):
    data.load(text_config(empty))
  latin = tmp_path / 'latin.txt'
  latin.write_bytes('first line\nsecond line\ncaf\xe9 au lait\n'.encode('latin-1'))
  with pytest.raises(errors.DataError, match=r'latin\.txt, line 3: bytes that are not UTF-8 \(e9'):
    data.load(text_config(latin))
  with pytest.raises(errors.ConfigError, match='data.tokenizer=.bytes. is not allowed'):
    config_lib.validate(text_config(empty, **{'data.tokenizer': 'bytes'}))
  with pytest.raises(errors.ConfigError, match='data.name=text reads data.path'):
    data.load(text_config(None, **{'data.path': None}))


def test_split_examples_by_separator():
  assert text_source.split_examples('a\n%\nb c\n%\n', 'auto') == ['a', 'b c']
  assert text_source.split_examples('a\nb\n\nc\n', 'blank') == ['a\nb', 'c']
  assert text_source.split_examples('a\n\nb\n', 'line') == ['a', 'b']
  assert text_source.split_examples('_\x08a bold', 'line') == ['a bold']  # overstriking keeps the last


# ---------------------------------------------------------------- the likelihood against exact answers


def _model(kind, vocab=6, max_length=4, **fields):
  spec = data.SequenceSpec(vocab_size=vocab, max_length=max_length)
  config = config_lib.base_config()
  config.data.binarize = 'none'
  config.model.kind, config.model.latent_dim, config.model.embed_dim, config.model.rnn_size = kind, 2, 5, 7
  for k, v in fields.items():
    config.model[k] = v
  model = models.make(config, spec)
  return model, models.init_params(model, spec, jax.random.key(0)), spec


def _all_rows(vocab: int, max_length: int) -> np.ndarray:
  """Every row of the data's form: 0 .. max_length - 1 tokens from 3 (UNK) .. vocab - 1, the EOS, pads."""
  rows = []
  for n in range(max_length):
    for tokens in itertools.product(range(3, vocab), repeat=n):
      rows.append(list(tokens) + [tokenizers.EOS] + [tokenizers.PAD] * (max_length - 1 - n))
  return np.asarray(rows, np.int32)


@pytest.mark.parametrize('kind', ['lm', 'seqvae'])
def test_the_masked_likelihood_sums_to_one_over_every_sequence(kind):
  model, params, spec = _model(kind)
  rows = _all_rows(spec.vocab_size, spec.max_length)  # 1 + 3 + 9 + 27 = 40 rows
  assert len(rows) == 40
  z = jnp.full((len(rows), model.latent_dim), 0.7)  # any one z
  decoder = lambda p, x, z: model.apply({'params': p}, seqvae.decoder_inputs(x), z if kind == 'seqvae' else None,
                                        method=lambda m, *a: m.decoder(*a))
  log_p = seqvae.masked_log_prob(decoder(params, jnp.asarray(rows), z), jnp.asarray(rows), 0)
  np.testing.assert_allclose(float(jnp.sum(jnp.exp(log_p))), 1.0, rtol=1e-5)


def test_padding_changes_nothing():
  short_model, params, _ = _model('seqvae', max_length=5)
  long_model, _, _ = _model('seqvae', max_length=9)  # the same parameters: no shape depends on the length
  x = np.asarray([[4, 5, 2, 0, 0], [5, 2, 0, 0, 0]], np.int32)
  x_long = np.concatenate([x, np.zeros((2, 4), np.int32)], axis=1)
  keys = jax.random.split(jax.random.key(1), 2)
  short = short_model.apply({'params': params}, jnp.asarray(x), keys)
  long = long_model.apply({'params': params}, jnp.asarray(x_long), keys)
  for k in ('log_px_z', 'kl', 'num_tokens'):
    np.testing.assert_allclose(short[k], long[k], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(short['num_tokens'], [3, 2])


def test_importance_sampling_recovers_log_px_when_the_posterior_is_exact():
  """A decoder that ignores z (its z reaches only the initial state, through zero weights) makes p(z|x) the
  prior; an encoder with zero weights outputs the prior. Every importance weight is then log p(x)."""
  model, params, _ = _model('seqvae', z_to_decoder='init')
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: jnp.zeros_like(p) if any(getattr(k, 'key', '') in ('q',) for k in path) or (
          [getattr(k, 'key', '') for k in path][-2:] == ['z_to_state', 'kernel']) else p, params)
  x = jnp.asarray([[4, 5, 2, 0], [5, 2, 0, 0], [2, 0, 0, 0]], jnp.int32)
  keys = jax.random.split(jax.random.key(3), 3)
  terms = model.apply({'params': params}, x, keys)
  out = estimators.importance_sampled_terms(model, params, x, keys, num_samples=7, chunk=3)
  np.testing.assert_allclose(out['log_px'], terms['log_px_z'], rtol=1e-6)
  np.testing.assert_allclose(out['kl'], 0.0, atol=1e-6)
  np.testing.assert_allclose(out['elbo'], out['log_px'], rtol=1e-6)


def test_beam_search_finds_the_most_probable_sequence():
  model, params, spec = _model('lm', vocab=6, max_length=4)
  rows = _all_rows(spec.vocab_size, spec.max_length)
  log_p = model.apply({'params': params}, jnp.asarray(rows), jax.random.split(jax.random.key(0), len(rows)))
  best = rows[int(jnp.argmax(log_p['log_px_z']))]
  beam = model.apply({'params': params}, None, 1, None, 'beam', 1.0, 40, method=model.generate)
  np.testing.assert_array_equal(np.asarray(beam)[0], best)  # a beam as wide as every prefix: exact
  greedy = model.apply({'params': params}, None, 1, None, 'greedy', method=model.generate)
  row_of = {tuple(r): i for i, r in enumerate(rows.tolist())}
  assert log_p['log_px_z'][row_of[tuple(np.asarray(greedy)[0].tolist())]] <= log_p['log_px_z'].max()


def test_word_dropout_replaces_words_only_in_training():
  inputs = jnp.asarray([[1, 4, 5, 6, 2, 0, 0]] * 400, jnp.int32)
  keys = jax.random.split(jax.random.key(0), 400)
  dropped = seqvae.dropped_words(inputs, keys, 0.25)
  assert ((dropped == tokenizers.UNK) == ((inputs != dropped))).all()  # a change is to UNK
  assert (dropped[:, 0] == 1).all() and (dropped[:, 5:] == 0).all()  # never BOS or padding
  np.testing.assert_allclose(float(jnp.mean(dropped[:, 1:5] == tokenizers.UNK)), 0.25, atol=0.03)
  model, params, _ = _model('seqvae', word_dropout=0.5)
  x = jnp.asarray([[4, 5, 4, 2]] * 4, jnp.int32)
  keys = jax.random.split(jax.random.key(1), 4)
  clean = model.apply({'params': params}, x, keys)
  noisy = model.apply({'params': params}, x, keys, method=model.training_terms)
  assert not np.allclose(clean['log_px_z'], noisy['log_px_z'])
  np.testing.assert_allclose(clean['kl'], noisy['kl'])


# ---------------------------------------------------------------- remedies' schedules


def test_cyclical_annealing_rises_and_holds_each_cycle():
  config = config_lib.base_config()
  config.num_epochs, config.model.beta = 4, 2.0
  config.model.annealing, config.model.annealing_cycles, config.model.annealing_ratio = 'cyclical', 2, 0.5
  weight = step_lib.kl_weight_schedule(config, steps_per_epoch=10)  # cycles of 20 steps, rising over 10
  got = [float(weight(jnp.asarray(s))) for s in (0, 5, 10, 19, 20, 25, 39)]
  np.testing.assert_allclose(got, [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 2.0])


def test_gated_optimizer_stands_still_off_its_steps():
  tx = optimizer.gated(optax.sgd(1.0), lambda count: count % 3 == 2)
  params = {'w': jnp.ones(2)}
  state = tx.init(params)
  moved = []
  for _ in range(6):
    updates, state = tx.update({'w': jnp.ones(2)}, state, params)
    moved.append(bool(jnp.any(updates['w'] != 0)))
  assert moved == [False, False, True, False, False, True]


def test_aggressive_phase_alternates_encoder_and_decoder_updates(corpus):
  from vae_jax.training import setup as setup_lib  # pylint: disable=g-import-not-at-top
  config = text_config(corpus, **{'model.aggressive_encoder': True, 'model.aggressive_encoder_steps': 2,
                                  'model.aggressive_epochs': 1.0, 'batch_size': 2})
  setup = setup_lib.make_setup(config, data.load(config))
  state = setup.initial_state()
  step = jax.jit(setup.train_step)
  batch = {'x': jnp.asarray(setup.dataset.train.examples[:2])}
  changed = []
  for _ in range(3):  # steps 0, 1: the encoder alone; step 2: the decoder alone
    new, _ = step(state, batch, setup.train_key)
    differs = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new.params, state.params)
    changed.append((any(jax.tree.leaves(differs['decoder'])),
                    any(v for k, sub in differs.items() if k != 'decoder' for v in jax.tree.leaves(sub))))
    state = new
  assert changed == [(False, True), (False, True), (True, False)]


# ---------------------------------------------------------------- measures and a trained run


def test_mutual_information_matches_the_gaussian_closed_form():
  """x ~ N(0, 1), q(z|x) = N(a x, v): I(x; z) = 0.5 log(1 + a^2 / v) exactly."""
  rng = np.random.default_rng(0)
  a, v, n = 1.5, 0.75, 4000
  x = rng.standard_normal((n, 1))
  mi = mutual_information.mutual_information(a * x, np.full((n, 1), math.log(v)), jax.random.key(0))
  np.testing.assert_allclose(mi, 0.5 * math.log(1 + a * a / v), atol=0.03)


def test_token_accuracy_counts_tokens_and_eos_not_padding():
  x = np.asarray([[4, 5, 2, 0], [6, 2, 0, 0]])
  decoded = np.asarray([[4, 6, 2, 0], [6, 2, 7, 7]])
  assert sequence_metric.token_accuracy(x, decoded) == (4 / 5, 0.5)


def test_a_trained_seqvae_reports_per_token_figures_and_text(corpus, tmp_path):
  from vae_jax.training import train  # pylint: disable=g-import-not-at-top
  config = text_config(corpus, **{'eval.measures': True, 'eval.metrics': ('mutual_information', 'sequence'),
                                  'model.baseline_lm': True})
  results = train.train_and_evaluate(config, tmp_path / 'run')
  n = results['num_examples']
  assert results['num_tokens'] == int(data.load(config).spec.lengths(data.load(config).test.examples).sum())
  np.testing.assert_allclose(results['nll_per_token_nats'], results['nll_nats'] * n / results['num_tokens'],
                             rtol=1e-6)
  np.testing.assert_allclose(results['perplexity'], math.exp(results['nll_per_token_nats']), rtol=1e-6)
  # the language model trained beside it, on the same test sequences
  np.testing.assert_allclose(results['nll_minus_lm_nats'], results['nll_nats'] - results['lm_nll_nats'], rtol=1e-5)
  np.testing.assert_allclose(results['lm_nll_per_token_nats'], results['lm_nll_nats'] * n / results['num_tokens'],
                             rtol=1e-6)
  assert results['mutual_information_nats'] is not None and 0 <= results['reconstruction_token_accuracy'] <= 1
  samples = (tmp_path / 'run' / 'samples.txt').read_text(encoding='utf-8')
  assert '## Interpolation' in samples and samples.count('\n> ') == 2
  from vae_jax.viz import report  # pylint: disable=g-import-not-at-top
  assert '## samples.txt' in report.write_report(tmp_path / 'run').read_text()  # the text, in the report
  saved = json.loads((tmp_path / 'run' / 'config.json').read_text())['resolved']['example_spec']
  assert saved['tokenizer'] == 'word' and 'cat' in saved['vocabulary']


def test_resume_on_another_vocabulary_is_refused(corpus, tmp_path):
  from vae_jax.training import train  # pylint: disable=g-import-not-at-top
  config = text_config(corpus, **{'num_epochs': 1})
  train.train_and_evaluate(config, tmp_path / 'run')
  corpus.write_text(CORPUS.replace('cat', 'cow'), encoding='utf-8')
  with pytest.raises(errors.WorkdirError, match='vocabulary'):
    train.train_and_evaluate(config, tmp_path / 'run')


def test_tfds_text_sets_keep_their_test_split(monkeypatch, corpus):
  from vae_jax.data.sources import tfds as tfds_source  # pylint: disable=g-import-not-at-top
  texts = {'train': ['good food here', 'bad food', 'good service here'], 'test': ['good zebra food']}
  monkeypatch.setattr(tfds_source, 'read_texts', lambda name, split, data_dir, feature: texts[split])
  config = text_config(corpus, **{'data.name': 'tfds:yelp_polarity_reviews', 'data.path': None,
                                  'data.num_validation': 1, 'batch_size': 1})
  config_lib.validate(config)
  dataset = data.load(config)
  assert tokenizers.texts_of(dataset.spec, dataset.test.examples) == ['good <unk> food']  # its own test split
  assert len(dataset.train.examples) + len(dataset.validation.examples) == 3


def test_evaluation_reads_short_sequences_first_and_cuts_batches_exactly():
  from vae_jax import evaluation  # pylint: disable=g-import-not-at-top
  model, params, spec = _model('seqvae', vocab=7, max_length=20)
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 21, size=24)
  x = np.asarray([list(rng.integers(4, 7, size=n - 1)) + [2] + [0] * (20 - n) for n in lengths], np.int32)
  assert spec.trimmed(x[np.argsort(lengths)][:6]).shape[1] == min(20, -(-np.sort(lengths)[5] // 8) * 8)
  evaluator = evaluation.Evaluator(model, 6, 3, 3)
  key = jax.random.key(4)
  as_stored = evaluator.per_example(params, x, key)  # no spec: full rows, in order
  by_length = evaluator.per_example(params, x, key, decode=spec.decode, spec=spec)
  for k in ('log_px', 'elbo', 'kl', 'mean'):
    np.testing.assert_allclose(by_length[k], as_stored[k], rtol=1e-5, atol=1e-5)


def test_a_text_run_compresses_text_losslessly_beside_the_standard_codecs(corpus, tmp_path):
  import types  # pylint: disable=g-import-not-at-top
  from vae_jax.coding import bitsback  # pylint: disable=g-import-not-at-top
  from vae_jax.coding import inputs  # pylint: disable=g-import-not-at-top
  from vae_jax.coding import table  # pylint: disable=g-import-not-at-top
  config = text_config(corpus, **{'data.tokenizer': 'char', 'data.max_length': 24})
  config_lib.validate(config)
  dataset = data.load(config)
  model = models.make(config, dataset.spec)
  run = types.SimpleNamespace(model=model, params=models.init_params(model, dataset.spec, jax.random.key(0)),
                              spec=dataset.spec, config=config, step=0, workdir=tmp_path)
  test = dataset.test.decoded()
  result = table.CODEC_ROWS['sequence'](run, test, 1, False)
  assert [r['codec'] for r in result['best']] == ['gzip', 'bzip2', 'xz', 'zstd', 'brotli']
  tokens = int(dataset.spec.lengths(test).sum())
  assert result['text_bytes'] == len(inputs.as_text(dataset.spec, test)[0].encode()) and result['dims'] == tokens
  assert result['rows'][0]['how'] == 'the UTF-8 text, one example a line'
  row = table.model_row(run, test, 8, 200, '--split=test')  # checks the round trip itself
  assert row['num_examples'] == len(test) and row['bits_per_dim'] == pytest.approx(8 * row['bytes'] / tokens)
  # A text file in, the same text out.
  (tmp_path / 'in.txt').write_text('a cat\nthe mat is green\n', encoding='utf-8')
  rows = inputs.load_examples(run, None, None, str(tmp_path / 'in.txt'))
  bitsback.compress_run(run, rows, tmp_path / 'in.vbb')
  restored, _ = bitsback.decompress_run(run, tmp_path / 'in.vbb')
  assert inputs.as_text(dataset.spec, restored)[0] == 'a cat\nthe mat is green\n'
  # A character the run never saw would come back as UNK: refused, naming the example.
  (tmp_path / 'bad.txt').write_text('a cat\na zebra\n', encoding='utf-8')
  with pytest.raises(errors.DataError, match=r"example 1 \('a zebra'\).*cannot code it losslessly"):
    inputs.load_examples(run, None, None, str(tmp_path / 'bad.txt'))


def test_a_baseline_lm_trains_beside_the_vae_without_changing_it(corpus):
  """model.baseline_lm: the VAE's parameters after a few steps are those of the run without it (the LM is its
  own parameter group, its own Adam and clipping), and the LM's move."""
  from vae_jax.training import setup as setup_lib  # pylint: disable=g-import-not-at-top
  from vae_jax.training.objectives import base as objectives_base  # pylint: disable=g-import-not-at-top
  params = {}
  for baseline in (False, True):
    config = text_config(corpus, **{'model.baseline_lm': baseline, 'batch_size': 2})
    setup = setup_lib.make_setup(config, data.load(config))
    state = first = setup.initial_state()
    step = jax.jit(setup.train_step)
    batch = {'x': jnp.asarray(setup.dataset.train.examples[:2])}
    for _ in range(3):
      state, _ = step(state, batch, setup.train_key)
    params[baseline] = (first.params, state.params)
  (_, alone), (start, beside) = params[False], params[True]
  assert set(beside) == set(alone) | {seqvae.BASELINE}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), alone,
               {k: v for k, v in beside.items() if k != seqvae.BASELINE})
  assert any(bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(start[seqvae.BASELINE]),
                                                    jax.tree.leaves(beside[seqvae.BASELINE])))
  objective = setup_lib.objectives.make(text_config(corpus, **{'model.baseline_lm': True,
                                                               'model.aggressive_encoder': True}))
  labels = objectives_base.labels_of(beside, objective.group_of)
  assert {k: set(jax.tree.leaves(v)) for k, v in labels.items()} == {
      'encoder': {'encoder'}, 'encoder_embed': {'encoder'}, 'q': {'encoder'}, 'decoder': {'decoder'},
      seqvae.BASELINE: {seqvae.BASELINE}}


def test_the_paired_difference_with_the_baseline_lm():
  terms = {'num_tokens': np.array([3.0, 5.0, 2.0]), 'log_px': np.array([-6.0, -9.0, -3.0]),
           'lm_nll_nats': np.array([6.5, 8.0, 3.5])}
  out = seqvae.SeqVAE.summarize(terms)
  diff = np.array([6.0 - 6.5, 9.0 - 8.0, 3.0 - 3.5])
  assert out['lm_nll_per_token_nats'] == pytest.approx(18.0 / 10)
  assert out['nll_minus_lm_nats'] == pytest.approx(diff.mean())
  assert out['nll_minus_lm_stderr_nats'] == pytest.approx(diff.std(ddof=1) / math.sqrt(3))
  with pytest.raises(errors.ConfigError, match='baseline_lm'):
    config_lib.validate(text_config('x.txt', **{'model.kind': 'lm', 'model.baseline_lm': True}))
