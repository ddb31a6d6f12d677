"""Weight and JSON files -> numpy / Python values, with errors that name the file.

- safetensors (`safetensors.numpy`; a sharded folder through its index);
- PyTorch pickles (.bin, .pth, .pt, .ckpt) through torch_pickle.py, no torch needed;
- training checkpoints unwrapped: VITS' `{"model": state_dict, "iteration": ...}` (G_*.pth,
  D_*.pth) and Lightning's `{"state_dict": ..., "hyper_parameters": ...}` (Piper's .ckpt).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np

from .torch_pickle import TensorRef, UnsafeFileError, find_opaque, read_torch_file, tensors_of

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
TORCH_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt")


def read_json(path: str, what: str = "") -> Any:
    """Parsed JSON; a ValueError naming the file when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON{' (' + what + ')' if what else ''}: {e}") from None


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty: the download or copy did not complete")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e}): it is truncated or "
                         "corrupt; download or convert it again") from None


def read_sharded_safetensors(folder: str) -> dict[str, np.ndarray]:
    index = read_json(os.path.join(folder, SAFETENSORS_INDEX), "safetensors index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(f"{os.path.join(folder, SAFETENSORS_INDEX)} has no weight_map")
    out: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        out.update(read_safetensors(os.path.join(folder, shard)))
    return out


class TrainingCheckpoint(dict):
    """A state dict ({name: array}) read from a training checkpoint, with its `hyper_parameters`
    (Lightning's; None otherwise; values the reader did not rebuild are `Opaque` placeholders)."""

    hyper_parameters: Optional[dict] = None


def read_torch_weights(path: str) -> TrainingCheckpoint:
    """A torch file -> its state dict, unwrapping `{"model": ...}` and `{"state_dict": ...}`."""
    obj = read_torch_file(path)
    hparams = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]                         # VITS: {"model", "iteration", "optimizer", ...}
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        hparams = obj.get("hyper_parameters")      # Lightning (Piper's .ckpt)
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and obj and not any(isinstance(v, TensorRef) for v in obj.values()) \
            and not find_opaque(obj):
        raise ValueError(f"{path} holds no tensors at its top level nor under 'model' or 'state_dict' "
                         f"(keys: {', '.join(map(str, list(obj)[:8]))})")
    out = TrainingCheckpoint(tensors_of(obj, path))
    out.hyper_parameters = hparams if isinstance(hparams, dict) else None
    return out


def read_weights(path: str) -> dict[str, np.ndarray]:
    """A weights file (.safetensors or a torch pickle) or a transformers folder -> {name: array}.

    A folder: `model.safetensors`, else its sharded index, else `pytorch_model.bin`.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for name, reader in ((SAFETENSORS, read_safetensors), (SAFETENSORS_INDEX, None),
                             (PYTORCH_BIN, read_torch_weights)):
            if os.path.isfile(os.path.join(path, name)):
                return read_sharded_safetensors(path) if reader is None else reader(os.path.join(path, name))
        raise FileNotFoundError(f"no {SAFETENSORS} or {PYTORCH_BIN} in {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return read_torch_weights(path)


__all__ = ["read_json", "read_safetensors", "read_sharded_safetensors", "read_torch_weights",
           "read_weights", "TrainingCheckpoint", "UnsafeFileError", "SAFETENSORS", "SAFETENSORS_INDEX",
           "PYTORCH_BIN", "TORCH_SUFFIXES"]
