"""Sources of weights -> Flax param trees: one strict mapper (mapper.py), name tables (tables.py)."""

from .mapper import (TRAINING_ONLY, ConversionError, InferenceOnlyError, Mapped, Row, Table,
                     absent_training_weights, check_trainable, fold_weight_norm, map_weights)
from .tables import DISCRIMINATOR, FLAX, ORIGINAL_VITS, TRANSFORMERS

__all__ = ["ConversionError", "InferenceOnlyError", "Mapped", "Row", "Table", "TRAINING_ONLY",
           "absent_training_weights", "check_trainable", "fold_weight_norm", "map_weights",
           "DISCRIMINATOR", "FLAX", "ORIGINAL_VITS", "TRANSFORMERS"]
