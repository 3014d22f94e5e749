"""The beta-VAE baseline on procedural dSprites (data.name=dsprites: 64x64 binary, five factors, no download),
with a convolutional encoder and decoder of disentanglement_lib's depth, on a CPU-sized schedule.

  python -m vae_jax.main --config=configs/dsprites.py --workdir=runs/dsprites_vae
  python -m vae_jax.main --config=configs/dsprites.py --workdir=runs/dsprites_tcvae --config.model.kind=beta_tcvae

The other kinds run from it with --config.model.kind=annealed_vae | beta_tcvae | factor_vae | dip_vae (their
knobs: README, "Model family"). eval.json gets the disentanglement metrics (beta_vae_score, factor_vae_score,
mig, dci_*, sap) beside the ELBO and NLL. Schedule: 3 epochs of the 663,552 training images at batch 64 (about
31,000 steps), against the paper's 300,000 steps; disentanglement_lib's Adam at 1e-4. Not yet trained to its
result here: RESULTS.md will give it.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'dsprites'
  config.data.binarize = 'none'      # already binary
  config.data.num_validation = 10_000
  config.data.test_fraction = 0.01   # 7,373 test images: the NLL's importance samples are costly at 64x64
  config.num_epochs = 3
  config.batch_size = 64
  config.learning_rate = 1e-4
  config.optim.schedule = 'constant'
  config.model.encoder = 'conv'
  config.model.hidden_sizes = (32, 32, 64, 64)  # four stride-2 convolutions, 64 -> 4, mirrored by the decoder
  config.model.latent_dim = 10
  config.model.likelihood = 'bernoulli'
  config.eval.every_epochs = 1
  config.eval.num_importance_samples = 10
  config.eval.metrics = ('disentanglement',)
  return config
