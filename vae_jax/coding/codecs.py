"""The standard lossless codecs on the same images as a run's bits-back coder: `measure(images)`, the
codecs' rows of `python -m vae_jax.compression_table` (`vae_jax.coding.table`); and on the same text as a
sequence run's coder, `measure_text(text, num_tokens)`: gzip -9, bzip2 -9, xz -9e, zstd at level 22 and brotli
at quality 11 with its largest window, on the text's UTF-8 bytes (zstd and brotli from the `zstandard` and
`brotli` packages, in the `text` extra).

Binary images (every value 0 or 1): gzip, bzip2 and xz on the whole array
packed 8 pixels to a byte; PNG (1-bit, optimized with optipng) and JBIG
(pbmtojbg). 8-bit images (uint8, or k/255 floats): gzip, bzip2 and xz on the
raw bytes; PNG (8-bit grey, optipng), WebP lossless (cwebp) and JPEG XL
lossless (cjxl). Each image codec gets its best chance: every image coded
alone (the sizes summed) and all images tiled into one near-square mosaic,
with each of its listed settings; the smallest is reported, with the command
that made it. Every mosaic is decoded again and compared with the images, so a
setting that is not lossless is an error, never a row. Sizes are whole files,
headers included, in bits per dimension (8 * bytes / pixels).

The tools come from Debian: apt-get install -y optipng jbigkit-bin webp
libjxl-tools (gzip, bzip2 and xz are in every install). A missing tool is one
line naming the package; exit 2.

The codecs' rows depend only on the images and the tools, and on 10,000 8-bit
images they take an hour of CPU, so they are cached under
$VAE_JAX_CACHE/codecs/ (default ~/.cache/vae_jax/codecs/), keyed by the
SHA-256 of the pixels and of every tool's version line: the next table on the
same split measures only the run's own row. `measure(..., cache=False)`
(--nocodec_cache) measures them again.
"""

import bz2
import concurrent.futures
import datetime
import gzip
import hashlib
import importlib
import json
import lzma
import math
import os
import pathlib
import shutil
import subprocess
import tempfile

from absl import logging
import numpy as np
from PIL import Image

from vae_jax import errors
from vae_jax.runtime import cache as cache_lib
from vae_jax.runtime import files

PACKAGES = {'optipng': 'optipng', 'pbmtojbg': 'jbigkit-bin', 'jbgtopbm': 'jbigkit-bin', 'cwebp': 'webp',
            'dwebp': 'webp', 'cjxl': 'libjxl-tools', 'djxl': 'libjxl-tools'}


def _tool(name: str) -> str:
  path = shutil.which(name)
  if path is None:
    raise errors.UserError(f'{name} is not installed: apt-get install -y {PACKAGES[name]}')
  return path


def _run(*args) -> None:
  subprocess.run(args, check=True, capture_output=True)


def as_pixels(images: np.ndarray) -> tuple[np.ndarray, bool]:
  """(n, H, W) uint8 pixel values and whether they are binary; one channel only."""
  images = np.asarray(images)
  if images.ndim == 4:
    if images.shape[-1] != 1:
      raise errors.DataError(f'images of shape {images.shape}: only one channel is supported')
    images = images[..., 0]
  if images.ndim != 3:
    raise errors.DataError(f'images of shape {images.shape}: expected (n, H, W) or (n, H, W, 1)')
  values = np.unique(images)
  if np.all(np.isin(values, (0, 1))):
    return images.astype(np.uint8), True
  scaled = images if np.issubdtype(images.dtype, np.integer) else images * 255.0
  if scaled.min() < 0 or scaled.max() > 255 or not np.allclose(scaled, np.round(scaled)):
    raise errors.DataError('the images are neither binary nor 8-bit (uint8 or k/255 values)')
  return np.round(scaled).astype(np.uint8), False


def mosaic(pixels: np.ndarray) -> np.ndarray:
  """All images tiled row by row into a near-square grid; the unused tiles of the last row are 0."""
  n, h, w = pixels.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.zeros((rows * cols, h, w), np.uint8)
  grid[:n] = pixels
  return grid.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def _untile(image: np.ndarray, n: int, h: int, w: int) -> np.ndarray:
  rows, cols = image.shape[0] // h, image.shape[1] // w
  return image.reshape(rows, h, cols, w).transpose(0, 2, 1, 3).reshape(rows * cols, h, w)[:n]


# Each image codec: (name, the source format it reads ('png' or 'pbm'), its settings as a list of
# (label, encode(src, dst), decode(dst) -> array)).
def _png(binary: bool):
  def encode(level):
    def fn(png, dst):
      shutil.copy(png, dst)
      _run(_tool('optipng'), f'-o{level}', '-quiet', dst)
    return fn
  decode = lambda path: np.asarray(Image.open(path).convert('L' if not binary else '1'), np.uint8)
  return 'PNG' + (' (1-bit)' if binary else ' (8-bit)'), 'png', [
      (f'optipng -o{level} IMAGE.png', encode(level), decode) for level in (7,)]


def _jbig():
  def encode(options):
    return lambda pbm, dst: _run(_tool('pbmtojbg'), *options, pbm, dst)

  def decode(path):
    out = path + '.pbm'
    _run(_tool('jbgtopbm'), path, out)
    return 1 - np.asarray(Image.open(out).convert('1'), np.uint8)  # PBM: 1 is black; ours: 1 is ink
  return 'JBIG (pbmtojbg)', 'pbm', [
      (f'pbmtojbg {" ".join(o)} IMAGE.pbm IMAGE.jbg'.replace('  ', ' '), encode(o), decode) for o in ((), ('-q',))]


def _webp():
  def encode(png, dst):
    _run(_tool('cwebp'), '-lossless', '-z', '9', '-quiet', png, '-o', dst)

  def decode(path):
    out = path + '.png'
    _run(_tool('dwebp'), '-quiet', path, '-o', out)
    return np.asarray(Image.open(out).convert('L'), np.uint8)
  return 'WebP lossless', 'png', [('cwebp -lossless -z 9 IMAGE.png -o IMAGE.webp', encode, decode)]


def _jxl():
  def encode(png, dst):
    _run(_tool('cjxl'), png, dst, '-d', '0', '-e', '9', '--quiet')

  def decode(path):
    out = path + '.png'
    _run(_tool('djxl'), path, out, '--quiet')
    return np.asarray(Image.open(out).convert('L'), np.uint8)
  return 'JPEG XL lossless', 'png', [('cjxl IMAGE.png IMAGE.jxl -d 0 -e 9', encode, decode)]


def _write_source(pixels2d: np.ndarray, stem: str, binary: bool, kind: str) -> str:
  """STEM.png (1-bit or 8-bit grey), or STEM.pbm for binary images (ink = 1 = black)."""
  path = f'{stem}.{kind}'
  if kind == 'pbm':
    Image.fromarray(((1 - pixels2d) * 255).astype(np.uint8)).convert('1').save(path)
  elif binary:
    Image.fromarray((pixels2d * 255).astype(np.uint8)).convert('1').save(path)
  else:
    Image.fromarray(pixels2d, 'L').save(path)
  return path


def _image_codec_sizes(pixels: np.ndarray, binary: bool, codec, tmp: str, workers: int) -> list[dict]:
  name, kind, settings = codec
  n, h, w = pixels.shape
  rows = []
  src = _write_source(mosaic(pixels), os.path.join(tmp, 'mosaic'), binary, kind)
  for label, encode, decode in settings:
    dst = os.path.join(tmp, 'mosaic.out')
    encode(src, dst)
    back = decode(dst)
    if not np.array_equal(_untile(back, n, h, w), pixels):
      raise RuntimeError(f'{name} with "{label}" did not restore the mosaic exactly')
    rows.append({'codec': name, 'how': 'all images in one mosaic', 'command': label,
                 'bytes': os.path.getsize(dst)})

    def one(i):
      stem = os.path.join(tmp, f'img{i}')
      source = _write_source(pixels[i], stem, binary, kind)
      out = stem + '.out'
      encode(source, out)
      size = os.path.getsize(out)
      for path in (source, out):
        os.remove(path)
      return size
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      total = sum(pool.map(one, range(n)))
    rows.append({'codec': name, 'how': 'each image alone (sizes summed)', 'command': label, 'bytes': total})
  return rows


def general_purpose_sizes(pixels: np.ndarray, binary: bool) -> list[dict]:
  """gzip -9, bzip2 -9 and xz -9e (the same algorithms as the command-line tools, from Python's standard
  library) on the whole array, packed to bits when binary; each is decompressed and checked."""
  raw = np.packbits(pixels.reshape(-1)).tobytes() if binary else pixels.tobytes()
  what = 'the packed array (8 pixels a byte)' if binary else 'the raw array (a byte a pixel)'
  codecs = [('gzip', 'gzip -9', lambda b: gzip.compress(b, 9, mtime=0), gzip.decompress),
            ('bzip2', 'bzip2 -9', lambda b: bz2.compress(b, 9), bz2.decompress),
            ('xz', 'xz -9e', lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress)]
  rows = []
  for name, command, compress, decompress in codecs:
    blob = compress(raw)
    if decompress(blob) != raw:
      raise RuntimeError(f'{name} did not restore the array')
    rows.append({'codec': name, 'how': what, 'command': command, 'bytes': len(blob)})
  return rows


# What each tool prints as its version (the first line); for the cache key.
_VERSION_ARGS = {'optipng': ('-v',), 'pbmtojbg': ('-h',), 'cwebp': ('-version',), 'cjxl': ('--version',)}
CACHE_VERSION = 1  # bump when a codec's settings or the rows' format change


def _tool_version(name: str) -> str:
  proc = subprocess.run([_tool(name), *_VERSION_ARGS[name]], capture_output=True, text=True, check=False)
  out = (proc.stdout or proc.stderr).strip()
  return out.splitlines()[0] if out else ''


def _cache_key(pixels: np.ndarray, binary: bool, tools: tuple[str, ...]) -> str:
  digest = hashlib.sha256(f'v{CACHE_VERSION} {pixels.shape} {binary}'.encode())
  digest.update(np.ascontiguousarray(pixels).tobytes())
  for tool in tools:
    if tool in _VERSION_ARGS:
      digest.update(f'\n{tool}: {_tool_version(tool)}'.encode())
  return digest.hexdigest()


def _read_cache(path: pathlib.Path) -> list[dict] | None:
  try:
    cached = json.loads(path.read_text())
    rows = cached['rows']
  except FileNotFoundError:
    return None
  except (OSError, ValueError, KeyError, TypeError) as e:
    logging.warning('the cached codec sizes %s are unreadable (%s); measuring them again', path, e)
    return None
  logging.info('codec sizes of these images from the cache %s (measured %s); --nocodec_cache measures them '
               'again', path, cached.get('measured', '?'))
  return rows


def _write_cache(path: pathlib.Path, rows: list[dict]) -> None:
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(path) as tmp:
      tmp.write_text(json.dumps({'measured': datetime.datetime.now().isoformat(timespec='seconds'), 'rows': rows}))
  except OSError as e:  # the table is still right; only the next one is slower
    logging.warning('could not cache the codec sizes in %s: %s', path, e)


def measure(images: np.ndarray, workers: int = 2, cache: bool = True) -> dict:
  """Every codec's sizes on `images`, and the best row of each codec, in bits/dim; the rows come from
  the cache when these pixels were measured with these tools before (and `cache`)."""
  pixels, binary = as_pixels(images)
  codecs = [_png(binary)] + ([_jbig()] if binary else [_webp(), _jxl()])
  tools = ('optipng',) + (('pbmtojbg', 'jbgtopbm') if binary else ('cwebp', 'dwebp', 'cjxl', 'djxl'))
  for tool in tools:
    _tool(tool)  # every tool present before any work starts
  folder = cache_lib.directory('codecs')  # $VAE_JAX_CACHE/codecs; None (warned once) when it cannot be used
  path = folder / f'{_cache_key(pixels, binary, tools)}.json' if folder is not None else None
  rows = _read_cache(path) if cache and path is not None else None
  if rows is None:
    rows = general_purpose_sizes(pixels, binary)
    with tempfile.TemporaryDirectory() as tmp:
      for codec in codecs:
        logging.info('%s on %d images', codec[0], len(pixels))
        rows += _image_codec_sizes(pixels, binary, codec, tmp, workers)
    if path is not None:
      _write_cache(path, rows)
  dims = pixels.size
  for row in rows:
    row['bits_per_dim'] = 8 * row['bytes'] / dims
  best = {}
  for row in rows:
    if row['codec'] not in best or row['bytes'] < best[row['codec']]['bytes']:
      best[row['codec']] = row
  return {'num_images': len(pixels), 'binary': binary, 'dims': dims, 'rows': rows, 'best': list(best.values())}


def _package(module: str, package: str):
  try:
    return importlib.import_module(module)
  except ImportError:
    raise errors.UserError(f'the {package} package is not installed: pip install {package} (or pip install '
                           "'vae_jax[text]')") from None


def text_codecs() -> list[tuple]:
  """(name, command, compress, decompress) of each codec at its strongest setting."""
  zstd, brotli = _package('zstandard', 'zstandard'), _package('brotli', 'brotli')
  return [('gzip', 'gzip -9', lambda b: gzip.compress(b, 9, mtime=0), gzip.decompress),
          ('bzip2', 'bzip2 -9', lambda b: bz2.compress(b, 9), bz2.decompress),
          ('xz', 'xz -9e', lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
          ('zstd', 'zstd --ultra -22', lambda b: zstd.ZstdCompressor(level=22).compress(b),
           lambda b: zstd.ZstdDecompressor().decompress(b)),
          ('brotli', 'brotli -q 11 -w 24', lambda b: brotli.compress(b, quality=11, lgwin=24), brotli.decompress)]


def measure_text(text: str, num_tokens: int, how: str = 'the UTF-8 text') -> dict:
  """Every codec's whole-file size on the UTF-8 bytes of `text`, each decompressed and checked; per dimension
  is per token over `num_tokens` (the tokens and EOSs a sequence model codes the same text as)."""
  raw = text.encode('utf-8')
  rows = []
  for name, command, compress, decompress in text_codecs():
    blob = compress(raw)
    if decompress(blob) != raw:
      raise RuntimeError(f'{name} did not restore the text')
    rows.append({'codec': name, 'how': how, 'command': command,
                 'bytes': len(blob), 'bits_per_dim': 8 * len(blob) / num_tokens,
                 'bits_per_byte': 8 * len(blob) / len(raw)})
  return {'text_bytes': len(raw), 'dims': num_tokens, 'rows': rows, 'best': list(rows)}
