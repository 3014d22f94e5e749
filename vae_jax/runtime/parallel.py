"""Data parallelism by shardings: one Mesh with a `data` axis over every device.

Batches are sharded along `data`; parameters, optimizer state and the
on-device dataset are replicated. The train step itself is unchanged: XLA's
partitioner inserts the gradient all-reduce. In a multi-process run (after
`jax.distributed.initialize()`), every process holds the same host arrays and
`to_global` builds each process's shards from them, so the run behaves as one;
a streamed training set is read per process instead (`process_rows`).
"""

import jax
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from vae_jax import errors

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def sharded(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
  """Shards axis `leading_axes` (the batch axis) over `data`; the axes before it are not split."""
  return NamedSharding(mesh, P(*([None] * leading_axes), DATA_AXIS))


def check_divisible(name: str, size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if size % n:
    raise errors.ConfigError(f'{name}={size} does not divide over the {n} devices; use a multiple of {n}')


def to_global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A global jax.Array from a host array that every process holds in full."""
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def process_rows(mesh: Mesh, batch_size: int) -> np.ndarray:
  """The rows of a global batch that this process's devices hold, in the order
  `jax.make_array_from_process_local_data` takes them: all that this process needs to read of a batch."""
  indices = sharded(mesh).addressable_devices_indices_map((batch_size,)).values()
  spans = sorted({(s.start or 0, batch_size if s.stop is None else s.stop) for (s,) in indices})
  return np.concatenate([np.arange(start, stop) for start, stop in spans])


def replicate(tree, mesh: Mesh):
  """Places a pytree of host or device arrays on every device."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: to_global(np.asarray(x), sharding) if jax.process_count() > 1
                      else jax.device_put(x, sharding), tree)


def device_memory_bytes() -> int | None:
  """Memory of one device, or None where the backend does not say (CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get('bytes_limit')
