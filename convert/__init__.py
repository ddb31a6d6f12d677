"""Converter from PyTorch / Piper VITS weights to vits_jax checkpoints (a thin layer over vits_jax).

    python -m convert SRC DST [--overwrite] [--config CONFIG]

SRC: a transformers folder, a Piper .onnx voice, an original VITS G_*.pth or Piper .ckpt (with its
training config), or a hub id. The work is vits_jax.convert_weights; the tables and the strict mapper
live in vits_jax.voice.
"""

from vits_jax.voice.checkpoint import DestinationError, convert_voice, convert_weights
from vits_jax.voice import TRANSFORMERS as TABLE
from vits_jax.voice import ConversionError, fold_weight_norm

from .convert import load_state_dict, to_flax

__all__ = ["ConversionError", "DestinationError", "load_state_dict", "to_flax", "convert_folder",
           "convert_voice", "TABLE", "fold_weight_norm"]


def convert_folder(src, dst, *, overwrite: bool = False, config=None):
    """Any voice vits_jax.load reads -> a converted checkpoint folder (see vits_jax.convert_weights)."""
    return convert_weights(src, dst, overwrite=overwrite, config=config)
