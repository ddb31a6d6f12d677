"""Converted checkpoints: a param pytree that carries its config, saved with orbax.

A converted folder holds `params/` (orbax), `config.json` (transformers' field names) and the
tokenizer files. `load` also accepts a transformers model folder (converted on the fly; no torch
needed for safetensors) or a hub id (see hub.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any, Optional

import jax
import numpy as np

from .config import VitsConfig

PARAMS_DIR = "params"
TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


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


def is_converted(path: str) -> bool:
    return os.path.isdir(os.path.join(path, PARAMS_DIR)) and os.path.isfile(os.path.join(path, "config.json"))


def copy_tokenizer_files(src: str, dst: str) -> None:
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))


def save(params: VitsParams, path: str | os.PathLike, tokenizer_dir: Optional[str] = None) -> None:
    """Writes `params` (orbax), `config.json` and, from `tokenizer_dir`, the tokenizer files.

    The folder is assembled beside `path` and renamed into place, so a failure leaves no half
    checkpoint. An existing `path` is replaced.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.fspath(path))
    tmp = path + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tree = jax.tree.map(np.asarray, params.tree)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(os.path.join(tmp, PARAMS_DIR), tree)
    params.config.to_json(os.path.join(tmp, "config.json"))
    if tokenizer_dir is not None:
        copy_tokenizer_files(os.fspath(tokenizer_dir), tmp)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(tmp, path)


def _restore(path: str, config: VitsConfig) -> dict:
    import orbax.checkpoint as ocp
    from .model import param_shapes

    target = param_shapes(config)
    with ocp.StandardCheckpointer() as ckpt:
        return ckpt.restore(os.path.join(os.path.abspath(path), PARAMS_DIR), target)


def load(path: str | os.PathLike) -> VitsParams:
    """A converted folder, a transformers model folder, or a hub id -> VitsParams.

    Leaves are jax arrays on the default device, so repeated synthesize() calls do not copy them.
    """
    from .hub import resolve

    path = resolve(os.fspath(path))
    config = VitsConfig.from_json(os.path.join(path, "config.json"))
    if is_converted(path):
        return VitsParams(_restore(path, config), config)
    from convert import load_state_dict, to_flax

    return VitsParams(jax.device_put(to_flax(load_state_dict(path), config)), config)
