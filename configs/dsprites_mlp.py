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
  config = config_lib.build_on(__file__, 'dsprites.py')  # its data, schedule and metric sizes
  config.model.encoder = 'mlp'
  config.model.hidden_sizes = (1200, 1200)
  config.dispatch = 'scan'
  return config
