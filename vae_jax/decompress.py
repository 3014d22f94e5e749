"""Restores examples compressed by `vae_jax.compress`, exactly:

  python -m vae_jax.decompress --workdir=RUN --in=FILE --out=ARRAY.npy
  python -m vae_jax.decompress --workdir=RUN --in=FILE --out=TEXT.txt     (a run of token sequences)

RUN must be the run (and checkpoint) that made FILE, on the same backend;
another run, or a damaged file, is refused with one line (exit 2) and nothing
is written. The array has the shape and dtype that were compressed; a .txt
out writes a sequence run's examples as UTF-8 text instead, one a line (or
between % lines when any spans lines), each as the run's tokenizer reads its
ids back.
"""

import json
import os

from absl import flags
import numpy as np

from vae_jax import cli
from vae_jax import errors
from vae_jax.coding import bitsback
from vae_jax.coding import inputs
from vae_jax.runs import run as run_lib
from vae_jax.runtime import files


def _define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'The run that made the file.')
  flags.DEFINE_string('in', None, 'The compressed file.')
  flags.DEFINE_string('out', None, 'The .npy array to write.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
  flags.mark_flags_as_required(['workdir', 'in', 'out'])


def save_text(path: str, text: str) -> None:
  """The text under `path`, written whole or not at all."""
  with files.replacing(path) as tmp:
    tmp.write_text(text, encoding='utf-8')


def save_array(path: str, array: np.ndarray) -> None:
  """np.save to a temporary name, then a rename: never a half-written array under `path`."""
  with files.replacing(path, suffix='.npy') as tmp:  # np.save would add .npy to a name without it
    np.save(os.fspath(tmp), array, allow_pickle=False)


def _decompress():
  f = flags.FLAGS
  run = run_lib.load_run(f.workdir, f.step)
  text_out = f.out.endswith('.txt')
  if text_out and run.spec.kind != 'sequence':
    raise errors.ConfigError(f'--out={f.out}: a .txt out is for runs of token sequences; this run holds '
                             f'{run.spec.describe()}; give a .npy out')
  examples, figures = bitsback.decompress_run(run, getattr(f, 'in'))
  if text_out:
    save_text(f.out, inputs.as_text(run.spec, examples)[0])
  else:
    save_array(f.out, examples)
  print(json.dumps(dict(figures, out=f.out), indent=2))


if __name__ == '__main__':
  _define_flags()
  cli.run(_decompress)
