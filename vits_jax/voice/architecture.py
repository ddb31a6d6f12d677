"""Architecture from shapes: the VitsConfig fields an original-VITS-named state dict determines.

Hyper-parameters the original VITS code fixes rather than configures (WaveNet and flow depths, the
duration predictor's kernel, layers, flows and bins, the attention window, the vocabulary size,
speakers) are read from the tensor shapes, so forks that changed them still load. Constants of the
original code that no file records: WaveNet dilation rate 1, spline tail bound 5, 2 duration-flow
channels. Used by every reader of original VITS names (training checkpoints, Piper ONNX voices).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import numpy as np

from .mapper import ConversionError

__all__ = ["architecture_from_weights", "count_indices"]


def count_indices(state: Mapping, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m[1] for k in state if (m := rx.match(k))})


def _first(state: Mapping, *names: str) -> Optional[np.ndarray]:
    for n in names:
        if n in state:
            return state[n]
    return None


def _weight(state: Mapping, module: str) -> Optional[np.ndarray]:
    """A conv's weight under any spelling (plain, weight_v, parametrizations)."""
    return _first(state, f"{module}.weight", f"{module}.weight_v", f"{module}.parametrizations.weight.original1")


def architecture_from_weights(state: Mapping[str, np.ndarray], where: str, error=ConversionError) -> dict[str, Any]:
    """VitsConfig fields that an original-VITS-named state dict determines by its shapes (every
    reader of original VITS names uses this one: checkpoints and Piper ONNX voices). `error`: the
    exception class a missing or inconsistent tensor raises."""
    def need(module_or_key, weight=True):
        w = _weight(state, module_or_key) if weight else state.get(module_or_key)
        if w is None:
            raise error(f"{where}: {module_or_key} is missing; not an original VITS generator")
        return w

    emb = need("enc_p.emb.weight", weight=False)
    rel_k = need("enc_p.encoder.attn_layers.0.emb_rel_k", weight=False)      # (1, 2W+1, head_dim)
    ffn = need("enc_p.encoder.ffn_layers.0.conv_1")                          # (filter, hidden, k)
    out: dict[str, Any] = dict(
        vocab_size=emb.shape[0], hidden_size=emb.shape[1],
        num_hidden_layers=count_indices(state, r"enc_p\.encoder\.attn_layers\.(\d+)\."),
        window_size=(rel_k.shape[1] - 1) // 2, num_attention_heads=emb.shape[1] // rel_k.shape[2],
        ffn_dim=ffn.shape[0], ffn_kernel_size=ffn.shape[2],
        flow_size=need("enc_p.proj").shape[0] // 2,
        prior_encoder_num_flows=count_indices(state, r"flow\.flows\.(\d+)\.pre\."),
        prior_encoder_num_wavenet_layers=count_indices(state, r"flow\.flows\.0\.enc\.in_layers\.(\d+)\."),
        wavenet_kernel_size=need("flow.flows.0.enc.in_layers.0").shape[2],
        wavenet_dilation_rate=1, depth_separable_channels=2, duration_predictor_tail_bound=5.0,
        upsample_initial_channel=need("dec.conv_pre").shape[0],
        upsample_kernel_sizes=[need(f"dec.ups.{i}").shape[2]
                               for i in range(count_indices(state, r"dec\.ups\.(\d+)\."))],
        resblock="2" if _weight(state, "dec.resblocks.0.convs.0") is not None else "1",
        use_stochastic_duration_prediction="dp.flows.0.logs" in state,
    )
    if _weight(state, "enc_q.pre") is not None:
        out["posterior_encoder_num_wavenet_layers"] = count_indices(state, r"enc_q\.enc\.in_layers\.(\d+)\.")
        out["spectrogram_bins"] = need("enc_q.pre").shape[1]
    if out["use_stochastic_duration_prediction"]:
        sep = need("dp.convs.convs_sep.0")
        flows = [int(m[1]) for k in state if (m := re.match(r"dp\.flows\.(\d+)\.proj\.", k))]
        out.update(duration_predictor_kernel_size=sep.shape[2],
                   depth_separable_num_layers=count_indices(state, r"dp\.convs\.convs_sep\.(\d+)\."),
                   duration_predictor_num_flows=max(flows) // 2 + 1 if flows else 0,
                   duration_predictor_flow_bins=(need(f"dp.flows.{max(flows)}.proj").shape[0] + 1) // 3
                   if flows else 10)
    else:
        conv = need("dp.conv_1")
        out.update(duration_predictor_filter_channels=conv.shape[0], duration_predictor_kernel_size=conv.shape[2])
    emb_g = state.get("emb_g.weight")
    out.update(num_speakers=1 if emb_g is None else emb_g.shape[0],
               speaker_embedding_size=0 if emb_g is None else emb_g.shape[1])
    num_blocks = count_indices(state, r"dec\.resblocks\.(\d+)\.")
    stages = len(out["upsample_kernel_sizes"])
    if stages == 0 or num_blocks % stages:
        raise error(f"{where}: {num_blocks} decoder residual blocks for {stages} upsampling stages")
    first = "convs" if out["resblock"] == "2" else "convs1"
    out["resblock_kernel_sizes"] = [need(f"dec.resblocks.{j}.{first}.0").shape[2]
                                    for j in range(num_blocks // stages)]
    return {k: (int(v) if isinstance(v, (np.integer, int)) and not isinstance(v, bool) else v)
            for k, v in out.items()}
