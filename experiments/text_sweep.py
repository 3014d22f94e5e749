"""The remedies for posterior collapse on a corpus, beside its LSTM language model (RESULTS.md, "Text").

  ./launch.sh sweep experiments/text_sweep.py            # words (character level)
  python -m vae_jax.sweep_report runs/text_sweep

(experiments/fortunes_sweep.py: the VAE points on fortunes, word level, each with its language model beside it.)

Six points of configs/words.py: the language model (`lm`), the sequence VAE with linear KL warm-up alone,
then with each remedy: cyclical annealing, word dropout 0.3, free bits (4 nats for z), and the aggressive
encoder (its first epoch). Every point trains on the same split and seed, so their test NLLs compare.
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/words.py'


def get_sweep():
  return sweeps.chain(
      [{'model.kind': 'lm'}],
      [{'model.kind': 'seqvae'}],
      [{'model.kind': 'seqvae', 'model.annealing': 'cyclical'}],
      [{'model.kind': 'seqvae', 'model.word_dropout': 0.3}],
      [{'model.kind': 'seqvae', 'model.free_bits': 4.0}],
      [{'model.kind': 'seqvae', 'model.aggressive_encoder': True}],
  )
