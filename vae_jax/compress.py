"""Compresses examples losslessly with a trained run, by bits-back coding (`vae_jax.coding.bitsback`):

  python -m vae_jax.compress --workdir=RUN --split=test --out=FILE
  python -m vae_jax.compress --workdir=RUN --images=ARRAY.npy --out=FILE
  python -m vae_jax.compress --workdir=RUN --text=FILE.txt --out=FILE     (a run of token sequences)

--split takes the run's own split (a binarized dataset's test images binarized
once with the run's eval.binarization_seed, as its evaluation reads them; a
text run's token ids); --images any array of the run's example shape: images
(n, H, W, C) or (n, H, W) of 0/1 values for a Bernoulli model, uint8 or k/255
values for an 8-bit one, or token-id rows (n, max_length); --text a UTF-8 file
of examples split as the run's data.separator says, each of which must come
back exactly through the run's tokenizer (else it is refused, naming it).
`python -m vae_jax.decompress` restores them exactly. Prints the file's size
in bits/dim (per pixel and channel, or per token with the EOS) and the speed;
exit 2 on bad input (one line), nothing written.
"""

import json

from absl import flags
from absl import logging

from vae_jax import cli
from vae_jax.coding import bitsback
from vae_jax.coding import inputs
from vae_jax.runs import run as run_lib


def _define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'The run whose model codes the examples.')
  flags.DEFINE_string('out', None, 'The compressed file to write.')
  flags.DEFINE_enum('split', None, ['test', 'validation', 'train'], "Compress this split of the run's dataset.")
  flags.DEFINE_string('images', None, 'Compress this .npy array (images, or token-id rows) instead of a split.')
  flags.DEFINE_string('text', None, 'Compress the examples of this UTF-8 text file (a run of token sequences).')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
  flags.DEFINE_integer('bucket_bits', bitsback.DEFAULT_BUCKET_BITS, 'Each latent dimension is coded as one of '
                       '2^bucket_bits buckets of equal prior mass.')
  flags.DEFINE_integer('batch_size', bitsback.DEFAULT_BATCH_SIZE, 'Examples per network batch.')
  flags.mark_flags_as_required(['workdir', 'out'])


def _compress():
  f = flags.FLAGS
  run = run_lib.load_run(f.workdir, f.step)
  examples = inputs.load_examples(run, f.split, f.images, f.text)
  logging.info('Compressing %d examples with %s', len(examples), run)
  print(json.dumps(bitsback.compress_run(run, examples, f.out, f.bucket_bits, f.batch_size), indent=2))


if __name__ == '__main__':
  _define_flags()
  cli.run(_compress)
