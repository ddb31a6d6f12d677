"""The transformers name table and layer kinds, now in vits_jax.weights (re-exported here)."""

from vits_jax.weights.mapper import KINDS, fold_weight_norm
from vits_jax.weights.tables import TRANSFORMERS as TABLE

__all__ = ["KINDS", "TABLE", "fold_weight_norm"]
