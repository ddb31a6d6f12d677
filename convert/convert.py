"""PyTorch / safetensors VITS weights -> Flax param trees, strictly (wrappers over vits_jax.voice).

`load_state_dict(path)` reads a transformers model folder or weights file (safetensors, or a torch
pickle read without torch). `to_flax(state_dict, config)` maps transformers names through the table
and checks the result against the tree `config` calls for.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from vits_jax.config import VitsConfig
from vits_jax.nn.model import param_shapes
from vits_jax.voice import TRANSFORMERS, map_weights
from vits_jax.voice.files import read_weights


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A transformers model folder (or a weights file) -> {name: numpy array}.

    Prefers `model.safetensors` (also sharded, via its index), else `pytorch_model.bin`.
    """
    return dict(read_weights(os.fspath(path)))


def to_flax(state_dict: Mapping[str, np.ndarray], config: VitsConfig) -> dict:
    """Maps a transformers VitsModel state dict onto the Flax param tree of `config` (strict)."""
    return map_weights(state_dict, TRANSFORMERS, param_shapes(config)).tree
