"""`array`: images in a .npy or .npz file (data.path), or numpy arrays handed to `train_and_evaluate`.

A .npy file holds the training images. A .npz file names its arrays:

  x_train (or x, images, train)       the images: (N, H, W) or (N, H, W, C), uint8 or floats in [0, 1]
  y_train (or y, labels)              optional int labels
  x_test, y_test                      an optional test split (else data.test_fraction is held out by data.split_seed)

A .npy file, and each array stored uncompressed in a .npz (np.savez), is
memory-mapped: only the pages a batch touches are read, so the file may be
larger than memory. A compressed .npz (np.savez_compressed) is read whole.
"""

import os
import pathlib
import zipfile

import numpy as np

from vae_jax import errors
from vae_jax.data import checks
from vae_jax.data import sources
from vae_jax.data import spec as spec_lib

KEYS = {
    'train': ('x_train', 'x', 'images', 'train'),
    'train_labels': ('y_train', 'y', 'labels', 'train_labels'),
    'test': ('x_test', 'test', 'test_images'),
    'test_labels': ('y_test', 'test_labels'),
}


def _memmap_member(path: pathlib.Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
  """The .npy member `info` of the .npz at `path` as a read-only memmap, when it is stored uncompressed."""
  if info.compress_type != zipfile.ZIP_STORED:
    return None
  with archive.open(info) as member:
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
      return None
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(member)
    header_bytes = member.tell()
  if fortran or dtype.hasobject:
    return None
  with open(path, 'rb') as f:  # the member's data follow its local header: 30 bytes, then its name and extra field
    f.seek(info.header_offset + 26)
    name_len, extra_len = np.frombuffer(f.read(4), '<u2')
  offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header_bytes
  return np.memmap(path, dtype=dtype, mode='r', shape=shape, offset=offset)


def read(path: os.PathLike) -> dict[str, np.ndarray]:
  """{name: array} of a .npy (as 'x_train') or .npz file, memory-mapped where the format allows."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise errors.DataError(f'data.path={str(path)!r} is not a file; give a .npy or .npz file of images')
  try:
    if path.suffix == '.npy':
      return {'x_train': np.load(path, mmap_mode='r')}
    if path.suffix != '.npz':
      raise errors.DataError(f'data.path={str(path)!r} is neither .npy nor .npz; save the images with np.save '
                             'or np.savez')
    out = {}
    with zipfile.ZipFile(path) as archive:
      for info in archive.infolist():
        name = info.filename.removesuffix('.npy')
        out[name] = _memmap_member(path, archive, info)
    with np.load(path, allow_pickle=False) as arrays:
      for name in out:
        if out[name] is None:
          out[name] = arrays[name]
    return out
  except errors.DataError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise errors.DataError(f'{path} cannot be read as a numpy file ({type(e).__name__}: {e}); '
                           'write it again with np.save or np.savez') from None


def _pick(arrays: dict, role: str, where: str):
  found = [k for k in KEYS[role] if k in arrays]
  if len(found) > 1:
    raise errors.DataError(f'{where} has both {found[0]!r} and {found[1]!r}; name the {role} array once')
  return arrays[found[0]] if found else None


def named(given) -> dict:
  """Arrays as a notebook hands them over (the training images, a pair (train, test), or a dict of KEYS names)
  as the {name: array} dict `from_arrays` reads."""
  if isinstance(given, dict):
    return dict(given)
  if isinstance(given, (tuple, list)):
    if len(given) != 2:
      raise errors.DataError(f'dataset= is a sequence of {len(given)} arrays; give the training images, a pair '
                             '(train, test), or a dict with x_train, y_train, x_test, y_test')
    return {'x_train': given[0], 'x_test': given[1]}
  return {'x_train': given}


def from_arrays(arrays: dict, where: str) -> sources.Loaded:
  """Loaded from {name: array} (the names of KEYS), checked (`checks`); unknown names are refused."""
  known = {k for keys in KEYS.values() for k in keys}
  unknown = sorted(set(arrays) - known)
  if unknown:
    raise errors.DataError(f'{where} has the array(s) {", ".join(map(repr, unknown))}, which vae_jax does not read; '
                           f'name them {", ".join(k[0] for k in KEYS.values())}')
  x = _pick(arrays, 'train', where)
  if x is None:
    raise errors.DataError(f'{where} has no training images; name them {" or ".join(KEYS["train"])}')
  x = checks.images(x, f'{where} (training images)')
  y = checks.labels(_pick(arrays, 'train_labels', where), len(x), f'{where} (training labels)')
  x_test, y_test = _pick(arrays, 'test', where), _pick(arrays, 'test_labels', where)
  test = None
  if x_test is not None:
    x_test = checks.images(x_test, f'{where} (test images)')
    if x_test.shape[1:] != x.shape[1:]:
      raise errors.DataError(f'{where}: test images of shape {x_test.shape[1:]} but training images of '
                             f'{x.shape[1:]}; both splits need one shape')
    y_test = checks.labels(y_test, len(x_test), f'{where} (test labels)')
    if (y is None) != (y_test is None):
      raise errors.DataError(f'{where} has labels for one split only; give labels for both or for neither')
    test = (x_test, y_test)
  elif y_test is not None:
    raise errors.DataError(f'{where} has test labels but no test images')
  return sources.Loaded((x, y), test, where, spec_lib.ImageSpec.of_shape(x.shape[1:]))


def load(config) -> sources.Loaded:
  if not config.data.path:
    raise errors.ConfigError('data.name=array reads data.path: set --config.data.path=FILE.npy or FILE.npz (a run '
                             'trained on arrays passed to train_and_evaluate has none: np.savez them and set it)')
  return from_arrays(read(config.data.path), str(config.data.path))


ARRAY = sources.Source('array', load)
