"""The codecs of vae_jax.compression_table (vae_jax.coding.codecs): what counts as binary or 8-bit, the
mosaic, the general-purpose compressors on the packed array, a missing tool as one line, and the cache of the
codecs' sizes."""

import shutil

import numpy as np
import pytest

from vae_jax import errors
from vae_jax.coding import codecs

_TOOLS = ('optipng', 'pbmtojbg', 'jbgtopbm', 'cwebp', 'dwebp', 'cjxl', 'djxl')


def test_binary_and_8bit_images_are_told_apart():
  rng = np.random.default_rng(0)
  binary = (rng.random((3, 5, 4, 1)) < 0.5).astype(np.float32)
  pixels, is_binary = codecs.as_pixels(binary)
  assert is_binary and pixels.dtype == np.uint8 and pixels.shape == (3, 5, 4)
  values = rng.integers(0, 256, (3, 5, 4))
  for images in (values.astype(np.uint8), (values / 255.0).astype(np.float32)):
    pixels, is_binary = codecs.as_pixels(images)
    assert not is_binary
    np.testing.assert_array_equal(pixels, values)
  with pytest.raises(errors.DataError, match='neither binary nor 8-bit'):
    codecs.as_pixels(rng.random((3, 5, 4)))
  with pytest.raises(errors.DataError, match='only one channel'):
    codecs.as_pixels(np.zeros((3, 5, 4, 3)))


@pytest.mark.parametrize('n', [1, 7, 9])
def test_the_mosaic_holds_every_image_once(n):
  pixels = np.arange(n * 3 * 2, dtype=np.uint8).reshape(n, 3, 2) + 1  # no image pixel is 0
  grid = codecs.mosaic(pixels)
  cols = int(np.ceil(np.sqrt(n)))
  assert grid.shape == (int(np.ceil(n / cols)) * 3, cols * 2)
  np.testing.assert_array_equal(grid[:3, :2], pixels[0])
  np.testing.assert_array_equal(codecs._untile(grid, n, 3, 2), pixels)  # pylint: disable=protected-access
  assert np.count_nonzero(grid) == pixels.size  # the unused tiles are 0


def test_general_purpose_compressors_see_the_packed_array():
  rng = np.random.default_rng(1)
  pixels = (rng.random((16, 8, 8)) < 0.5).astype(np.uint8)
  rows = codecs.general_purpose_sizes(pixels, binary=True)
  assert [r['codec'] for r in rows] == ['gzip', 'bzip2', 'xz']
  # Coin flips do not compress: packed 8 to a byte, every codec lands just above the 128 bytes of the
  # packed array, and far below the 1,024 bytes of one byte a pixel.
  assert all(128 <= r['bytes'] < 256 for r in rows), rows
  flat = codecs.general_purpose_sizes(np.zeros((16, 8, 8), np.uint8) + 7, binary=False)
  assert all(r['bytes'] < 100 for r in flat) and 'raw array' in flat[0]['how']


def test_a_missing_tool_is_one_line_naming_its_package(monkeypatch):
  monkeypatch.setattr(shutil, 'which', lambda name: None if name == 'cjxl' else '/usr/bin/' + name)
  with pytest.raises(errors.UserError, match=r'^cjxl is not installed: apt-get install -y libjxl-tools$'):
    codecs.measure(np.full((2, 4, 4), 100, np.uint8))


def test_codec_sizes_are_cached_per_images_and_tool_versions(monkeypatch, tmp_path):
  monkeypatch.setenv('VAE_JAX_CACHE', str(tmp_path))
  versions = {'optipng': 'OptiPNG 0.7.7', 'pbmtojbg': 'PBMtoJBIG 2.1'}
  calls = []

  def fake_codec(pixels, binary, codec, tmp, workers):
    calls.append(codec[0])
    return [{'codec': codec[0], 'how': 'mosaic', 'command': 'c', 'bytes': 10 + len(calls)}]
  monkeypatch.setattr(codecs, '_tool', lambda name: name)
  monkeypatch.setattr(codecs, '_tool_version', lambda name: versions[name])
  monkeypatch.setattr(codecs, '_image_codec_sizes', fake_codec)
  images = (np.random.default_rng(3).random((4, 6, 6)) < 0.5).astype(np.uint8)
  first = codecs.measure(images)
  assert calls == ['PNG (1-bit)', 'JBIG (pbmtojbg)']
  assert codecs.measure(images) == first and len(calls) == 2  # from the cache
  assert codecs.measure(images, cache=False) != first and len(calls) == 4
  other = images.copy()
  other[0, 0, 0] ^= 1
  codecs.measure(other)  # other pixels: measured
  assert len(calls) == 6
  before = set((tmp_path / 'codecs').iterdir())
  versions['pbmtojbg'] = 'PBMtoJBIG 2.2'
  codecs.measure(images)  # another tool version: measured
  assert len(calls) == 8
  (cached,) = set((tmp_path / 'codecs').iterdir()) - before
  cached.write_text('{"rows": [')  # a damaged cache file is measured again and rewritten
  codecs.measure(images)
  assert len(calls) == 10 and codecs.measure(images)['rows'][-1]['bytes'] == 20 and len(calls) == 10
  assert not list((tmp_path / 'codecs').glob('*.tmp-*'))


@pytest.mark.skipif(not all(shutil.which(t) for t in _TOOLS),
                    reason='the image codecs are not installed (apt-get install -y optipng jbigkit-bin webp '
                    'libjxl-tools)')
@pytest.mark.parametrize('binary', [True, False])
def test_every_codec_restores_the_images_and_the_best_row_is_the_smallest(binary):
  rng = np.random.default_rng(2)
  images = (rng.random((5, 8, 8)) < 0.3).astype(np.uint8) if binary else rng.integers(0, 256, (5, 8, 8), np.uint8)
  result = codecs.measure(images)  # raises if a codec did not restore the mosaic
  used = {r['codec'] for r in result['rows']}
  assert used == ({'gzip', 'bzip2', 'xz', 'PNG (1-bit)', 'JBIG (pbmtojbg)'} if binary else
                    {'gzip', 'bzip2', 'xz', 'PNG (8-bit)', 'WebP lossless', 'JPEG XL lossless'})
  assert result['dims'] == 5 * 8 * 8
  for best in result['best']:
    same = [r['bytes'] for r in result['rows'] if r['codec'] == best['codec']]
    assert best['bytes'] == min(same) and best['bits_per_dim'] == pytest.approx(8 * min(same) / 320)
