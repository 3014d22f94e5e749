"""The Fashion-MNIST MLP VAE trained to convergence, for RESULTS.md.

  python -m vae_jax.main --config=configs/fashion_mnist_long.py --workdir=runs/fashion_mnist_long
  python -m vae_jax.evaluate --workdir=runs/fashion_mnist_long --num_importance_samples=5000

The network of the Exemplar VAE paper's VAE baseline: gated (GLU) MLP
784-300-300-40; 400 epochs, KL warm-up over the first 50, cosine decay.
Measured on the 2-core CPU: test NLL 228.82 +- 0.76 nats (5000 importance
samples; published 228.70), ELBO -230.84, 30 of 40 units active, 41 min of
training shared with another run. RESULTS.md compares it with the ReLU
784-500-500-50 network trained the same way (229.21).
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'fashion_mnist'
  config.model.activation = 'glu'
  config.model.hidden_sizes = (300, 300)
  config.model.latent_dim = 40
  config.num_epochs = 400
  config.model.kl_warmup_epochs = 50.0
  config.eval.every_epochs = 10
  config.checkpoint_every_steps = 9750  # every 25 epochs
  config.keep_checkpoints = 20          # so any of them can be evaluated with --step
  return config
