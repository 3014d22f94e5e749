"""Image grids for samples and reconstructions, saved as titled PNGs."""

import math
import pathlib

import numpy as np
from matplotlib.figure import Figure


def image_grid(images: np.ndarray, num_cols: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles (N, H, W, C) images into one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  num_cols = num_cols or math.ceil(math.sqrt(n))
  num_rows = math.ceil(n / num_cols)
  grid = np.ones((num_rows * (h + pad) + pad, num_cols * (w + pad) + pad, c), np.float32)
  for i in range(n):
    r, col = divmod(i, num_cols)
    grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
  return grid


def save_grid(path: str | pathlib.Path, grid: np.ndarray, title: str) -> None:
  """Saves a grid from `image_grid` as a PNG with a title."""
  h, w, c = grid.shape
  scale = max(4.0, 8.0 * max(h, w) / 300.0) / max(h, w)
  fig = Figure(figsize=(max(w * scale, 4.0), h * scale + 0.6), dpi=100)
  ax = fig.add_subplot()
  ax.imshow(grid[..., 0] if c == 1 else grid, cmap='gray' if c == 1 else None, vmin=0, vmax=1,
            interpolation='nearest')
  ax.set_axis_off()
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, num_cols: int = 8) -> np.ndarray:
  """Rows alternate: a row of originals, then the row of their reconstructions."""
  n = (len(originals) // num_cols) * num_cols or len(originals)
  num_cols = min(num_cols, n)
  rows = []
  for start in range(0, n, num_cols):
    rows.append(originals[start:start + num_cols])
    rows.append(reconstructions[start:start + num_cols])
  return image_grid(np.concatenate(rows), num_cols)
