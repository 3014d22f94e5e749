"""A run's bits-back compression beside the standard lossless codecs, on the same examples: what
`python -m vae_jax.compression_table` prints, callable as `compression_table(...)`.

With a run, the examples are compressed and decompressed with it
(`vae_jax.coding.bitsback`, checked exact), and its row gives the file's
bits/dim (per pixel and channel, or per token with the EOS), its distance
from the run's test -ELBO (eval.json) and the speed each way; the codecs'
rows come from `vae_jax.coding.codecs.measure` (images) or `measure_text`
(a sequence run's examples as text, the same text it restores).
"""

import json
import math
import os
import tempfile

import numpy as np

from vae_jax import errors
from vae_jax.coding import bitsback
from vae_jax.coding import codecs
from vae_jax.coding import inputs
from vae_jax.runs import evaluate as evaluate_runs
from vae_jax.runs import names
from vae_jax.runs import run as run_lib
from vae_jax.runtime import files


def model_row(run, examples: np.ndarray, bucket_bits: int, batch_size: int, source: str) -> dict:
  """The run's own compression of `examples`: file size, speed, and the check that it restores them."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'examples.vbb')
    figures = bitsback.compress_run(run, examples, path, bucket_bits, batch_size)
    restored, back = bitsback.decompress_run(run, path)
  if not np.array_equal(restored, examples):
    raise RuntimeError('bits-back decompression did not restore the examples exactly')
  m = run.config.model
  if figures['latent_dim']:
    codec, how = 'vae_jax bits-back', f'ANS, {bucket_bits}-bit latent buckets, header and seed words included'
  else:  # the language model: no latent
    codec, how = 'vae_jax ANS', 'ANS under p(x) (no latent, no bits back), header included'
  return dict(figures, **back, codec=f'{codec} ({m.kind}, {m.likelihood})', how=how,
              command=f'python -m vae_jax.compress --workdir={run.workdir} {source} --out=FILE', bytes=figures['file_bytes'])


def _text_rows(run, rows: np.ndarray, workers: int, cache: bool) -> dict:
  del workers, cache  # the text codecs take a moment
  text, layout = inputs.as_text(run.spec, rows)
  return codecs.measure_text(text, int(np.sum(run.spec.lengths(rows))), f'the UTF-8 text, {layout}')


# The standard codecs' rows of a run's examples, by ExampleSpec.kind (as bitsback.EXAMPLE_CODECS).
CODEC_ROWS = {'image': lambda run, images, workers, cache: codecs.measure(images, workers, cache),
              'sequence': _text_rows}


def compression_table(workdir: str | None = None, split: str | None = None, images: str | None = None,
                      bucket_bits: int = bitsback.DEFAULT_BUCKET_BITS, batch_size: int = bitsback.DEFAULT_BATCH_SIZE,
                      workers: int = 2, codec_cache: bool = True, out: str | None = None,
                      text: str | None = None, step: int | None = None) -> dict:
  """The codecs' rows on the examples (a split of the run in `workdir`, the .npy array `images`, or a sequence
  run's `text` file), the run's own row first among the best when a run is given; also written to `out` as
  JSON when given. A sequence run's codecs code the same examples as text (`inputs.as_text`). `step` takes
  that checkpoint of the run (default: the latest), and its -ELBO from eval_step{step}.json."""
  run = None
  if workdir:
    run = run_lib.load_run(workdir, step)
    examples = inputs.load_examples(run, split, images, text)
    result = CODEC_ROWS[run.spec.kind](run, examples, workers, codec_cache)
  elif images:
    examples = inputs.read_images(images)
    result = codecs.measure(examples, workers, codec_cache)
  else:
    raise errors.ConfigError('give --workdir (with --split, --images or --text), or --images for the codecs alone')
  if run is not None:
    source = f'--split={split}' if split else f'--images={images}' if images else f'--text={text}'
    source += '' if step is None else f' --step={step}'
    row = model_row(run, examples, bucket_bits, batch_size, source)
    row['bits_per_dim'] = 8 * row['bytes'] / result['dims']
    eval_file = run.workdir / (names.EVAL_FILE if step is None else evaluate_runs.output_name('test', step))
    if split == 'test' and eval_file.exists():
      elbo = json.loads(eval_file.read_text())['elbo_nats']
      row['elbo_bits_per_dim'] = -elbo / (math.log(2) * result['dims'] / len(examples))
      row['over_elbo_percent'] = 100 * (row['bits_per_dim'] / row['elbo_bits_per_dim'] - 1)
    result['model'] = row
    result['best'].insert(0, row)
  if out:
    with files.replacing(out) as tmp:
      tmp.write_text(json.dumps(result, indent=2, default=str))
  return result


def text(result: dict) -> str:
  """The best row of each codec as a Markdown table, smallest first; then the run's row as JSON, if any."""
  lines = ['| codec | bits/dim | how | command |', '|---|---|---|---|']
  for row in sorted(result['best'], key=lambda r: r['bits_per_dim']):
    lines.append(f"| {row['codec']} | {row['bits_per_dim']:.4f} | {row['how']} | `{row['command']}` |")
  if 'model' in result:
    lines.append(json.dumps({k: v for k, v in result['model'].items() if k not in ('codec', 'how', 'command')}))
  return '\n'.join(lines)
