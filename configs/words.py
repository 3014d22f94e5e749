"""A character-level sentence VAE on Debian's wamerican word list (data.name=words: about 100,000 English
words, no download; apt-get install wamerican), against its LSTM language model.

  python -m vae_jax.main --config=configs/words.py --workdir=runs/words_vae
  python -m vae_jax.main --config=configs/words.py --workdir=runs/words_lm --config.model.kind=lm

Each word is a sequence of its characters and an EOS (at most 24 ids; the few longer words are truncated,
counted in the log). The model and the remedies are those of configs/fortunes.py, with 64-unit character
embeddings and z of 16, for 3 epochs. It reaches a test NLL of 19.32 nats a word (2.030 a character, EOS
counted; 500 importance samples), KL 0.87 and MI 0.90 nats. The `lm` reaches 18.93 (1.989): RESULTS.md,
"Text", has every remedy's row, and 10-epoch runs (--config.num_epochs=10), in which z collapses and the
VAE stays 0.13 nats a word above its language model.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.build_on(__file__, 'fortunes.py')
  config.data.name = 'words'
  config.data.tokenizer = 'char'
  config.data.max_length = 24
  config.data.too_long = 'truncate'
  config.data.lowercase = False
  config.data.min_count = 1
  config.data.num_validation = 2_000
  config.data.test_fraction = 0.02   # 2,087 test words: 500 importance samples of each
  config.num_epochs = 3
  config.batch_size = 128
  config.model.latent_dim = 16
  config.model.embed_dim = 64
  config.model.kl_warmup_epochs = 1
  config.model.aggressive_epochs = 1.0
  config.eval.batch_size = 500
  config.eval.num_importance_samples = 500
  config.checkpoint_every_steps = 2_000
  config.keep_checkpoints = 3
  return config
