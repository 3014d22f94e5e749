"""dSprites on the CPU: the MLP of Chen et al. (2018)'s dSprites experiments (4096-1200-1200-10, mirrored)
on a schedule that fits a 2-core machine, with the disentanglement metric at reduced sample sizes. The base
of experiments/disentanglement_sweep.py (RESULTS.md, "Disentanglement on dSprites").

  python -m vae_jax.main --config=configs/dsprites_mlp.py --workdir=runs/dsprites_mlp
  python -m vae_jax.main --config=configs/dsprites_mlp.py --workdir=runs/dsprites_tcvae \
      --config.model.kind=beta_tcvae --config.model.tc_weight=10

Schedule: one pass over a random 128,000 of the training images (data.num_train, drawn by data.split_seed
like the test and validation images) at batch 64, 2,000 Adam steps at 1e-3; disentanglement_lib trains
300,000 steps at 1e-4. The metric's sample sizes (eval.disentanglement) are a tenth to a twentieth of
disentanglement_lib's, which eval.json records; configs/dsprites.py keeps the published ones. About 6 minutes
a run on one core.
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'dsprites'
  config.data.binarize = 'none'      # already binary
  config.data.num_validation = 10_000
  config.data.test_fraction = 0.01   # 7,373 test images
  config.data.num_train = 128_000
  config.num_epochs = 1
  config.batch_size = 64
  config.learning_rate = 1e-3
  config.optim.schedule = 'constant'
  config.optim.discriminator.learning_rate = 1e-3  # factor_vae: as fast as the VAE (both 1e-4 in the paper)
  config.model.encoder = 'mlp'
  config.model.hidden_sizes = (1200, 1200)
  config.model.latent_dim = 10
  config.model.likelihood = 'bernoulli'
  config.model.capacity_steps = 1_000  # annealed_vae: C rises over the first half (a third in the paper)
  config.dispatch = 'scan'
  config.eval.every_epochs = 1
  config.eval.num_importance_samples = 10
  config.eval.metrics = ('disentanglement',)
  config.eval.disentanglement.num_train = 3_000
  config.eval.disentanglement.num_test = 1_500
  config.eval.disentanglement.score_num_train = 500
  config.eval.disentanglement.score_num_eval = 250
  config.eval.disentanglement.num_variance_estimate = 5_000
  return config
