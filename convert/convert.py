"""PyTorch / safetensors VITS weights -> Flax param trees, strictly.

`load_state_dict(path)` reads a transformers model folder or weights file (safetensors without
torch; `.bin` with torch, imported only then). `to_flax(state_dict, config)` maps it through the
table in `table.py` and checks it against the tree `config` calls for.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import numpy as np

from vits_jax.config import VitsConfig
from vits_jax.model import param_shapes

from vits_jax.weights import ConversionError, TRANSFORMERS, map_weights

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"


def _load_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file
    return load_file(path)


def _load_bin(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{path} is a PyTorch pickle; reading it needs torch "
                          "(pip install 'vits-jax[convert]'), or convert the folder to safetensors") from e
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]   # a training checkpoint (VITS' G_*.pth / D_*.pth): {"model": ..., ...}
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A transformers model folder (or a weights file) -> {name: numpy array}.

    Prefers `model.safetensors` (also sharded, via its index), else `pytorch_model.bin`.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return _load_bin(path) if path.endswith((".bin", ".pt", ".pth")) else _load_safetensors(path)
    if os.path.isfile(os.path.join(path, SAFETENSORS)):
        return _load_safetensors(os.path.join(path, SAFETENSORS))
    if os.path.isfile(os.path.join(path, SAFETENSORS_INDEX)):
        with open(os.path.join(path, SAFETENSORS_INDEX), encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out: dict[str, np.ndarray] = {}
        for shard in shards:
            out.update(_load_safetensors(os.path.join(path, shard)))
        return out
    if os.path.isfile(os.path.join(path, PYTORCH_BIN)):
        return _load_bin(os.path.join(path, PYTORCH_BIN))
    raise FileNotFoundError(f"no {SAFETENSORS} or {PYTORCH_BIN} in {path}")


def to_flax(state_dict: Mapping[str, np.ndarray], config: VitsConfig) -> dict:
    """Maps a transformers VitsModel state dict onto the Flax param tree of `config` (strict)."""
    return map_weights(state_dict, TRANSFORMERS, param_shapes(config)).tree
