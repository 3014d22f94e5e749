"""`image_folder`: a folder of PNG, JPEG or any image Pillow reads (data.path).

  data.path/<class>/*.png ...                 class subfolders become labels (sorted names: 0, 1, ...)
  data.path/*.png ...                         no labels
  data.path/train/..., data.path/test/...     the two splits as given (each laid out as above)

Without a test folder, data.test_fraction is held out by data.split_seed.
Images are grey when every file is, else RGB. data.image_size=(H, W)
resizes and centre-crops every image to H x W; without it the images must all
have one size, and a folder of mixed sizes is refused naming two of them.
Files are read in parallel threads (Pillow decodes outside the GIL). With
data.feed=stream, or when the decoded images would take over a quarter of the
host's memory, they stay on disk (`ImageFiles`) and the streamed feed's
workers decode each batch as it is needed.
"""

import concurrent.futures
import os
import pathlib

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageOps

from vae_jax import errors
from vae_jax.data import rows as rows_lib
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib

_THREADS = min(8, os.cpu_count() or 1)


def extensions() -> set[str]:
  """The file extensions Pillow can open."""
  return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _listing(folder: pathlib.Path) -> tuple[list[pathlib.Path], list[int] | None, list[str]]:
  """(image files, their labels or None, class names) of a folder, sorted so every machine reads the same order."""
  exts = extensions()
  is_image = lambda p: p.is_file() and p.suffix.lower() in exts
  classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith('.'))
  loose = sorted(p for p in folder.iterdir() if is_image(p))
  if classes and loose:
    raise errors.DataError(f'{folder} holds both image files ({loose[0].name}, ...) and subfolders ({classes[0]}, '
                           '...); put every image in a class subfolder, or none')
  if not classes:
    return loose, None, []
  files, labels = [], []
  for label, name in enumerate(classes):
    found = sorted(p for p in (folder / name).rglob('*') if is_image(p))
    files += found
    labels += [label] * len(found)
  return files, labels, classes


def _header(path: pathlib.Path) -> tuple[tuple[int, int], str]:
  try:
    with Image.open(path) as im:
      return im.size, im.mode
  except Exception as e:  # pylint: disable=broad-except  (Pillow raises many kinds for a bad file)
    raise errors.DataError(f'{path} is not an image Pillow can read ({type(e).__name__}: {e}); remove or '
                           'replace it') from None


def _fitted(im: Image.Image, size) -> np.ndarray:
  """uint8 (H, W, C) of `im`, scaled so that it covers `size` (H, W) and cropped about its centre to it."""
  if size is not None and im.size != (int(size[1]), int(size[0])):
    im = ImageOps.fit(im, (int(size[1]), int(size[0])), method=Image.Resampling.BICUBIC)
  out = np.asarray(im, np.uint8)
  return out[..., None] if out.ndim == 2 else out


def fit(image: np.ndarray, size) -> np.ndarray:
  """uint8 image (H, W, C) resized and centre-cropped to `size` (H, W)."""
  return _fitted(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), size)


def read_image(path: pathlib.Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
  """One file as uint8 (H, W, C) in `mode` (L or RGB), resized and centre-cropped to `size` (H, W) if given."""
  try:
    with Image.open(path) as im:
      return _fitted(ImageOps.exif_transpose(im).convert(mode), size)
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(f'{path} cannot be decoded ({type(e).__name__}: {e}); remove or replace it') from None


class ImageFiles:
  """Image files as a lazy uint8 array (N, H, W, C): rows are decoded when indexed (by the streamed feed's
  workers), so a folder larger than memory trains without being held. Picklable, for those workers."""

  def __init__(self, files: list[pathlib.Path], mode: str, size: tuple[int, int]):
    self.files, self.mode, self.size = list(files), mode, tuple(size)
    self.shape = (len(self.files), *self.size, 1 if mode == 'L' else 3)
    self.dtype = np.dtype(np.uint8)

  def __len__(self) -> int:
    return len(self.files)

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape))

  def __getitem__(self, rows):
    if isinstance(rows, slice):
      rows = np.arange(len(self))[rows]
    rows = np.asarray(rows)
    if rows.ndim == 0:
      return read_image(self.files[int(rows)], self.mode, self.size)
    return np.stack([read_image(self.files[int(i)], self.mode, self.size) for i in rows]) if len(rows) else (
        np.zeros((0, *self.shape[1:]), np.uint8))

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self[np.arange(len(self))]
    return out if dtype is None else out.astype(dtype)

  def fingerprint(self) -> str:
    """Of the files' names, sizes and modification times, and how they are read (hashing the pixels would
    cost a pass over every file)."""
    return rows_lib.fingerprint_text(f'{self.mode};{self.size};' + ';'.join(
        f'{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}' for p in self.files))


def _host_memory_bytes() -> int:
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def read_folder(folder: pathlib.Path, image_size, what: str, lazy: bool | None = None):
  """(uint8 images (N, H, W, C), labels or None, class names, fingerprint) of one split's folder. The images
  are read into memory unless `lazy` (None: when they would take over a quarter of the host's memory), when
  they stay `ImageFiles`. The fingerprint is of the files either way, so streaming changes no run's."""
  files, labels, classes = _listing(folder)
  if not files:
    raise errors.DataError(f'{folder} holds no images ({what}); give a folder of image files '
                           f'({", ".join(sorted(e for e in extensions() if e in (".png", ".jpg", ".jpeg", ".bmp")))}'
                           ', ...), in class subfolders or not')
  with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
    headers = list(pool.map(_header, files))
  mode = 'L' if all(m in ('1', 'L', 'I;16', 'I', 'F') for _, m in headers) else 'RGB'
  size = tuple(int(s) for s in image_size) if image_size else None
  if size is None:
    first = headers[0][0]
    other = next((i for i, (s, _) in enumerate(headers) if s != first), None)
    if other is not None:
      raise errors.DataError(f'{folder} has images of different sizes ({files[0].name} is {first[0]}x{first[1]}, '
                             f'{files[other].name} is {headers[other][0][0]}x{headers[other][0][1]}); set '
                             '--config.data.image_size=H,W to resize and crop them to one')
  lazy_images = ImageFiles(files, mode, size or (headers[0][0][1], headers[0][0][0]))
  labels = None if labels is None else np.asarray(labels, np.int32)
  if lazy or (lazy is None and lazy_images.nbytes > _host_memory_bytes() // 4):
    logging.info('%s: %d images stay on disk, decoded batch by batch (%.1f GB decoded)', folder, len(files),
                 lazy_images.nbytes / 1e9)
    return lazy_images, labels, classes, lazy_images.fingerprint()
  with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
    images = np.stack(list(pool.map(lambda p: read_image(p, mode, size), files)))
  return images, labels, classes, lazy_images.fingerprint()


def load(config) -> sources.Loaded:
  if not config.data.path:
    raise errors.ConfigError('data.name=image_folder reads data.path: set --config.data.path=FOLDER')
  root = pathlib.Path(config.data.path)
  if not root.is_dir():
    raise errors.DataError(f'data.path={str(root)!r} is not a folder; give a folder of images')
  split_dirs = {p.name for p in root.iterdir() if p.is_dir()}
  lazy = True if config.data.feed == 'stream' else None  # streamed: decoded in the feed's workers
  if {'train', 'test'} <= split_dirs:
    train_x, train_y, classes, prints = read_folder(root / 'train', config.data.image_size, 'its train split', lazy)
    test_x, test_y, test_classes, test_prints = read_folder(root / 'test', config.data.image_size, 'its test split',
                                                            lazy)
    prints += test_prints
    if classes != test_classes:
      raise errors.DataError(f'{root}/train has the classes {classes[:5]}... but {root}/test has '
                             f'{test_classes[:5]}...; give both splits the same class subfolders')
    if train_x.shape[1:] != test_x.shape[1:]:
      raise errors.DataError(f'{root}: train images are {train_x.shape[1:]}, test images {test_x.shape[1:]}; set '
                             '--config.data.image_size=H,W (and check both are grey or both colour)')
    test = (test_x, test_y)
  else:
    train_x, train_y, classes, prints = read_folder(root, config.data.image_size, 'the images', lazy)
    test = None
  if classes:
    logging.info('%s: %d classes from its subfolders: %s%s', root, len(classes), ', '.join(classes[:10]),
                 ', ...' if len(classes) > 10 else '')
  spec = spec_lib.ImageSpec.of_shape(train_x.shape[1:])
  return sources.Loaded((train_x, train_y), test, f'image folder {root}', spec, rows_lib.fingerprint_text(prints))


IMAGE_FOLDER = sources.Source('image_folder', load)
