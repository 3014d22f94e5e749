"""The shared base config and its validation.

Dataset configs in `configs/` import `base_config()` and override what differs.
Durations are stored in epochs or steps and resolved into steps at run time, so
overriding `num_epochs` on the command line never leaves a stale derived value.
"""

import difflib
import importlib
import importlib.util
import json
import os

import ml_collections
from ml_collections import config_dict

from vae_jax import data
from vae_jax import errors
from vae_jax import models
from vae_jax.models import blocks
from vae_jax.models import flows
from vae_jax.models import likelihoods
from vae_jax.models import priors

LIKELIHOODS = tuple(likelihoods.LIKELIHOODS)
CONTEXT_LIKELIHOODS = likelihoods.CONTEXT_LIKELIHOODS
PRIORS = tuple(priors.PRIORS)
FLOWS = tuple(flows.FLOWS)

ENCODERS = tuple(blocks.ENCODERS)
GAUSSIAN_VARIANCES = ('fixed', 'learned')
BINARIZATIONS = ('dynamic', 'static', 'none')
SCHEDULES = ('cosine', 'constant', 'iwae_stages')
ACTIVATIONS = tuple(blocks.ACTIVATIONS)
FEEDS = ('auto', 'device', 'stream')
MISSING = ('refuse', 'drop')
ANNEALING = ('linear', 'cyclical')
DISPATCH = ('auto', 'scan', 'unrolled', 'per_step')
DTYPES = ('float32', 'bfloat16')


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by every dataset config: an MLP VAE with a Bernoulli decoder."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 30
  c.batch_size = 128
  c.learning_rate = 1e-3

  c.optim = ml_collections.ConfigDict()
  c.optim.schedule = 'cosine'       # cosine (decay to final_lr_fraction) | constant | iwae_stages
  c.optim.num_stages = 8             # iwae_stages: stage i lasts 3^i epochs at lr * 10^(-i/7)
  c.optim.warmup_steps = 0           # linear learning-rate warm-up
  c.optim.final_lr_fraction = 0.0    # cosine end value, as a fraction of learning_rate
  c.optim.grad_clip_norm = 1000.0    # global-norm clipping; the loss is in nats/example, so norms are large
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.ema_decay = 0.0            # > 0: an EMA of the parameters (e.g. 0.999) is evaluated and saved with them
  c.optim.discriminator = ml_collections.ConfigDict()  # model.kind=factor_vae: the discriminator's own Adam
  c.optim.discriminator.learning_rate = 1e-4  # (Kim & Mnih's and disentanglement_lib's settings), constant
  c.optim.discriminator.b1 = 0.5
  c.optim.discriminator.b2 = 0.9

  c.data = ml_collections.ConfigDict()
  c.data.name = 'fashion_mnist'
  c.data.binarize = 'dynamic'        # dynamic | static | none
  c.data.num_validation = 10_000     # held out of the end of the train split
  c.data.feed = 'auto'               # auto | device | stream: the training set on the device (auto: when it
                                     # fits), or streamed from the host by Grain (vae_jax/training/feeds.py)
  c.data.workers = 1                 # stream: worker processes that read and decode batches (0: in the trainer)
  c.data.num_train = config_dict.placeholder(int)  # train on the first N training examples only (unset: all)
  c.data.path = config_dict.placeholder(str)       # array: a .npy/.npz file; image_folder: a folder;
                                                   # table: a .csv/.npz file
  c.data.image_size = config_dict.placeholder(tuple)  # (H, W): resize and centre-crop images to this
  c.data.test_fraction = 0.1         # held out as the test split, by data.split_seed, from data with no test split
  c.data.split_seed = 0              # which examples that held-out test split takes (fixed across seeds)
  c.data.columns = ()                # table: 'name:type' pairs (continuous | binary | categorical); unnamed
                                     # columns' types are inferred and logged
  c.data.missing = 'refuse'          # table: refuse | drop (rows with a missing value are left out, counted)
  c.data.variant = 'binary'          # dsprites: binary | color | noisy (disentanglement_lib's variants)
  c.data.dsprites_size = 64          # dsprites: the image side in pixels (64 as published; tiny sprites in tests)
  c.data.dsprites_factor_sizes = ()  # dsprites: values of shape, scale, orientation, x, y over the same ranges
                                     # (empty: the published 3, 6, 40, 32, 32)
  c.data.tokenizer = config_dict.placeholder(str)  # text, fortunes, words: char | word | sentencepiece (unset:
                                     # the source's own: word for text and fortunes, char for words)
  c.data.max_length = 64             # text: ids a row, the EOS included
  c.data.min_count = 1               # text: a token seen fewer times in the train split is UNK
  c.data.max_vocab = config_dict.placeholder(int)  # text: the most frequent tokens kept (specials included)
  c.data.lowercase = False           # text: lowercase before tokenizing
  c.data.too_long = 'truncate'       # text: truncate | drop | refuse an example longer than max_length
  c.data.separator = 'auto'          # text: line | blank | percent (fortune files) | auto (percent when a line is %)
  c.data.idx_dir = config_dict.placeholder(str)        # directory of MNIST-format IDX files
  c.data.tfds_data_dir = config_dict.placeholder(str)  # TFDS cache, when TFDS is used

  c.model = ml_collections.ConfigDict()
  c.model.kind = 'vae'               # vae | iwae | ae | hvae | cvae | vqvae (vae_jax/models: one module per kind)
  c.model.num_importance_samples = 1  # k of the training bound: 1 the ELBO, > 1 the IWAE bound (kind=iwae: always)
  c.model.encoder = 'mlp'            # mlp | conv: the block family (the decoder mirrors it)
  c.model.hidden_sizes = (500, 500)  # MLP widths, or conv channels (vae: one stride-2 conv each; hvae: per stage)
  c.model.activation = 'relu'        # relu | tanh | gelu | elu | swish | glu (gated, a * sigmoid(b))
  c.model.latent_dim = 50            # units of z (hvae: of each group; conv hvae: channels of each group)
  c.model.groups_per_stage = (1, 1)  # hvae: latent groups per stage (mlp: levels; conv: per resolution, full first)
  c.model.prior = 'standard_normal'  # standard_normal | vampprior | mog | class_gaussian (cvae: p(z|y))
  c.model.prior_components = 500     # K of the vampprior (pseudo-inputs) or the mog
  c.model.posterior_flow = 'none'    # none | iaf: inverse autoregressive flow on q(z|x)
  c.model.flow_steps = 2             # iaf steps
  c.model.flow_hidden_size = 256     # units of each iaf step's MADE layers
  c.model.beta = 1.0                 # weight of the KL term; 1 is the VAE
  c.model.kl_warmup_epochs = 0.0     # linear KL weight warm-up from 0 to beta
  c.model.annealing = 'linear'       # linear (over kl_warmup_epochs) | cyclical (Fu et al. 2019: annealing_cycles
  c.model.annealing_cycles = 4       # cycles over the run, each rising linearly from 0 to beta over its first
  c.model.annealing_ratio = 0.5      # annealing_ratio, then holding beta)
  c.model.free_bits = 0.0            # nats per latent group: a group's batch-mean KL below this costs this
  c.model.likelihood = 'bernoulli'   # bernoulli | gaussian | logistic_mixture | categorical (8-bit: binarize=none)
                                     # | table (the rows of a table, data.name=table: each column by its type)
  c.model.logistic_components = 10   # mixture components of logistic_mixture
  c.model.table_components = 1      # table: Gaussians in each continuous column's mixture (1: one Gaussian)
  c.model.pixel_context = 0          # bernoulli, logistic_mixture: radius r of the earlier pixels (r rows above,
                                     # r to the left) whose values shift each pixel's logit or means; 0: pixels
                                     # independent given z
  c.model.gaussian_variance = 'fixed'  # fixed | learned (one shared learned scale)
  c.model.gaussian_std = 0.1         # the fixed scale, or the learned scale's initial value
  c.model.dtype = 'float32'          # compute dtype: float32 | bfloat16 (params and loss stay float32)
  _add_options(c.model)             # each registered kind's own fields (Kind.options: a vqvae's codebook_size, ...)

  c.eval = ml_collections.ConfigDict()
  c.eval.every_epochs = 5            # validation ELBO every this many epochs (and at the end)
  c.eval.batch_size = 1000         # examples per evaluation batch
  c.eval.num_importance_samples = 100  # final test NLL estimate
  c.eval.sample_chunk = 10           # importance samples per example evaluated at once (batch_size * sample_chunk rows)
  c.eval.memory_budget_gb = 0.0      # GB one evaluation call may take on each device; 0 or None: half of the
                                     # device's memory (the host's on a CPU). Batch, then chunk, shrink to fit
  c.eval.binarization_seed = 0       # validation/test images are binarized once, with this seed
  c.eval.num_images = 64             # images in samples.png / reconstructions.png
  c.eval.samples_per_class = 1000    # conditional kinds: samples of each class the classifier labels
  c.eval.measures = True             # at the end, the metrics eval.metrics names (vae_jax/evaluation/metrics/)
  c.eval.metrics = ('representation', 'samples')  # probe/kNN accuracy; Frechet distances and the classifier's
                                     # view of samples; any registered metric (--config.eval.metrics=a,b)
  c.eval.disentanglement = ml_collections.ConfigDict()  # that metric's sample sizes; the defaults are
  c.eval.disentanglement.num_train = 10_000  # disentanglement_lib's. MIG, DCI and SAP: codes fitted on,
  c.eval.disentanglement.num_test = 5_000    # and codes DCI and SAP are scored on
  c.eval.disentanglement.score_batch_size = 64     # BetaVAE and FactorVAE scores: images a point, points
  c.eval.disentanglement.score_num_train = 10_000  # fitted on and points scored;
  c.eval.disentanglement.score_num_eval = 5_000
  c.eval.disentanglement.num_variance_estimate = 10_000  # FactorVAE: images of its global variances

  c.steps_per_dispatch = 100         # train steps between returns to Python; logging and
                                     # checkpoints happen between them
  c.dispatch = 'auto'                # auto | scan | unrolled | per_step: how those steps are compiled and
                                     # called (vae_jax/runtime/dispatch.py); auto times each at the start of a run
  c.skip_threshold = 1e5             # a step whose gradient norm is above this (or not finite) is skipped
  c.max_consecutive_skips = 20       # ... and this many skipped in a row stop the run
  c.log_every_steps = 200
  c.checkpoint_every_steps = 2000
  c.keep_checkpoints = 3

  c.extensions = ()                 # modules imported before the run, and wherever it is read back
                                     # (evaluate, load_run, report, a sweep's points): your own kinds,
                                     # objectives, sources and metrics register themselves there (README,
                                     # "Extending vae_jax"); on the command line --config.extensions=a.b,c
  c.writers = ('tensorboard',)       # where scalars and images go besides metrics.jsonl (always written):
                                     # tensorboard | wandb | mlflow (vae_jax/runs/writers.py), any of them; on the
                                     # command line --config.writers=tensorboard,wandb
  c.tracking = ml_collections.ConfigDict()  # the wandb and mlflow writers; a resumed run continues their runs
  c.tracking.run_name = config_dict.placeholder(str)  # the run's name in W&B and MLflow; unset: the workdir's name
  c.tracking.wandb_project = 'vae_jax'
  c.tracking.wandb_entity = config_dict.placeholder(str)  # W&B user or team; unset: your default entity
  c.tracking.wandb_mode = config_dict.placeholder(str)    # offline | online; unset: $WANDB_MODE, else offline
                                                           # (WORKDIR/wandb/offline-run-*, to upload: wandb sync)
  c.tracking.mlflow_tracking_uri = config_dict.placeholder(str)  # unset: $MLFLOW_TRACKING_URI, else the
                                                                  # SQLite store sqlite:///WORKDIR/mlflow.db
  c.tracking.mlflow_experiment = 'vae_jax'
  return c


def _add_options(model: ml_collections.ConfigDict) -> None:
  """The fields registered kinds declare as their own (`Kind.options`, under model.), with their defaults,
  read from models.MODELS now: a kind registered before base_config() is called brings its fields.
  Two kinds may share a field only with the same default."""
  owners = {}
  for name, kind in models.MODELS.items():
    for field, default in kind.options.items():
      if field in model and (field not in owners or model[field] != default):
        raise errors.ConfigError(f'model.kind={name} declares the field model.{field}, which '
                                 f'{"model.kind=" + owners[field] if field in owners else "the base config"} '
                                 'already has with another default; give the option another name')
      model[field] = default
      owners[field] = name


def build_on(here: str, name: str) -> ml_collections.ConfigDict:
  """The config of the file `name` beside `here` (a config file's __file__), to override.

  Loaded by path, so a config that builds on another works from any working
  directory (a sweep, a SLURM job, a notebook), not only from the repository root.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(here)), name)
  spec = importlib.util.spec_from_file_location(f'vae_jax_config_{os.path.splitext(name)[0]}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def with_defaults(stored: dict | ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A stored config (a run's config.json) with every field it predates set to its default.

  Defaults of new fields keep the old behaviour, so runs written before a
  field existed load, resume and compare as they were.
  """
  def merge(base: dict, saved: dict) -> dict:
    out = dict(base)
    for key, value in saved.items():
      out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out
  saved = stored.to_dict() if isinstance(stored, ml_collections.ConfigDict) else stored
  if 'placement' in saved.get('data', {}):  # renamed data.feed, whose 'stream' was 'host'
    saved = dict(saved, data=dict(saved['data']))
    placement = saved['data'].pop('placement')
    saved['data'].setdefault('feed', 'stream' if placement == 'host' else placement)
  defaults = json.loads(base_config().to_json_best_effort())  # tuples as lists, as in any config.json
  return ml_collections.ConfigDict(merge(defaults, saved))


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise errors.ConfigError(message)


def _one_of(name: str, value, allowed) -> None:
  _require(value in allowed, f'{name}={value!r} is not allowed; use one of {", ".join(map(str, allowed))}')


def _check_keys_and_types(config, base, prefix: str = '') -> None:
  """Every field must be one of the base config's, of its type (an int may stand for a float)."""
  for key in config.keys():
    name = f'{prefix}{key}'
    if key not in base:
      close = difflib.get_close_matches(key, list(base.keys()), n=1)
      hint = f'; did you mean {prefix}{close[0]}?' if close else f'; {prefix or "top-level "}fields are ' + ', '.join(
          sorted(base.keys()))
      raise errors.ConfigError(f'unknown config field {name}{hint}')
    value, expected = config[key], base[key]
    if isinstance(expected, ml_collections.ConfigDict):
      if not isinstance(value, (ml_collections.ConfigDict, dict)):
        raise errors.ConfigError(f'{name} must be a group of fields, got {value!r}')
      _check_keys_and_types(value, expected, f'{name}.')
      continue
    want = base.get_type(key) if hasattr(base, 'get_type') else type(expected)
    if value is None or expected is None and want is type(None):
      continue
    if want is float and isinstance(value, int) and not isinstance(value, bool):
      continue
    if want in (tuple, list) and isinstance(value, (tuple, list)):
      continue
    if not isinstance(value, want):
      raise errors.ConfigError(f'{name}={value!r} must be of type {want.__name__}, not {type(value).__name__}')


def name_list(value) -> tuple[str, ...]:
  """A config field that lists names (writers, eval.metrics, extensions) as a tuple: one name, or a list of
  them, where an item 'a,b' (a shell's --config.FIELD=a,b) counts as two."""
  value = (value,) if isinstance(value, str) else tuple(value or ())
  return tuple(name.strip() for item in value for name in str(item).split(',') if name.strip())


def import_extensions(config) -> None:
  """Imports every module config.extensions names, once each (Python caches them), so that what they
  register (a kind, an objective, a source, a metric) is known before the config's names are checked."""
  for name in name_list(config.get('extensions', ())):
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise errors.ConfigError(f'extensions: module {name!r} cannot be imported ({type(e).__name__}: {e}); put '
                               'its folder on PYTHONPATH (or run from it), or install its package') from None


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field and what it allows.

  Runs before any data is read or anything is compiled or written. The fields
  of the layers above check themselves where a run starts: config.writers
  (`runs.writers.check_config`) and config.eval.metrics
  (`evaluation.metrics.check_config`).
  """
  _check_keys_and_types(config, base_config())
  import_extensions(config)  # before the registries are read: they may add to them
  data.find(config.data.name)  # read now: a source registered later counts
  _one_of('data.binarize', config.data.binarize, BINARIZATIONS)
  _one_of('model.kind', config.model.kind, tuple(models.MODELS))  # likewise a kind
  _one_of('model.encoder', config.model.encoder, ENCODERS)
  _one_of('model.likelihood', config.model.likelihood, LIKELIHOODS)
  _one_of('model.prior', config.model.prior, PRIORS)
  _one_of('model.posterior_flow', config.model.posterior_flow, FLOWS)
  _one_of('model.gaussian_variance', config.model.gaussian_variance, GAUSSIAN_VARIANCES)
  _one_of('model.activation', config.model.activation, ACTIVATIONS)
  _one_of('optim.schedule', config.optim.schedule, SCHEDULES)
  _one_of('data.feed', config.data.feed, FEEDS)
  _one_of('data.missing', config.data.missing, MISSING)
  _one_of('model.annealing', config.model.annealing, ANNEALING)
  _require(config.model.annealing_cycles >= 1 and 0 < config.model.annealing_ratio <= 1,
           f'model.annealing_cycles={config.model.annealing_cycles} must be >= 1 and model.annealing_ratio='
           f'{config.model.annealing_ratio} in (0, 1]')
  _one_of('dispatch', config.dispatch, DISPATCH)
  _one_of('model.dtype', config.model.dtype, DTYPES)
  _require(config.steps_per_dispatch >= 1, f'steps_per_dispatch={config.steps_per_dispatch} must be >= 1')
  _require(config.model.latent_dim > 0, f'model.latent_dim={config.model.latent_dim} must be a positive integer')
  sizes = tuple(config.model.hidden_sizes)
  _require(len(sizes) > 0 and all(int(h) > 0 for h in sizes),
           f'model.hidden_sizes={sizes} must be a non-empty list of positive integers')
  _require(config.model.num_importance_samples >= 1,
           f'model.num_importance_samples={config.model.num_importance_samples} must be >= 1')
  _require(config.model.prior_components >= 1,
           f'model.prior_components={config.model.prior_components} must be >= 1')
  _require(config.model.flow_steps >= 1, f'model.flow_steps={config.model.flow_steps} must be >= 1')
  _require(config.model.flow_hidden_size >= 1,
           f'model.flow_hidden_size={config.model.flow_hidden_size} must be >= 1')
  _require(config.model.logistic_components >= 1,
           f'model.logistic_components={config.model.logistic_components} must be >= 1')
  _require(config.model.table_components >= 1,
           f'model.table_components={config.model.table_components} must be >= 1')
  _require(config.model.pixel_context >= 0, f'model.pixel_context={config.model.pixel_context} must be >= 0')
  if config.model.pixel_context > 0:
    _require(config.model.likelihood in CONTEXT_LIKELIHOODS,
             f'model.pixel_context={config.model.pixel_context} is a part of the {" and ".join(CONTEXT_LIKELIHOODS)} '
             f'likelihoods, not of {config.model.likelihood}; set model.pixel_context=0')
  _require(config.model.free_bits >= 0, f'model.free_bits={config.model.free_bits} must be >= 0 (nats per group)')
  _require(0 <= config.optim.ema_decay < 1, f'optim.ema_decay={config.optim.ema_decay} must be in [0, 1)')
  _require(config.model.beta >= 0, f'model.beta={config.model.beta} must be >= 0')
  _require(config.model.kl_warmup_epochs >= 0, f'model.kl_warmup_epochs={config.model.kl_warmup_epochs} must be >= 0')
  _require(config.model.gaussian_std > 0, f'model.gaussian_std={config.model.gaussian_std} must be > 0')
  _require(config.batch_size > 0, f'batch_size={config.batch_size} must be a positive integer')
  _require(config.num_epochs > 0, f'num_epochs={config.num_epochs} must be > 0')
  _require(config.learning_rate > 0, f'learning_rate={config.learning_rate} must be > 0')
  _require(config.optim.grad_clip_norm > 0, f'optim.grad_clip_norm={config.optim.grad_clip_norm} must be > 0')
  _require(config.optim.num_stages >= 1, f'optim.num_stages={config.optim.num_stages} must be >= 1')
  _require(config.optim.eps > 0, f'optim.eps={config.optim.eps} must be > 0')
  _require(config.optim.warmup_steps >= 0, f'optim.warmup_steps={config.optim.warmup_steps} must be >= 0')
  _require(0 <= config.optim.final_lr_fraction <= 1,
           f'optim.final_lr_fraction={config.optim.final_lr_fraction} must be in [0, 1]')
  _require(config.data.num_validation >= 0, f'data.num_validation={config.data.num_validation} must be >= 0')
  _require(0 < config.data.test_fraction < 1, f'data.test_fraction={config.data.test_fraction} must be in (0, 1)')
  _require(config.data.num_train is None or config.data.num_train >= 1,
           f'data.num_train={config.data.num_train} must be >= 1 (unset: all training examples)')
  _require(config.data.workers >= 0, f'data.workers={config.data.workers} must be >= 0')
  source, defaults = data.find(config.data.name), base_config().data
  for other in data.SOURCES.values():
    for field in other.options:
      _require(field in source.options or config.data[field] == defaults[field],
               f'data.{field}={config.data[field]!r} is an option of data.name={other.name}, not of '
               f'{config.data.name}; leave it unset')
  if source.check_config is not None:
    source.check_config(config)
  size = config.data.image_size
  _require(size is None or (len(size) == 2 and all(isinstance(d, int) and d >= 1 for d in size)),
           f'data.image_size={size} must be two positive integers H,W (e.g. --config.data.image_size=64,64)')
  _require(config.eval.every_epochs > 0, f'eval.every_epochs={config.eval.every_epochs} must be > 0')
  _require(config.eval.batch_size > 0, f'eval.batch_size={config.eval.batch_size} must be a positive integer')
  _require(config.eval.num_importance_samples >= 1,
           f'eval.num_importance_samples={config.eval.num_importance_samples} must be >= 1')
  _require(config.eval.sample_chunk >= 1, f'eval.sample_chunk={config.eval.sample_chunk} must be >= 1')
  budget = config.eval.memory_budget_gb
  _require(budget is None or 0 <= budget < float('inf'),
           f'eval.memory_budget_gb={budget} must be a number of GB >= 0 (0 or None: half of the device\'s memory)')
  _require(config.eval.num_images >= 1, f'eval.num_images={config.eval.num_images} must be >= 1')
  _require(config.skip_threshold > 0, f'skip_threshold={config.skip_threshold} must be > 0')
  _require(config.max_consecutive_skips >= 1,
           f'max_consecutive_skips={config.max_consecutive_skips} must be >= 1')
  _require(config.log_every_steps >= 1, f'log_every_steps={config.log_every_steps} must be >= 1')
  _require(config.checkpoint_every_steps >= 1,
           f'checkpoint_every_steps={config.checkpoint_every_steps} must be >= 1')
  _require(config.keep_checkpoints >= 1, f'keep_checkpoints={config.keep_checkpoints} must be >= 1')
  if config.data.binarize != 'none':
    _require(config.model.likelihood == 'bernoulli',
             f'data.binarize={config.data.binarize!r} makes binary data, which needs model.likelihood=bernoulli; '
             f'use data.binarize=none with the {config.model.likelihood} likelihood')
  models.check_config(config)

