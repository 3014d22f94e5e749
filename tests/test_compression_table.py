"""The codec table of vae_jax.compression_table: what counts as binary or 8-bit, the mosaic, the
general-purpose compressors on the packed array, and a missing tool as one line."""

import shutil

import numpy as np
import pytest

from vae_jax import compression_table
from vae_jax import errors

_TOOLS = ('optipng', 'pbmtojbg', 'jbgtopbm', 'cwebp', 'dwebp', 'cjxl', 'djxl')


def test_binary_and_8bit_images_are_told_apart():
  rng = np.random.default_rng(0)
  binary = (rng.random((3, 5, 4, 1)) < 0.5).astype(np.float32)
  pixels, is_binary = compression_table.as_pixels(binary)
  assert is_binary and pixels.dtype == np.uint8 and pixels.shape == (3, 5, 4)
  values = rng.integers(0, 256, (3, 5, 4))
  for images in (values.astype(np.uint8), (values / 255.0).astype(np.float32)):
    pixels, is_binary = compression_table.as_pixels(images)
    assert not is_binary
    np.testing.assert_array_equal(pixels, values)
  with pytest.raises(errors.DataError, match='neither binary nor 8-bit'):
    compression_table.as_pixels(rng.random((3, 5, 4)))
  with pytest.raises(errors.DataError, match='only one channel'):
    compression_table.as_pixels(np.zeros((3, 5, 4, 3)))


@pytest.mark.parametrize('n', [1, 7, 9])
def test_the_mosaic_holds_every_image_once(n):
  pixels = np.arange(n * 3 * 2, dtype=np.uint8).reshape(n, 3, 2) + 1  # no image pixel is 0
  grid = compression_table.mosaic(pixels)
  cols = int(np.ceil(np.sqrt(n)))
  assert grid.shape == (int(np.ceil(n / cols)) * 3, cols * 2)
  np.testing.assert_array_equal(grid[:3, :2], pixels[0])
  np.testing.assert_array_equal(compression_table._untile(grid, n, 3, 2), pixels)  # pylint: disable=protected-access
  assert np.count_nonzero(grid) == pixels.size  # the unused tiles are 0


def test_general_purpose_compressors_see_the_packed_array():
  rng = np.random.default_rng(1)
  pixels = (rng.random((16, 8, 8)) < 0.5).astype(np.uint8)
  rows = compression_table.general_purpose_sizes(pixels, binary=True)
  assert [r['codec'] for r in rows] == ['gzip', 'bzip2', 'xz']
  # Coin flips do not compress: packed 8 to a byte, every codec lands just above the 128 bytes of the
  # packed array, and far below the 1,024 bytes of one byte a pixel.
  assert all(128 <= r['bytes'] < 256 for r in rows), rows
  flat = compression_table.general_purpose_sizes(np.zeros((16, 8, 8), np.uint8) + 7, binary=False)
  assert all(r['bytes'] < 100 for r in flat) and 'raw array' in flat[0]['how']


def test_a_missing_tool_is_one_line_naming_its_package(monkeypatch):
  monkeypatch.setattr(shutil, 'which', lambda name: None if name == 'cjxl' else '/usr/bin/' + name)
  with pytest.raises(errors.UserError, match=r'^cjxl is not installed: apt-get install -y libjxl-tools$'):
    compression_table.measure(np.full((2, 4, 4), 100, np.uint8))


@pytest.mark.skipif(not all(shutil.which(t) for t in _TOOLS),
                    reason='the image codecs are not installed (apt-get install -y optipng jbigkit-bin webp '
                    'libjxl-tools)')
@pytest.mark.parametrize('binary', [True, False])
def test_every_codec_restores_the_images_and_the_best_row_is_the_smallest(binary):
  rng = np.random.default_rng(2)
  images = (rng.random((5, 8, 8)) < 0.3).astype(np.uint8) if binary else rng.integers(0, 256, (5, 8, 8), np.uint8)
  result = compression_table.measure(images)  # raises if a codec did not restore the mosaic
  codecs = {r['codec'] for r in result['rows']}
  assert codecs == ({'gzip', 'bzip2', 'xz', 'PNG (1-bit)', 'JBIG (pbmtojbg)'} if binary else
                    {'gzip', 'bzip2', 'xz', 'PNG (8-bit)', 'WebP lossless', 'JPEG XL lossless'})
  assert result['dims'] == 5 * 8 * 8
  for best in result['best']:
    same = [r['bytes'] for r in result['rows'] if r['codec'] == best['codec']]
    assert best['bytes'] == min(same) and best['bits_per_dim'] == pytest.approx(8 * min(same) / 320)
