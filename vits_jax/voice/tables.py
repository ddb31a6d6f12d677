"""Name tables: source module paths -> Flax module paths and layer kinds (see mapper.py).

- TRANSFORMERS: transformers' VitsModel (`text_encoder.encoder.layers.0.attention.q_proj`, ...).
- ORIGINAL_VITS: the original VITS code (jaywalnut310/vits, MMS' fairseq release, Piper's training
  code and Piper ONNX voices once read): `enc_p`, `dp`, `flow`, `dec`, `enc_q`, `emb_g`.
  transformers' VitsModel mirrors the same modules under other names, with two index shifts: the
  original keeps its parameterless `Flip` layers in the flow lists, so `flow.flows.{0,2,4,6}` are
  transformers' `flow.flows.{0,1,2,3}` and `dp.flows.{0,1,3,5,7}` (and `dp.post_flows`) are
  `flows.{0,1,2,3,4}`. `dp.flows.1` is the spline flow the reverse pass skips (both codes skip it).
- DISCRIMINATOR: the original MultiPeriodDiscriminator (`discriminators.N.convs.M`), weight norm kept.
- FLAX: a converted folder read back: names are the Flax paths themselves.
"""

from __future__ import annotations

import re
from typing import Optional

from .mapper import Row, Table

_N = r"\d+"

# --- transformers ------------------------------------------------------------------------------
_LAYER = rf"text_encoder\.encoder\.layers\.{_N}"
_WAVENET = rf"(flow\.flows\.{_N}|posterior_encoder)\.wavenet"
_SDP = r"duration_predictor"
_DDS = rf"{_SDP}\.((post_)?flows\.{_N}\.conv_dds|(post_)?conv_dds)"

TRANSFORMERS = Table("transformers", (
    # text encoder
    Row(r"text_encoder\.embed_tokens", "embedding"),
    Row(rf"{_LAYER}\.attention\.(q|k|v|out)_proj", "linear"),
    Row(rf"{_LAYER}\.attention", "attention"),
    Row(rf"{_LAYER}\.(layer_norm|final_layer_norm)", "layer_norm"),
    Row(rf"{_LAYER}\.feed_forward\.conv_(1|2)", "conv"),
    Row(r"text_encoder\.project", "conv"),
    # prior flow and posterior encoder (WaveNet)
    Row(rf"flow\.flows\.{_N}\.conv_(pre|post)", "conv"),
    Row(rf"{_WAVENET}\.(in_layers\.{_N}|res_skip_layers\.{_N}|cond_layer)", "conv"),
    Row(r"posterior_encoder\.conv_(pre|proj)", "conv"),
    # HiFi-GAN decoder (convs: ResBlock2, a vits-jax extension)
    Row(r"decoder\.(conv_pre|conv_post|cond)", "conv"),
    Row(rf"decoder\.upsampler\.{_N}", "conv_transpose"),
    Row(rf"decoder\.resblocks\.{_N}\.convs(1|2)?\.{_N}", "conv"),
    # stochastic duration predictor
    Row(rf"{_SDP}\.(post_)?conv_(pre|proj)", "conv"),
    Row(rf"{_SDP}\.cond", "conv"),
    Row(rf"{_SDP}\.(post_)?flows\.0", "affine"),
    Row(rf"{_SDP}\.(post_)?flows\.{_N}\.conv_(pre|proj)", "conv"),
    Row(rf"{_DDS}\.(convs_dilated|convs_pointwise)\.{_N}", "conv"),
    Row(rf"{_DDS}\.(norms_1|norms_2)\.{_N}", "layer_norm"),
    # deterministic duration predictor
    Row(rf"{_SDP}\.(conv_1|conv_2|proj)", "conv"),
    Row(rf"{_SDP}\.(norm_1|norm_2)", "layer_norm"),
    # speakers
    Row(r"embed_speaker", "embedding"),
), strip_prefixes=("vits.",))


# --- original VITS -----------------------------------------------------------------------------
def _prior_flow(index: str) -> Optional[int]:
    """flow.flows.{0,2,4,...} (Flip layers between) -> 0, 1, 2, ...; odd indices hold no weights."""
    n = int(index)
    return None if n % 2 else n // 2


def _duration_flow(index: str) -> Optional[int]:
    """dp.flows.0 (affine), then ConvFlow/Flip pairs: {1,3,5,...} -> 1, 2, 3, ..."""
    n = int(index)
    return 0 if n == 0 else (None if n % 2 == 0 else (n + 1) // 2)


def _flow(template: str):
    def target(m: re.Match) -> Optional[str]:
        i = _prior_flow(m["i"])
        return None if i is None else template.format(i=i, **{k: v for k, v in m.groupdict().items() if k != "i"})
    return target


def _dflow(template: str):
    def target(m: re.Match) -> Optional[str]:
        i = _duration_flow(m["i"])
        if i is None:
            return None
        post = "post_" if m["post"] else ""
        rest = {k: v for k, v in m.groupdict().items() if k not in ("i", "post")}
        return template.format(i=i, post=post, **rest)
    return target


_DDS_NAMES = {"convs_sep": "convs_dilated", "convs_1x1": "convs_pointwise"}


def _dds(prefix_template: str, index_fn=None):
    """DDSConv layers: convs_sep.N -> convs_dilated_N, convs_1x1.N -> convs_pointwise_N, norms as is."""
    def target(m: re.Match) -> Optional[str]:
        layer = _DDS_NAMES.get(m["layer"], m["layer"])
        head = m["post"] and "post_" or ""
        if index_fn is not None:
            i = index_fn(m["i"])
            if i is None:
                return None
            return prefix_template.format(post=head, i=i) + f"/{layer}_{m['n']}"
        return prefix_template.format(post=head) + f"/{layer}_{m['n']}"
    return target


_ENC = r"enc_p\.encoder"
_TE = "text_encoder/encoder/layers_{1}"
_WN = r"(?P<layer>in_layers|res_skip_layers)\.(?P<n>\d+)"

ORIGINAL_VITS = Table("original VITS", (
    # text encoder
    Row(r"enc_p\.emb", "embedding", "text_encoder/embed_tokens"),
    Row(rf"{_ENC}\.attn_layers\.(\d+)\.conv_([qkv])", "conv_as_linear", _TE + "/attention/{2}_proj"),
    Row(rf"{_ENC}\.attn_layers\.(\d+)\.conv_o", "conv_as_linear", _TE + "/attention/out_proj"),
    Row(rf"{_ENC}\.attn_layers\.(\d+)", "attention", _TE + "/attention"),
    Row(rf"{_ENC}\.norm_layers_1\.(\d+)", "vits_layer_norm", _TE + "/layer_norm"),
    Row(rf"{_ENC}\.norm_layers_2\.(\d+)", "vits_layer_norm", _TE + "/final_layer_norm"),
    Row(rf"{_ENC}\.ffn_layers\.(\d+)\.conv_([12])", "conv", _TE + "/feed_forward/conv_{2}"),
    Row(r"enc_p\.proj", "conv", "text_encoder/project"),
    # prior flow: ResidualCouplingLayer(pre, enc = WN, post) at even indices
    Row(r"flow\.flows\.(?P<i>\d+)\.(?P<c>pre|post)", "conv", _flow("flow/flows_{i}/conv_{c}")),
    Row(rf"flow\.flows\.(?P<i>\d+)\.enc\.{_WN}", "conv", _flow("flow/flows_{i}/wavenet/{layer}_{n}")),
    Row(r"flow\.flows\.(?P<i>\d+)\.enc\.cond_layer", "conv", _flow("flow/flows_{i}/wavenet/cond_layer")),
    # posterior encoder
    Row(r"enc_q\.(pre|proj)", "conv", "posterior_encoder/conv_{1}"),
    Row(rf"enc_q\.enc\.{_WN}", "conv", "posterior_encoder/wavenet/{1}_{2}"),
    Row(r"enc_q\.enc\.cond_layer", "conv", "posterior_encoder/wavenet/cond_layer"),
    # HiFi-GAN generator: ResBlock1 (convs1, convs2) or ResBlock2 (convs)
    Row(r"dec\.(conv_pre|conv_post|cond)", "conv", "decoder/{1}"),
    Row(r"dec\.ups\.(\d+)", "conv_transpose", "decoder/upsampler_{1}"),
    Row(r"dec\.resblocks\.(\d+)\.(convs1|convs2|convs)\.(\d+)", "conv", "decoder/resblocks_{1}/{2}_{3}"),
    # stochastic duration predictor; `dp.proj` is the deterministic predictor's `proj` too
    Row(r"dp\.pre", "conv", "duration_predictor/conv_pre"),
    Row(r"dp\.proj", "conv", ("duration_predictor/conv_proj", "duration_predictor/proj")),
    Row(r"dp\.cond", "conv", "duration_predictor/cond"),
    Row(r"dp\.post_(pre|proj)", "conv", "duration_predictor/post_conv_{1}"),
    Row(r"dp\.(?P<post>post_)?convs\.(?P<layer>convs_sep|convs_1x1)\.(?P<n>\d+)", "conv",
        _dds("duration_predictor/{post}conv_dds")),
    Row(r"dp\.(?P<post>post_)?convs\.(?P<layer>norms_1|norms_2)\.(?P<n>\d+)", "vits_layer_norm",
        _dds("duration_predictor/{post}conv_dds")),
    Row(r"dp\.(?P<post>post_)?flows\.(?P<i>0)", "vits_affine", _dflow("duration_predictor/{post}flows_{i}")),
    Row(r"dp\.(?P<post>post_)?flows\.(?P<i>\d+)\.(?P<c>pre|proj)", "conv",
        _dflow("duration_predictor/{post}flows_{i}/conv_{c}")),
    Row(r"dp\.(?P<post>post_)?flows\.(?P<i>\d+)\.convs\.(?P<layer>convs_sep|convs_1x1)\.(?P<n>\d+)", "conv",
        _dds("duration_predictor/{post}flows_{i}/conv_dds", _duration_flow)),
    Row(r"dp\.(?P<post>post_)?flows\.(?P<i>\d+)\.convs\.(?P<layer>norms_1|norms_2)\.(?P<n>\d+)",
        "vits_layer_norm", _dds("duration_predictor/{post}flows_{i}/conv_dds", _duration_flow)),
    # deterministic duration predictor
    Row(r"dp\.(conv_1|conv_2)", "conv", "duration_predictor/{1}"),
    Row(r"dp\.(norm_1|norm_2)", "vits_layer_norm", "duration_predictor/{1}"),
    # speakers
    Row(r"emb_g", "embedding", "embed_speaker"),
), strip_prefixes=("module.",))


# --- discriminator -----------------------------------------------------------------------------
DISCRIMINATOR = Table("discriminator", (
    Row(rf"discriminators\.{_N}\.convs\.{_N}", "weight_norm_conv"),
    Row(rf"discriminators\.{_N}\.conv_post", "weight_norm_conv"),
), weight_norm="keep", strip_prefixes=("module.",))


# --- converted folders -------------------------------------------------------------------------
FLAX = Table("Flax", (Row("", "flax"),), weight_norm="none")
