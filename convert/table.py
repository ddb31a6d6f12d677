"""The transformers name table and layer kinds, now in vits_jax.voice (re-exported here)."""

from vits_jax.voice.mapper import KINDS, fold_weight_norm
from vits_jax.voice.tables import TRANSFORMERS as TABLE

__all__ = ["KINDS", "TABLE", "fold_weight_norm"]
