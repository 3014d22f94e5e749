"""The names of what a run's directory holds, in one place, so every module that reads or writes a workdir
agrees on them. Plain strings and no imports: a sweep driver reads them without loading JAX."""

CONFIG_FILE = 'config.json'        # the full config and what it resolved to
CHECKPOINT_DIR = 'checkpoints'     # orbax checkpoints, one folder a step
EVAL_FILE = 'eval.json'            # the final test figures (vae_jax.evaluate writes eval_*.json beside it)
METRICS_FILE = 'metrics.jsonl'     # every logged step's scalars
DISPATCH_FILE = 'dispatch.json'    # the measured dispatch mode, reused on resume
LOCK_FILE = 'run.lock'             # held while a run trains
TRACKERS_FILE = 'trackers.json'    # the W&B / MLflow runs a resumed run continues
