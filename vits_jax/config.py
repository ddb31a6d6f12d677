"""VitsConfig: a frozen, hashable mirror of transformers' VitsConfig.

Field names and defaults are transformers' (the defaults are the MMS-eng architecture), so a
transformers `config.json` maps onto it one to one. Being frozen and hashable, it can be a static
argument of `jax.jit` and live as static metadata on a param pytree.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Optional, Tuple


# HiFi-GAN residual block types: "1" is transformers' HifiGanResidualBlock (convs1/convs2 pairs),
# "2" is HiFi-GAN V2/V3's lighter block (one dilated conv per dilation), used by Piper's voices.
# A vits-jax extension: transformers' VitsConfig has no such field and always means "1".
RESBLOCK_TYPES = frozenset({"1", "2"})


def _tupleize(value):
    if isinstance(value, (list, tuple)):
        return tuple(_tupleize(v) for v in value)
    return value


# Ranges checked when a config is built (after the type, from the annotation): a field not named
# here only has its type checked. "pos" > 0, "nonneg" >= 0, "prob" in [0, 1].
_RANGES = {
    "vocab_size": "pos", "hidden_size": "pos", "num_hidden_layers": "pos", "num_attention_heads": "pos",
    "window_size": "pos", "ffn_dim": "pos", "layerdrop": "prob", "ffn_kernel_size": "pos",
    "flow_size": "pos", "spectrogram_bins": "pos", "hidden_dropout": "prob", "attention_dropout": "prob",
    "activation_dropout": "prob", "initializer_range": "nonneg", "layer_norm_eps": "pos",
    "num_speakers": "pos", "speaker_embedding_size": "nonneg", "upsample_initial_channel": "pos",
    "upsample_rates": "pos", "upsample_kernel_sizes": "pos", "resblock_kernel_sizes": "pos",
    "resblock_dilation_sizes": "pos", "depth_separable_channels": "pos",
    "depth_separable_num_layers": "pos", "duration_predictor_flow_bins": "pos",
    "duration_predictor_tail_bound": "pos", "duration_predictor_kernel_size": "pos",
    "duration_predictor_dropout": "prob", "duration_predictor_num_flows": "pos",
    "duration_predictor_filter_channels": "pos", "prior_encoder_num_flows": "pos",
    "prior_encoder_num_wavenet_layers": "pos", "posterior_encoder_num_wavenet_layers": "pos",
    "wavenet_kernel_size": "pos", "wavenet_dilation_rate": "pos", "wavenet_dropout": "prob",
    "speaking_rate": "pos", "noise_scale": "nonneg", "noise_scale_duration": "nonneg",
    "sampling_rate": "pos", "pad_token_id": "nonneg",
}


def _check_scalar(name: str, value, kind: str):
    """`value` is of `kind` ("int", "float", "bool", "str") and in the field's range; returns it."""
    shown = f"{value!r} ({type(value).__name__})"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"config field {name} must be true or false, got {shown}")
        return value
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ValueError(f"config field {name} must be a non-empty string, got {shown}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"config field {name} must be {'an integer' if kind == 'int' else 'a number'}, "
                         f"got {shown}")
    if kind == "int" and not float(value).is_integer():
        raise ValueError(f"config field {name} must be an integer, got {shown}")
    if not math.isfinite(value):
        raise ValueError(f"config field {name} must be finite, got {shown}")
    value = int(value) if kind == "int" else float(value)
    rule = _RANGES.get(name)
    if (rule == "pos" and not value > 0) or (rule == "nonneg" and value < 0) or \
            (rule == "prob" and not 0 <= value <= 1):
        need = {"pos": "> 0", "nonneg": ">= 0", "prob": "in [0, 1]"}[rule]
        raise ValueError(f"config field {name} must be {need}, got {value!r}")
    return value


def _check_field(name: str, annotation: str, value):
    """Checks one field against its annotation (as written in the class) and returns it normalized."""
    if annotation.startswith("Optional["):
        return None if value is None else _check_field(name, annotation[9:-1], value)
    if annotation.startswith("Tuple["):
        inner = annotation[6:-1].rsplit(", ...", 1)[0]
        if not isinstance(value, tuple) or not value:
            raise ValueError(f"config field {name} must be a non-empty list, got {value!r}")
        return tuple(_check_field(name, inner, v) for v in value)
    return _check_scalar(name, value, annotation)


@dataclasses.dataclass(frozen=True)
class VitsConfig:
    vocab_size: int = 38
    hidden_size: int = 192
    num_hidden_layers: int = 6
    num_attention_heads: int = 2
    window_size: Optional[int] = 4
    use_bias: bool = True
    ffn_dim: int = 768
    layerdrop: float = 0.1
    ffn_kernel_size: int = 3
    flow_size: int = 192
    spectrogram_bins: int = 513
    hidden_act: str = "relu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    use_stochastic_duration_prediction: bool = True
    num_speakers: int = 1
    speaker_embedding_size: int = 0
    upsample_initial_channel: int = 512
    upsample_rates: Tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: Tuple[int, ...] = (16, 16, 4, 4)
    resblock_kernel_sizes: Tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: Tuple[Tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    resblock: str = "1"
    leaky_relu_slope: float = 0.1
    depth_separable_channels: int = 2
    depth_separable_num_layers: int = 3
    duration_predictor_flow_bins: int = 10
    duration_predictor_tail_bound: float = 5.0
    duration_predictor_kernel_size: int = 3
    duration_predictor_dropout: float = 0.5
    duration_predictor_num_flows: int = 4
    duration_predictor_filter_channels: int = 256
    prior_encoder_num_flows: int = 4
    prior_encoder_num_wavenet_layers: int = 4
    posterior_encoder_num_wavenet_layers: int = 16
    wavenet_kernel_size: int = 5
    wavenet_dilation_rate: int = 1
    wavenet_dropout: float = 0.0
    speaking_rate: float = 1.0
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8
    sampling_rate: int = 16_000
    pad_token_id: Optional[int] = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = _check_field(f.name, str(f.type), _tupleize(getattr(self, f.name)))
            object.__setattr__(self, f.name, value)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if len(self.upsample_kernel_sizes) != len(self.upsample_rates):
            raise ValueError("upsample_kernel_sizes and upsample_rates must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        if self.resblock not in RESBLOCK_TYPES:
            raise ValueError(f"resblock must be one of {sorted(RESBLOCK_TYPES)} (HiFi-GAN's residual block "
                             f"type: '1' as transformers, '2' as HiFi-GAN V2/V3), got {self.resblock!r}")
        if self.num_speakers > 1 and self.speaker_embedding_size <= 0:
            raise ValueError("a multi-speaker config needs speaker_embedding_size > 0")

    @property
    def hop_length(self) -> int:
        """Waveform samples per spectrogram frame (product of the upsample rates)."""
        out = 1
        for r in self.upsample_rates:
            out *= r
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VitsConfig":
        """Builds from a transformers config dict; keys that are not architecture fields are ignored.
        Every field's type and range is checked (ValueError naming the field)."""
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object of fields, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "VitsConfig":
        """From a config.json (or a folder holding one); errors name the file."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model_type"] = "vits"
        return out

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
