"""The table VAE on statsmodels' randhie: the RAND Health Insurance Experiment, 20,190 people, 10 columns.

  python -m vae_jax.main --config=configs/randhie.py --workdir=runs/randhie
  python -m vae_jax.training.tvae --config=configs/randhie.py --workdir=runs/randhie_vs_tvae  # with SDV's TVAE

Read from the copy statsmodels ships (no download). Columns as inferred: mdvis
(doctor visits, a count), lpi, fmde, physlm, disea continuous; lncoins (5
coinsurance levels) categorical; idp, hlthg, hlthf, hlthp binary. 2,019 rows
are the test split, 1,000 of the rest the validation split. About a minute on 2
CPU cores: test quality 0.961 (SDMetrics), detection accuracy 0.641, NLL 9.80
nats per row in the data's units; SDV's TVAE 0.867 and 0.965 in 390 s
(RESULTS.md, "Tables against SDV's TVAE").
"""

from vae_jax import config_lib
from vae_jax.data.sources import table


def get_config():
  config = config_lib.build_on(__file__, 'table.py')
  config.data.path = table.packaged('statsmodels', 'datasets', 'randhie', 'randhie.csv')
  config.data.num_validation = 1000
  return config
