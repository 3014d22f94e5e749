"""The remedies for posterior collapse on fortunes (word level), each beside its own LSTM language model;
RESULTS.md, "Text".

  ./launch.sh sweep experiments/fortunes_sweep.py --parallel=2
  for run in runs/fortunes_sweep/*/; do
    python -m vae_jax.evaluate --workdir=$run --best_validation --num_importance_samples=500 --measures
  done

Five points of configs/fortunes.py: the sequence VAE with linear KL warm-up alone, then with each remedy:
cyclical annealing, word dropout 0.3, free bits (4 nats for z), and the aggressive encoder (its first
epoch). Every point trains a language model beside its VAE (model.baseline_lm), on the same batches, so each
eval file gives the VAE's NLL minus its language model's, paired over the test texts. The run keeps a
checkpoint an epoch; the loop scores the one with the best validation ELBO (early stopping).
"""

from vae_jax.experiments import sweeps

BASE_CONFIG = 'configs/fortunes.py'


def get_sweep():
  vae = {'model.kind': 'seqvae', 'model.baseline_lm': True}
  return sweeps.chain(
      [vae],
      [{**vae, 'model.annealing': 'cyclical'}],
      [{**vae, 'model.word_dropout': 0.3}],
      [{**vae, 'model.free_bits': 4.0}],
      [{**vae, 'model.aggressive_encoder': True}],
  )
