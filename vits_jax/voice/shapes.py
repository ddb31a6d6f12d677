"""The parameter tree a config needs (shapes and dtypes), traced once per machine.

`nn.model.param_shapes` traces the whole model's init: 2-5 s on a 2-core CPU, most of the time
a voice takes to load. The tree depends only on the config and the code under `vits_jax/nn/`, so
it is kept per process (in memory) and per machine (a small JSON file under
`cache_home()/shapes`, keyed by a hash of the config, the nn/ sources and the jax and flax
versions): a new process loading a voice it has loaded before skips the trace. A missing,
unreadable or mismatching file is traced again and rewritten; a folder that cannot be written
only costs the trace.

    param_shapes(config) -> {"decoder": {"conv_pre": {"kernel": ShapeDtypeStruct, ...}, ...}, ...}
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile

import jax

from ..config import VitsConfig
from ..nn import model as _model

_NN = os.path.dirname(os.path.abspath(_model.__file__))


def cache_home() -> str:
    """vits-jax's cache folder: $XDG_CACHE_HOME/vits-jax, else ~/.cache/vits-jax."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vits-jax")


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """What the tree's structure depends on besides the config: the nn/ sources, jax and flax."""
    import flax

    digest = hashlib.sha256(f"jax {jax.__version__} flax {flax.__version__}".encode())
    for name in sorted(os.listdir(_NN)):
        if name.endswith(".py"):
            with open(os.path.join(_NN, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


def _key(config: VitsConfig) -> str:
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256((_code_hash() + text).encode()).hexdigest()[:32]


def _to_json(tree) -> dict:
    return {k: _to_json(v) if isinstance(v, dict) else [list(v.shape), str(v.dtype)] for k, v in tree.items()}


def _from_json(data) -> dict:
    return {k: _from_json(v) if isinstance(v, dict) else jax.ShapeDtypeStruct(tuple(v[0]), v[1])
            for k, v in data.items()}


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return _from_json(json.load(f))
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return None          # not there, or not a tree we wrote: trace again


def _write(path: str, tree) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".shapes-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_to_json(tree), f)
        os.replace(tmp, path)      # atomic: a concurrent reader sees the old file or the new one
    except OSError:
        pass                       # a read-only home: the trace is all it costs


@functools.lru_cache(maxsize=16)
def param_shapes(config: VitsConfig):
    """The parameter tree of `config` as ShapeDtypeStructs (nested dicts). Read-only: shared
    between callers."""
    path = os.path.join(cache_home(), "shapes", _key(config) + ".json")
    tree = _read(path)
    if tree is None:
        tree = _model.param_shapes(config)
        _write(path, tree)
    return tree
