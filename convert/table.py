"""The name table: transformers' VitsModel state-dict names -> Flax param paths, with transforms.

Each row matches a transformers *module* path (the key without its last segment) and names the
layer kind; the kind says how each of that module's tensors becomes a Flax leaf. ModuleList
indices become suffixes (`flows.2` -> `flows_2`), as the Flax modules name their children.
Weight norm is folded before the table is consulted (see `fold_weight_norm`).
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]

# kind -> {torch param name: (flax leaf name, transform)}
KINDS: dict[str, dict[str, tuple[str, Transform]]] = {
    # Conv1d weight (out, in/groups, k) -> kernel (k, in/groups, out)
    "conv": {"weight": ("kernel", lambda w: w.transpose(2, 1, 0)), "bias": ("bias", lambda b: b)},
    # ConvTranspose1d weight (in, out, k) -> kernel (k, in, out); kernel[j] == weight[:, :, j]
    "conv_transpose": {"weight": ("kernel", lambda w: w.transpose(2, 0, 1)), "bias": ("bias", lambda b: b)},
    # Linear weight (out, in) -> kernel (in, out)
    "linear": {"weight": ("kernel", lambda w: w.T), "bias": ("bias", lambda b: b)},
    "layer_norm": {"weight": ("scale", lambda w: w), "bias": ("bias", lambda b: b)},
    "embedding": {"weight": ("embedding", lambda w: w)},
    # relative position tables (1, 2W+1, D) -> (2W+1, D)
    "attention": {"emb_rel_k": ("emb_rel_k", lambda w: w[0]), "emb_rel_v": ("emb_rel_v", lambda w: w[0])},
    # elementwise affine (C, 1) -> (C,)
    "affine": {"translate": ("translate", lambda w: w[:, 0]), "log_scale": ("log_scale", lambda w: w[:, 0])},
}

_N = r"\d+"
_LAYER = rf"text_encoder\.encoder\.layers\.{_N}"
_WAVENET = rf"(flow\.flows\.{_N}|posterior_encoder)\.wavenet"
_SDP = r"duration_predictor"
_DDS = rf"{_SDP}\.((post_)?flows\.{_N}\.conv_dds|(post_)?conv_dds)"

TABLE: list[tuple[str, str]] = [
    # text encoder
    (r"text_encoder\.embed_tokens", "embedding"),
    (rf"{_LAYER}\.attention\.(q|k|v|out)_proj", "linear"),
    (rf"{_LAYER}\.attention", "attention"),
    (rf"{_LAYER}\.(layer_norm|final_layer_norm)", "layer_norm"),
    (rf"{_LAYER}\.feed_forward\.conv_(1|2)", "conv"),
    (r"text_encoder\.project", "conv"),
    # prior flow and posterior encoder (WaveNet)
    (rf"flow\.flows\.{_N}\.conv_(pre|post)", "conv"),
    (rf"{_WAVENET}\.(in_layers\.{_N}|res_skip_layers\.{_N}|cond_layer)", "conv"),
    (r"posterior_encoder\.conv_(pre|proj)", "conv"),
    # HiFi-GAN decoder
    (r"decoder\.(conv_pre|conv_post|cond)", "conv"),
    (rf"decoder\.upsampler\.{_N}", "conv_transpose"),
    (rf"decoder\.resblocks\.{_N}\.convs(1|2)\.{_N}", "conv"),
    # stochastic duration predictor
    (rf"{_SDP}\.(post_)?conv_(pre|proj)", "conv"),
    (rf"{_SDP}\.cond", "conv"),
    (rf"{_SDP}\.(post_)?flows\.0", "affine"),
    (rf"{_SDP}\.(post_)?flows\.{_N}\.conv_(pre|proj)", "conv"),
    (rf"{_DDS}\.(convs_dilated|convs_pointwise)\.{_N}", "conv"),
    (rf"{_DDS}\.(norms_1|norms_2)\.{_N}", "layer_norm"),
    # deterministic duration predictor
    (rf"{_SDP}\.(conv_1|conv_2|proj)", "conv"),
    (rf"{_SDP}\.(norm_1|norm_2)", "layer_norm"),
    # speakers
    (r"embed_speaker", "embedding"),
]

_COMPILED = [(re.compile(pattern), kind) for pattern, kind in TABLE]


def module_kind(module_path: str) -> str | None:
    """The table's kind for a transformers module path, or None when no row matches."""
    for pattern, kind in _COMPILED:
        if pattern.fullmatch(module_path):
            return kind
    return None


def flax_path(module_path: str) -> tuple[str, ...]:
    """'flow.flows.2.wavenet.in_layers.0' -> ('flow', 'flows_2', 'wavenet', 'in_layers_0')."""
    out: list[str] = []
    for part in module_path.split("."):
        if part.isdigit():
            out[-1] = f"{out[-1]}_{part}"
        else:
            out.append(part)
    return tuple(out)


def map_key(key: str) -> tuple[tuple[str, ...], Transform] | None:
    """A transformers state-dict key -> (Flax path, transform), or None if the table lacks it."""
    module_path, _, name = key.rpartition(".")
    kind = module_kind(module_path)
    if kind is None or name not in KINDS[kind]:
        return None
    leaf, transform = KINDS[kind][name]
    return flax_path(module_path) + (leaf,), transform


def fold_weight_norm(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replaces weight-norm pairs by the weight they stand for: w = g * v / ||v||.

    Both spellings: `X.weight_g` / `X.weight_v` (saved MMS checkpoints) and
    `X.parametrizations.weight.original0` / `original1` (current torch). The norm runs over all
    dims but 0, as torch's weight_norm(dim=0); g is shaped (dim0, 1, ...). Unpaired halves are
    left in place, to be reported as unexpected keys.
    """
    spellings = [(".weight_g", ".weight_v"),
                 (".parametrizations.weight.original0", ".parametrizations.weight.original1")]
    out = dict(state_dict)
    for g_suffix, v_suffix in spellings:
        for key in [k for k in state_dict if k.endswith(g_suffix)]:
            base = key[: -len(g_suffix)]
            if base + v_suffix not in state_dict:
                continue
            g, v = state_dict[key], state_dict[base + v_suffix]
            # torch's order of operations: v * (g / ||v||), in v's dtype.
            norm = np.sqrt(np.sum(np.square(v, dtype=np.float64), axis=tuple(range(1, v.ndim)),
                                  keepdims=True)).astype(v.dtype)
            out[base + ".weight"] = v * (g / norm)
            del out[key], out[base + v_suffix]
    return out
