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

import os
import shutil
import tempfile
from typing import Optional

import jax
import numpy as np

from ..config import VitsConfig
from ..core.params import VitsParams, split_params  # noqa: F401  (re-exported)
from .hub import resolve
from .mapper import map_weights
from .sources import (CONVERTED, EXPORTED, PARAMS_DIR, PIPER_JSON,
                      TOKENIZER_FILES as _TOKENIZER_FILES, describe_source, is_converted, open_source)
from .shapes import param_shapes
from .tables import FLAX

TOKENIZER_FILES = _TOKENIZER_FILES + (PIPER_JSON,)


class DestinationError(ValueError):
    """A destination that would overwrite something: exists without overwrite=True, is not a
    vits-jax checkpoint, or is (inside) the source."""


def _check_destination(path: str, overwrite: bool) -> None:
    if os.path.lexists(path):
        if not overwrite:
            raise DestinationError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        if not (os.path.isdir(path) and not os.path.islink(path) and is_converted(path)):
            raise DestinationError(f"{path} exists and is not a vits-jax checkpoint; refusing to replace "
                                   "it even with overwrite")


def _folder_mode() -> int:
    """The mode `os.mkdir` gives a new folder: 0777 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def save(params: VitsParams, path: str | os.PathLike, tokenizer_dir: Optional[str] = None, *,
         overwrite: bool = False, tokenizer_files: Optional[dict[str, str]] = None) -> None:
    """Writes `params` (orbax), `config.json` and the tokenizer files: those of `tokenizer_dir`
    (TOKENIZER_FILES found there) and `tokenizer_files` ({name: file to copy}).

    An existing `path` is replaced only with overwrite=True and only if it is a vits-jax checkpoint
    (DestinationError otherwise). The folder is assembled beside `path` and renamed into place,
    with the permissions of any new folder (0777 less the umask).
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
        os.chmod(tmp, _folder_mode())  # mkdtemp makes it 0700; the checkpoint is an ordinary folder
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


def load_local(path: str, config: Optional[str] = None, info=None) -> tuple[VitsParams, dict[str, str]]:
    """A local voice (`info`: its describe_source, when the caller has it) -> (params, the tokenizer
    files a converted copy keeps)."""
    info = info or describe_source(path, config)
    if info.kind in (CONVERTED, EXPORTED):     # exported: the same folder plus its programs
        cfg = VitsConfig.from_json(info.config)
        files = {n: os.path.join(path, n) for n in TOKENIZER_FILES if os.path.isfile(os.path.join(path, n))}
        return VitsParams(jax.device_put(_restore(path, cfg)), cfg), files
    source = open_source(path, config, info)
    mapped = map_weights(source.state_dict, source.table, param_shapes(source.config),
                         source=source.path)
    return VitsParams(jax.device_put(mapped.tree), source.config), source.tokenizer_files


def load(path: str | os.PathLike, *, config: Optional[str] = None) -> VitsParams:
    """A converted folder, a transformers folder, a Piper voice (.onnx, or a folder holding one), an
    original VITS / Piper training checkpoint, a hub id or a Piper voice name -> VitsParams.

    `config`: the training config.json of a checkpoint whose config is not beside it. Leaves are
    jax arrays on the default device. A voice without the training-only weights (a Piper .onnx)
    loads for inference; `vits_jax.voice.check_trainable(params)` says whether it can train.
    """
    return load_local(resolve(os.fspath(path)), config)[0]


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_source_destination(local: str, dst: str) -> None:
    """DestinationError when writing `dst` could touch the local source: `dst` is, contains or lies
    inside it."""
    if _inside(dst, local) or _inside(local, dst):
        raise DestinationError(f"destination {dst} is, contains or lies inside the source {local}; "
                               "choose another folder")


def convert_weights(src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False,
                    config: Optional[str] = None) -> VitsParams:
    """Any voice `load` reads -> a converted vits-jax folder `dst` (params, config.json, tokenizer
    files; a Piper voice's .onnx.json is kept as piper.json). The source is never touched: `dst`
    may not be `src`, inside it, or hold it; an existing `dst` needs overwrite=True and must be a
    vits-jax checkpoint."""
    local = resolve(os.fspath(src))
    dst = os.path.abspath(os.fspath(dst))
    check_source_destination(local, dst)
    _check_destination(dst, overwrite)
    params, files = load_local(local, config)
    save(params, dst, overwrite=overwrite, tokenizer_files=files)
    return params


def convert_voice(*args, **kwargs) -> VitsParams:
    """Deprecated name of `convert_weights` (kept for one release; "voice conversion" now means
    speaker conversion)."""
    import warnings

    warnings.warn("vits_jax.convert_voice is renamed convert_weights", DeprecationWarning, stacklevel=2)
    return convert_weights(*args, **kwargs)
