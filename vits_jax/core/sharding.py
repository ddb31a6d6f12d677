"""Data parallelism: the batch axis split over a device mesh, params replicated.

`synthesize(mesh=...)` takes a `jax.sharding.Mesh` (the batch is split over all its devices) or a
`NamedSharding` for the batch axis; `devices=` builds a 1-D mesh over those devices. On a
multi-host TPU pod, call `jax.distributed.initialize()` first on every host; each host then passes
its own share of the batch and the mesh covers its local devices (see the README).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH_AXIS = "batch"


@functools.lru_cache(maxsize=8)
def _mesh(devices: tuple) -> Mesh:
    return Mesh(np.array(devices), (BATCH_AXIS,))


def batch_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Optional[Mesh]:
    """A 1-D mesh over `devices` (default: all local devices), or None when there is only one."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    return _mesh(devices) if len(devices) > 1 else None


def batch_shardings(mesh: Union[Mesh, NamedSharding, None]):
    """A Mesh (batch split over all its axes) or a batch NamedSharding -> (batch sharding,
    replicated sharding on the same mesh); None -> (None, None), one device."""
    if mesh is None:
        return None, None
    if isinstance(mesh, Mesh):
        split = NamedSharding(mesh, P(mesh.axis_names))
    elif isinstance(mesh, NamedSharding):
        split = mesh
    else:
        raise ValueError(f"mesh must be a jax.sharding.Mesh or a NamedSharding, got {type(mesh).__name__}")
    return split, NamedSharding(split.mesh, P())


class Placement(NamedTuple):
    """Where a batch runs. split / replicated: the batch and params shardings over several
    devices, or None; device: the one device when there is no split."""

    split: Optional[NamedSharding]
    replicated: Optional[NamedSharding]
    device: Any

    @property
    def single_cpu(self) -> bool:
        """One CPU device: items run one by one (a padded batch only adds work there)."""
        return self.split is None and self.device.platform == "cpu"


def placement(mesh: Union[Mesh, NamedSharding, None] = None,
              devices: Optional[Sequence[jax.Device]] = None) -> Placement:
    """mesh= (a Mesh or a batch NamedSharding) or devices= (default: all local devices) -> the
    one decision of where a batch runs, for synthesize and corpus synthesis. A one-device mesh
    is that device. ValueError naming the problem for both given or an empty device list."""
    if mesh is not None and devices is not None:
        raise ValueError("pass mesh= or devices=, not both")
    only = None
    if mesh is None:
        devices = list(jax.local_devices() if devices is None else devices)
        if not devices:
            raise ValueError("devices: empty list")
        mesh = batch_mesh(devices)                    # None for one device
        only = devices[0] if len(devices) == 1 else None
    split, replicated = batch_shardings(mesh)
    if split is not None and split.mesh.devices.size == 1:
        only, split, replicated = split.mesh.devices.flat[0], None, None
    return Placement(split, replicated, only)


def _shards(split: NamedSharding) -> int:
    """How many pieces `split` cuts the batch (leading) axis into."""
    axes = split.spec[0] if len(split.spec) else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    return math.prod(split.mesh.shape[a] for a in axes)


def padded_batch(batch: int, split: Optional[NamedSharding]) -> int:
    """The batch rounded up to a multiple of the shards of the batch axis."""
    n = 1 if split is None else _shards(split)
    return -(-batch // n) * n


def shard_batch(x, batch: int, split: Optional[NamedSharding]):
    """(B, ...) array (or typed key array) -> padded to `padded_batch` rows by repeating row 0, and
    laid out with each device holding its contiguous slice of the batch. None passes through."""
    if x is None or split is None:
        return x
    padded = padded_batch(batch, split)
    if padded > batch:
        x = x[np.concatenate([np.arange(batch), np.zeros(padded - batch, np.int64)])]
    return jax.device_put(x, split)
