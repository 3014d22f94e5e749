"""A run's bits-back compression beside the standard lossless codecs, on the same examples:

  python -m vae_jax.compression_table --workdir=RUN --split=test [--out=FILE.json]
  python -m vae_jax.compression_table --images=ARRAY.npy            (the codecs alone)

A run of token sequences is measured against gzip, bzip2, xz, zstd and brotli
on the same examples as UTF-8 text (one a line), per token with the EOS.

Prints the best setting of each codec in bits/dim, smallest first, and the
run's row as JSON (`vae_jax.coding.table`; the codecs, their tools and their
cache: `vae_jax.coding.codecs`). A missing tool is one line naming its Debian
package; exit 2.
"""

from absl import flags

from vae_jax import cli
from vae_jax.coding import bitsback
from vae_jax.coding import table


def _define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'Also compress with this run (its row leads the table).')
  flags.DEFINE_enum('split', None, ['test', 'validation', 'train'], "The run's split to compress.")
  flags.DEFINE_string('images', None, 'A .npy array of images instead of a split.')
  flags.DEFINE_integer('step', None, "The run's checkpoint (default: the latest; its -ELBO from eval_step{N}.json).")
  flags.DEFINE_string('text', None, 'A UTF-8 text file instead of a split (a run of token sequences).')
  flags.DEFINE_integer('bucket_bits', bitsback.DEFAULT_BUCKET_BITS, 'Latent buckets of the bits-back coder.')
  flags.DEFINE_integer('batch_size', bitsback.DEFAULT_BATCH_SIZE, 'Images per network batch of the coder.')
  flags.DEFINE_string('out', None, 'Also write the figures here as JSON.')
  flags.DEFINE_integer('workers', 2, 'Images coded at once by the per-image codec runs.')
  flags.DEFINE_bool('codec_cache', True, 'Reuse the codecs\' sizes of the same images from the cache.')


def _main():
  f = flags.FLAGS
  print(table.text(table.compression_table(f.workdir, f.split, f.images, f.bucket_bits, f.batch_size, f.workers,
                                           f.codec_cache, f.out, f.text, f.step)))


if __name__ == '__main__':
  _define_flags()
  cli.run(_main)
