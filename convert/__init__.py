"""Converter from transformers' PyTorch VITS/MMS weights to vits_jax checkpoints.

    python -m convert SRC_DIR DST_DIR
"""

from .convert import ConversionError, load_state_dict, to_flax
from vits_jax.weights import TRANSFORMERS as TABLE, fold_weight_norm

__all__ = ["ConversionError", "load_state_dict", "to_flax", "convert_folder", "TABLE", "fold_weight_norm"]


def convert_folder(src, dst):
    """A transformers model folder -> a converted checkpoint folder (see vits_jax.checkpoint)."""
    from vits_jax.checkpoint import load, save
    params = load(src)
    save(params, dst, tokenizer_dir=src)
    return params
