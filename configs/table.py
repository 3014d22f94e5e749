"""A VAE for the rows of your own table (.csv or .npz): each column by its type, synthetic rows scored.

  python -m vae_jax.main --config=configs/table.py --workdir=runs/my_table \
      --config.data.path=my_table.csv [--config.data.columns=age:continuous,smoker:binary,city:categorical]

Column types not given are inferred and logged (vae_jax/data/sources/table.py);
rows missing a value are refused, or left out with --config.data.missing=drop.
Continuous columns are standardized and modelled by a mixture of
model.table_components Gaussians, with a probability of their own for the
values many rows take (atoms: a count's 0, a share's 0 and 1), binary ones
by a Bernoulli, categorical ones by a softmax (the encoder reads them
one-hot). eval.json: nll_nats per row in
the data's own units, and the `table` metric (SDMetrics' quality score, column
shapes, column pair trends, detection accuracy) of as many synthetic rows as
the test split holds against it; WORKDIR/samples.csv holds those rows.
data.test_fraction of the rows is the test split; no validation split is held
out (a table's size is not known here: set data.num_validation for one).
"""

from vae_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config.data.name = 'table'
  config.data.binarize = 'none'
  config.data.num_validation = 0
  config.data.test_fraction = 0.1
  config.model.likelihood = 'table'
  config.model.table_components = 4
  config.model.hidden_sizes = (256, 256)
  config.model.latent_dim = 16
  config.num_epochs = 100
  config.batch_size = 256
  config.learning_rate = 1e-3
  config.eval.every_epochs = 25
  config.eval.metrics = ('table',)
  config.dispatch = 'scan'
  config.steps_per_dispatch = 50
  config.log_every_steps = 500
  return config
