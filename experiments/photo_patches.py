"""Writes 32x32 RGB patches of scikit-learn's two sample photographs (china.jpg, flower.jpg; 427x640, bundled
with scikit-learn, no download) as an .npz for the `array` source: real 8-bit colour images offline.

  python experiments/photo_patches.py runs/photo_patches.npz
  python -m vae_jax.main --config=configs/photo_patches.py --workdir=runs/photo_patches

Train and test come from disjoint parts of each photograph: the test patches from its right-most fifth, the
training patches from the rest, at full and at half resolution, every STRIDE pixels. Overlapping patches are
correlated, so the training set is smaller in effect than its count; the test set never overlaps it.
"""

import pathlib
import sys

import numpy as np
from PIL import Image
from sklearn import datasets

SIZE, STRIDE = 32, 4


def _patches(image: np.ndarray) -> np.ndarray:
  h, w = image.shape[:2]
  return np.stack([image[i:i + SIZE, j:j + SIZE] for i in range(0, h - SIZE + 1, STRIDE)
                   for j in range(0, w - SIZE + 1, STRIDE)])


def make() -> dict[str, np.ndarray]:
  train, test = [], []
  for photo in datasets.load_sample_images().images:
    cut = photo.shape[1] * 4 // 5
    for scale in (1, 2):
      left, right = photo[:, :cut], photo[:, cut:]
      if scale > 1:
        shrink = lambda a: np.asarray(Image.fromarray(a).resize((a.shape[1] // scale, a.shape[0] // scale),
                                                                Image.Resampling.LANCZOS))
        left, right = shrink(left), shrink(right)
      train.append(_patches(left))
      test.append(_patches(right))
  x_train, x_test = np.concatenate(train), np.concatenate(test)
  order = np.random.default_rng(0).permutation(len(x_train))  # the validation split is the end of train
  return {'x_train': x_train[order].astype(np.uint8), 'x_test': x_test.astype(np.uint8)}


if __name__ == '__main__':
  out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else 'runs/photo_patches.npz')
  out.parent.mkdir(parents=True, exist_ok=True)
  arrays = make()
  tmp = out.with_name(out.name + '.tmp.npz')
  np.savez(tmp, **arrays)
  tmp.replace(out)
  print(f'{out}: {len(arrays["x_train"])} training and {len(arrays["x_test"])} test patches of {SIZE}x{SIZE}x3')
