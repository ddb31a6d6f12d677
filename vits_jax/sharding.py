"""Data parallelism for synthesis: the batch axis split over a 1-D device mesh, params replicated.

On one host this spans all local devices. On a multi-host TPU pod, call
`jax.distributed.initialize()` first on every host; each host then passes its own share of the
batch and the mesh covers its local devices (see the README).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH_AXIS = "batch"


@functools.lru_cache(maxsize=8)
def _mesh(devices: tuple) -> Mesh:
    return Mesh(np.array(devices), (BATCH_AXIS,))


def batch_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Optional[Mesh]:
    """A mesh over `devices` (default: all local devices), or None when there is only one."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    return _mesh(devices) if len(devices) > 1 else None


def padded_batch(batch: int, mesh: Optional[Mesh]) -> int:
    """The batch rounded up to a multiple of the mesh size."""
    n = 1 if mesh is None else mesh.size
    return -(-batch // n) * n


def shard_batch(x, batch: int, mesh: Optional[Mesh]):
    """(B, ...) array (or typed key array) -> padded to `padded_batch` rows by repeating row 0, and
    laid out with each device holding its contiguous slice of the batch. None passes through."""
    if x is None or mesh is None:
        return x
    padded = padded_batch(batch, mesh)
    if padded > batch:
        x = x[np.concatenate([np.arange(batch), np.zeros(padded - batch, np.int64)])]
    return jax.device_put(x, NamedSharding(mesh, P(BATCH_AXIS)))


_REPLICATED: dict = {}


def replicate(tree, mesh: Optional[Mesh]):
    """Params copied to every device of the mesh (cached for the last tree seen per mesh)."""
    if mesh is None:
        return tree
    cached = _REPLICATED.get(mesh)
    if cached is not None and cached[0] is tree:
        return cached[1]
    placed = jax.device_put(tree, NamedSharding(mesh, P()))
    _REPLICATED[mesh] = (tree, placed)
    return placed
