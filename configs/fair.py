"""The table VAE on statsmodels' fair: Fair's 1974 survey of extramarital affairs, 6,366 women, 9 columns.

  python -m vae_jax.main --config=configs/fair.py --workdir=runs/fair
  python -m vae_jax.training.tvae --config=configs/fair.py --workdir=runs/fair_vs_tvae  # with SDV's TVAE

Read from the copy statsmodels ships (no download). Survey answers in a few
levels each (rate_marriage, age, yrs_married, children, religious, educ,
occupation, occupation_husb: categorical as inferred) and affairs, a
zero-inflated continuous measure. 637 rows are the test split, 500 of the rest
the validation split. Half a minute on 2 CPU cores: test quality 0.930
(SDMetrics), detection accuracy 0.559, NLL 11.46 nats per row in the data's
units; SDV's TVAE 0.889 and 0.709 in 62 s (RESULTS.md, "Tables against SDV's
TVAE").
"""

from vae_jax import config_lib
from vae_jax.data.sources import table


def get_config():
  config = config_lib.build_on(__file__, 'table.py')
  config.data.path = table.packaged('statsmodels', 'datasets', 'fair', 'fair.csv')
  config.data.num_validation = 500
  return config
