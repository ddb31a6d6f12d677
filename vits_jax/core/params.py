"""VitsParams: the param pytree every core function takes, with its VitsConfig as static metadata.

`tree` is the Flax param dict of `vits_jax.nn.VitsModel` (`{"text_encoder": ..., "decoder": ...}`);
the config rides along as pytree metadata, so jit / vmap / device_put / jax.export keep it and the
core needs no separate config argument.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

import jax
from jax import export as _export
import numpy as np

from ..config import VitsConfig


@jax.tree_util.register_pytree_with_keys_class
class VitsParams(Mapping):
    """Flax params (`.tree`, a nested dict) with their VitsConfig as static pytree metadata.

    Behaves as the nested dict for reading (`params["decoder"]`), flattens to the same leaves, and
    survives jax.tree.map / jit / device_put with its config attached.
    """

    def __init__(self, tree: Mapping[str, Any], config: VitsConfig):
        self.tree = dict(tree)
        self.config = config

    def tree_flatten_with_keys(self):
        return ((jax.tree_util.GetAttrKey("tree"), self.tree),), self.config

    @classmethod
    def tree_unflatten(cls, config, children):
        return cls(children[0], config)

    def __getitem__(self, key):
        return self.tree[key]

    def __iter__(self):
        return iter(self.tree)

    def __len__(self):
        return len(self.tree)

    def __repr__(self):
        return f"VitsParams({self.num_parameters():,} parameters, config={self.config!r})"

    def num_parameters(self) -> int:
        return int(sum(np.prod(x.shape) for x in jax.tree.leaves(self.tree)))


def split_params(params, config: Optional[VitsConfig] = None):
    """(VitsParams | dict, config?) -> (plain dict tree, config). A dict needs `config=`."""
    if isinstance(params, VitsParams):
        if config is not None and config != params.config:
            raise ValueError("config= disagrees with the config carried by params")
        return params.tree, params.config
    if config is None:
        raise ValueError("plain param dicts need config=VitsConfig(...); vits_jax.load returns "
                         "params that carry it")
    return dict(params), config




# jax.export serializes a program's pytrees by name: VitsParams' config travels as JSON, so an
# exported program is called with params exactly as `vits_jax.load` returns them.
_export.register_pytree_node_serialization(
    VitsParams, serialized_name="vits_jax.VitsParams",
    serialize_auxdata=lambda config: json.dumps(config.to_dict(), sort_keys=True).encode(),
    deserialize_auxdata=lambda data: VitsConfig.from_dict(json.loads(data)))


def tree_and_config(params) -> tuple[Any, VitsConfig]:
    """VitsParams -> (param dict, config); anything else is a TypeError naming what to pass."""
    if not isinstance(params, VitsParams):
        raise TypeError("params must be a VitsParams (vits_jax.load returns one; wrap a plain tree "
                        "with VitsParams(tree, config))")
    return params.tree, params.config
