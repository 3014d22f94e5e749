"""The beta-VAE baseline on procedural dSprites (data.name=dsprites: 64x64 binary, five factors, no download),
with the depth and widths of disentanglement_lib's convolutional encoder and decoder (four stride-2 convolutions
of 32, 32, 64, 64 channels, 10 latents, mirrored; ours are 3x3 and map straight to the latents, theirs 4x4
with a 256-unit layer between), on the CPU schedule of configs/dsprites_mlp.py.

  python -m vae_jax.main --config=configs/dsprites.py --workdir=runs/dsprites_vae
  python -m vae_jax.main --config=configs/dsprites.py --workdir=runs/dsprites_tcvae --config.model.kind=beta_tcvae

The other kinds run from it with --config.model.kind=annealed_vae | beta_tcvae | factor_vae | dip_vae (their
knobs: README, "Model family"). eval.json gets the disentanglement metrics (beta_vae_score, factor_vae_score,
mig, dci_*, sap) beside the ELBO and NLL. Schedule: one pass over a random 128,000 training images at batch 64,
2,000 Adam steps at 1e-3 (disentanglement_lib: 300,000 at 1e-4: --config.data.num_train=None
--config.num_epochs=29 --config.learning_rate=1e-4 on an accelerator). The metric's sample sizes are reduced
as in configs/dsprites_mlp.py; disentanglement_lib's are eval.disentanglement's defaults
(num_train=10000, num_test=5000, score_num_train=10000, score_num_eval=5000, num_variance_estimate=10000).
A conv step costs about 3x an MLP step on a CPU (BENCHMARKS.md); RESULTS.md's sweep uses the MLP.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'dsprites'
  config.data.binarize = 'none'      # already binary
  config.data.num_validation = 10_000
  config.data.test_fraction = 0.01   # 7,373 test images: the NLL's importance samples are costly at 64x64
  config.data.num_train = 128_000
  config.num_epochs = 1
  config.batch_size = 64
  config.learning_rate = 1e-3
  config.optim.schedule = 'constant'
  config.optim.discriminator.learning_rate = 1e-3  # factor_vae: as fast as the VAE (both 1e-4 in the paper)
  config.model.encoder = 'conv'
  config.model.hidden_sizes = (32, 32, 64, 64)  # four stride-2 convolutions, 64 -> 4, mirrored by the decoder
  config.model.latent_dim = 10
  config.model.likelihood = 'bernoulli'
  config.model.capacity_steps = 1_000  # annealed_vae: C rises over the first half (a third in the paper)
  config.eval.every_epochs = 1
  config.eval.num_importance_samples = 10
  config.eval.metrics = ('disentanglement',)
  config.eval.disentanglement.num_train = 3_000
  config.eval.disentanglement.num_test = 1_500
  config.eval.disentanglement.score_num_train = 500
  config.eval.disentanglement.score_num_eval = 250
  config.eval.disentanglement.num_variance_estimate = 5_000
  return config
