"""MNIST with the protocol of the IWAE paper's Table 1 (Burda et al., 2016), one
stochastic layer: 784-200-200-50 tanh encoder and its mirror as decoder,
Bernoulli decoder, dynamic binarization, the full 60,000-image train set,
batch 20, Adam (0.9, 0.999, eps 1e-4), 3^i epochs at lr 1e-3 * 10^(-i/7) for
i = 0..7 (3,280 epochs), test NLL with 5,000 importance samples.

  python -m vae_jax.main --config=configs/mnist_iwae_paper.py:vae --workdir=runs/mnist_vae_paper
  python -m vae_jax.main --config=configs/mnist_iwae_paper.py:iwae --workdir=runs/mnist_iwae_paper
  python -m vae_jax.evaluate --workdir=runs/mnist_iwae_paper --num_importance_samples=5000

Published test NLL: VAE (k=1) 86.76 nats, IWAE (k=50) 84.78 nats. Needs MNIST
through TFDS (internet once) or --config.data.idx_dir. Not measured here
(RESULTS.md): 3,280 epochs are weeks on a 2-core CPU.
"""

from vae_jax import config_lib


def get_config(kind: str = 'iwae'):
  config = config_lib.base_config()
  config.data.name = 'mnist'
  config.data.binarize = 'dynamic'
  config.data.num_validation = 0
  config.batch_size = 20
  config.num_epochs = 3280                 # sum of 3^i, i = 0..7
  config.learning_rate = 1e-3
  config.optim.schedule = 'iwae_stages'
  config.optim.num_stages = 8
  config.optim.eps = 1e-4
  config.model.kind = kind
  config.model.num_importance_samples = 50 if kind == 'iwae' else 1
  config.model.hidden_sizes = (200, 200)
  config.model.activation = 'tanh'
  config.model.latent_dim = 50
  config.eval.num_importance_samples = 5000
  config.steps_per_dispatch = 500
  config.log_every_steps = 3000
  config.checkpoint_every_steps = 30_000
  return config
