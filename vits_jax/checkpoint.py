"""Converted checkpoints: a param pytree that carries its config, saved with orbax.

A converted folder holds `params/` (orbax), `config.json` (transformers' field names plus vits-jax's
extensions) and the tokenizer files (`vocab.json`, ... or a Piper voice's `piper.json`). `load` also
reads every other source of weights (weights/sources.py: transformers folders, original VITS and
Piper checkpoints, Piper .onnx voices; no torch needed for any) and hub ids (hub.py).

Writing never deletes or replaces anything it did not write: an existing destination is replaced
only with `overwrite=True`, and only when it is a vits-jax checkpoint; a new checkpoint is assembled
in a fresh folder beside the destination and renamed into place, so a failure leaves the old one.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any, Optional

import jax
import numpy as np

from .config import VitsConfig
from .hub import resolve
from .model import param_shapes as _param_shapes
from .weights.mapper import map_weights
from .weights.sources import PIPER_JSON, TOKENIZER_FILES as _TOKENIZER_FILES, open_source
from .weights.tables import FLAX

# The target tree of a config (an eval_shape of the whole init: seconds to trace), once per config
# per process: `say` then `convert`, or repeated loads, do not trace it again. Read-only leaves.
param_shapes = functools.lru_cache(maxsize=16)(_param_shapes)

PARAMS_DIR = "params"
TOKENIZER_FILES = _TOKENIZER_FILES + (PIPER_JSON,)


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


class DestinationError(ValueError):
    """A destination that would overwrite something: exists without overwrite=True, is not a
    vits-jax checkpoint, or is (inside) the source."""


def is_converted(path: str) -> bool:
    return os.path.isdir(os.path.join(path, PARAMS_DIR)) and os.path.isfile(os.path.join(path, "config.json"))


def _check_destination(path: str, overwrite: bool) -> None:
    if os.path.lexists(path):
        if not overwrite:
            raise DestinationError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        if not (os.path.isdir(path) and not os.path.islink(path) and is_converted(path)):
            raise DestinationError(f"{path} exists and is not a vits-jax checkpoint; refusing to replace "
                                   "it even with overwrite")


def save(params: VitsParams, path: str | os.PathLike, tokenizer_dir: Optional[str] = None, *,
         overwrite: bool = False, tokenizer_files: Optional[dict[str, str]] = None) -> None:
    """Writes `params` (orbax), `config.json` and the tokenizer files: those of `tokenizer_dir`
    (TOKENIZER_FILES found there) and `tokenizer_files` ({name: file to copy}).

    An existing `path` is replaced only with overwrite=True and only if it is a vits-jax checkpoint
    (DestinationError otherwise). The folder is assembled beside `path` and renamed into place.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.fspath(path))
    _check_destination(path, overwrite)
    files = dict(tokenizer_files or {})
    if tokenizer_dir is not None:
        tokenizer_dir = os.fspath(tokenizer_dir)
        files.update({n: os.path.join(tokenizer_dir, n) for n in TOKENIZER_FILES
                      if os.path.isfile(os.path.join(tokenizer_dir, n))})
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=parent)
    try:
        tree = jax.tree.map(np.asarray, params.tree)
        with ocp.StandardCheckpointer() as ckpt:
            ckpt.save(os.path.join(tmp, PARAMS_DIR), tree)
        params.config.to_json(os.path.join(tmp, "config.json"))
        for name, src in files.items():
            shutil.copyfile(src, os.path.join(tmp, name))
        _check_destination(path, overwrite)           # nothing appeared meanwhile
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.replace(path, os.path.join(old, "checkpoint"))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)        # only the folder this call made
        raise


def _restore(path: str, config: VitsConfig) -> dict:
    """The orbax tree, checked against `config` by the same strict mapper as every source (the
    training-only subtrees may be absent: an inference-only voice)."""
    import orbax.checkpoint as ocp

    folder = os.path.join(os.path.abspath(path), PARAMS_DIR)
    with ocp.StandardCheckpointer() as ckpt:
        meta = ckpt.metadata(folder)
        meta = getattr(meta, "item_metadata", meta)
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(meta))
        restored = ckpt.restore(folder, target)
    flat = {"/".join(k.key for k in p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(restored)[0]}
    return map_weights(flat, FLAX, param_shapes(config), source=path).tree


def _load(path: str, config: Optional[str]) -> tuple[VitsParams, dict[str, str]]:
    if is_converted(path):
        cfg = VitsConfig.from_json(os.path.join(path, "config.json"))
        files = {n: os.path.join(path, n) for n in TOKENIZER_FILES if os.path.isfile(os.path.join(path, n))}
        return VitsParams(jax.device_put(_restore(path, cfg)), cfg), files
    source = open_source(path, config)
    mapped = map_weights(source.state_dict, source.table, param_shapes(source.config),
                         source=source.path)
    return VitsParams(jax.device_put(mapped.tree), source.config), source.tokenizer_files


def load(path: str | os.PathLike, *, config: Optional[str] = None) -> VitsParams:
    """A converted folder, a transformers folder, a Piper voice (.onnx, or a folder holding one), an
    original VITS / Piper training checkpoint, a hub id or a Piper voice name -> VitsParams.

    `config`: the training config.json of a checkpoint whose config is not beside it. Leaves are
    jax arrays on the default device. A voice without the training-only weights (a Piper .onnx)
    loads for inference; `vits_jax.weights.check_trainable(params)` says whether it can train.
    """
    return _load(resolve(os.fspath(path)), config)[0]


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def convert_voice(src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False,
                  config: Optional[str] = None) -> VitsParams:
    """Any voice `load` reads -> a converted vits-jax folder `dst` (params, config.json, tokenizer
    files; a Piper voice's .onnx.json is kept as piper.json). The source is never touched: `dst`
    may not be `src`, inside it, or hold it; an existing `dst` needs overwrite=True and must be a
    vits-jax checkpoint."""
    local = resolve(os.fspath(src))
    dst = os.path.abspath(os.fspath(dst))
    if _inside(dst, local) or _inside(local, dst):
        raise DestinationError(f"destination {dst} is, contains or lies inside the source {local}; "
                               "choose another folder")
    _check_destination(dst, overwrite)
    params, files = _load(local, config)
    save(params, dst, overwrite=overwrite, tokenizer_files=files)
    return params
