"""Compresses images losslessly with a trained run, by bits-back coding (`vae_jax.coding.bitsback`):

  python -m vae_jax.compress --workdir=RUN --split=test --out=FILE
  python -m vae_jax.compress --workdir=RUN --images=ARRAY.npy --out=FILE

--split takes the run's own split (a binarized dataset's test images binarized
once with the run's eval.binarization_seed, as its evaluation reads them);
--images any array of the run's image shape, (n, H, W, C) or (n, H, W): 0/1
values for a Bernoulli model, uint8 or k/255 values for an 8-bit one.
`python -m vae_jax.decompress` restores the array exactly. Prints the file's
size in bits/dim and the speed; exit 2 on bad input (one line), nothing written.
"""

import json

from absl import flags
from absl import logging

from vae_jax import cli
from vae_jax.coding import bitsback
from vae_jax.coding import inputs
from vae_jax.runs import run as run_lib


def _define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'The run whose model codes the images.')
  flags.DEFINE_string('out', None, 'The compressed file to write.')
  flags.DEFINE_enum('split', None, ['test', 'validation', 'train'], "Compress this split of the run's dataset.")
  flags.DEFINE_string('images', None, 'Compress this .npy array instead of a split.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
  flags.DEFINE_integer('bucket_bits', bitsback.DEFAULT_BUCKET_BITS, 'Each latent dimension is coded as one of '
                       '2^bucket_bits buckets of equal prior mass.')
  flags.DEFINE_integer('batch_size', bitsback.DEFAULT_BATCH_SIZE, 'Images per network batch.')
  flags.mark_flags_as_required(['workdir', 'out'])


def _compress():
  f = flags.FLAGS
  run = run_lib.load_run(f.workdir, f.step)
  images = inputs.load_images(run, f.split, f.images)
  logging.info('Compressing %d images with %s', len(images), run)
  print(json.dumps(bitsback.compress_run(run, images, f.out, f.bucket_bits, f.batch_size), indent=2))


if __name__ == '__main__':
  _define_flags()
  cli.run(_compress)
