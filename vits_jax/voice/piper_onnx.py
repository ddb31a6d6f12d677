"""Piper ONNX voices: the weights of `<voice>.onnx` under original VITS names, and its config.

Piper exports the original VITS generator (`enc_p`, `dp`, `flow`, `dec`, `emb_g`) with weight norm
folded. Most initializers keep their module paths; the exceptions are mapped by the graph node that
consumes them, never by their order:

- the text embedding is the initializer gathered by `/enc_p/emb/Gather` (Piper names it `sid`);
  likewise a speaker table gathered by `/emb_g/Gather`;
- `onnx::Conv_NNNN` initializers (the flow's WaveNet convs) are named by their Conv node,
  e.g. `/flow/flows.6/enc/in_layers.0/Conv` -> `flow.flows.6.enc.in_layers.0.weight` (they are
  numbered in reverse flow order);
- the first duration flow's `logs` is folded into the constant `/dp/flows.0/Exp_output_0`, which
  is exp(-logs) (the reverse pass computes (x - m) * exp(-logs)); checked against the graph.

Every other initializer must be a graph constant (an integer tensor of a few elements or a float
scalar: shapes, pads, eps, sqrt(d)); anything else is an error that lists it.

Piper prunes what inference does not use (posterior encoder, the duration posterior, `dp.flows.1`),
so such a voice holds inference weights only. `onnx` is imported only when a voice is read.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from .architecture import architecture_from_weights, count_indices

__all__ = ["OnnxVoiceError", "read_onnx_voice", "onnx_voice_config", "load_onnx_voice"]

# Module scopes of the original VITS SynthesizerTrn (first path segment of a parameter name).
_TOP_MODULES = ("enc_p", "enc_q", "dp", "flow", "dec", "emb_g")
_PARAM_NAME = re.compile(rf"^({'|'.join(_TOP_MODULES)})(\.[A-Za-z0-9_]+)+$")
# A constant the exporter folds in: at most this many integer elements, or one float.
_MAX_CONSTANT_INTS = 16
# The embedding tables: Gather node scope -> parameter name.
_EMBEDDINGS = {"enc_p/emb": "enc_p.emb.weight", "emb_g": "emb_g.weight"}


class OnnxVoiceError(ValueError):
    """The file is not a Piper VITS voice this reader understands (names what does not fit)."""


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading a Piper .onnx voice needs the onnx package: "
                          "pip install 'vits-jax[onnx]'") from e
    return onnx, numpy_helper


def _scope(node_name: str) -> str:
    """'/flow/flows.6/enc/in_layers.0/Conv' -> 'flow.flows.6.enc.in_layers.0' (the module path)."""
    return ".".join(node_name.strip("/").split("/")[:-1])


def _node_scope_of_param(name: str) -> str:
    """'enc_p.encoder.attn_layers.0.emb_rel_k' -> 'enc_p/encoder/attn_layers.0' (the node prefix).
    A dot before a digit stays a dot (ModuleList entries are one scope: `attn_layers.0`)."""
    module = name.rpartition(".")[0]
    return re.sub(r"\.(?!\d)", "/", module)


def _voice_json_path(onnx_path: str) -> str:
    return f"{onnx_path}.json"


def _read_graph(onnx_path):
    """-> (state_dict, voice_json, conv attributes {module path: {attr: value}})."""
    onnx_path = os.fspath(onnx_path)
    if not os.path.isfile(onnx_path):
        raise OnnxVoiceError(f"no such ONNX voice file: {onnx_path}")
    json_path = _voice_json_path(onnx_path)
    if not os.path.isfile(json_path):
        raise OnnxVoiceError(f"{onnx_path}: its voice config {json_path} is missing (Piper ships each "
                             "voice as <voice>.onnx plus <voice>.onnx.json; put both in one folder)")
    try:
        with open(json_path, encoding="utf-8") as f:
            voice_json = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OnnxVoiceError(f"{json_path} is not valid JSON: {e}") from e
    if not isinstance(voice_json, dict):
        raise OnnxVoiceError(f"{json_path} must hold a JSON object, got {type(voice_json).__name__}")

    onnx, numpy_helper = _import_onnx()
    try:
        model = onnx.load(onnx_path)
    except Exception as e:  # onnx raises DecodeError and friends on a damaged file
        raise OnnxVoiceError(f"{onnx_path} is not a readable ONNX model: {e}") from e
    graph = model.graph

    consumers: dict[str, list[tuple[Any, int]]] = {}
    producers: dict[str, Any] = {}
    conv_attrs: dict[str, dict[str, Any]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
        for name in node.output:
            producers[name] = node
        if node.op_type in ("Conv", "ConvTranspose"):
            conv_attrs[_scope(node.name)] = {a.name: onnx.helper.get_attribute_value(a)
                                             for a in node.attribute}

    state: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    unknown: list[str] = []

    def put(key: str, value: np.ndarray, source: str):
        if key in state:
            unknown.append(f"{source} -> {key} (already given by {sources[key]})")
            return
        state[key] = np.asarray(value, dtype=np.float32)
        sources[key] = source

    for init in graph.initializer:
        name = init.name
        value = numpy_helper.to_array(init)
        uses = consumers.get(name, [])
        conv_uses = [(n, i) for n, i in uses if n.op_type in ("Conv", "ConvTranspose") and i in (1, 2)]
        gather_uses = [(n, i) for n, i in uses if n.op_type == "Gather" and i == 0
                       and _scope(n.name).replace(".", "/") in _EMBEDDINGS]

        if len(uses) == 1 and conv_uses:
            node, index = conv_uses[0]
            key = f"{_scope(node.name)}.{'weight' if index == 1 else 'bias'}"
            if _PARAM_NAME.match(name) and name != key:
                unknown.append(f"{name} (consumed by {node.name} as {key})")
                continue
            put(key, value, name)
        elif len(uses) == 1 and gather_uses:
            put(_EMBEDDINGS[_scope(gather_uses[0][0].name).replace(".", "/")], value, name)
        elif name.endswith("/Exp_output_0") and value.dtype.kind == "f" and value.size > 1:
            key = _folded_logs(name, uses, producers)
            if key is None:
                unknown.append(f"{name} (a folded Exp whose graph is not the duration flow's affine)")
                continue
            put(key, -np.log(value), name)
        elif _PARAM_NAME.match(name):
            prefix = "/" + _node_scope_of_param(name) + "/"
            if not uses or any(not n.name.startswith(prefix) for n, _ in uses):
                unknown.append(f"{name} (consumed by {[n.name for n, _ in uses]}, outside {prefix})")
                continue
            put(name, value, name)
        elif (value.dtype.kind in "iub" and value.size <= _MAX_CONSTANT_INTS) or \
                (value.dtype.kind == "f" and value.size == 1):
            continue   # a shape, pad, axis, eps or scale the exporter folded in
        else:
            consumed = sorted({n.name for n, _ in uses}) or ["nothing"]
            unknown.append(f"{name} {list(value.shape)} {value.dtype} (consumed by {', '.join(consumed)})")

    if unknown:
        raise OnnxVoiceError(f"{onnx_path}: {len(unknown)} initializer(s) not recognised as VITS weights "
                             "or graph constants:\n  " + "\n  ".join(unknown))
    if "enc_p.emb.weight" not in state:
        raise OnnxVoiceError(f"{onnx_path}: no text embedding (no initializer gathered by "
                             "/enc_p/emb/Gather); is this a Piper VITS voice?")
    return state, voice_json, conv_attrs


def _folded_logs(name: str, uses, producers) -> str | None:
    """'/dp/flows.0/Exp_output_0' -> 'dp.flows.0.logs' when the graph computes
    (x - <scope>.m) * this, the reverse of VITS' ElementwiseAffine; else None."""
    scope = _scope(name)
    if len(uses) != 1:
        return None
    node, _ = uses[0]
    if node.op_type != "Mul" or _scope(node.name) != scope:
        return None
    other = [i for i in node.input if i != name]
    sub = producers.get(other[0]) if len(other) == 1 else None
    if sub is None or sub.op_type != "Sub" or sub.input[1] != f"{scope}.m":
        return None
    return f"{scope}.logs"


def read_onnx_voice(onnx_path) -> tuple[dict[str, np.ndarray], dict]:
    """A Piper `<voice>.onnx` -> (state_dict, voice_json).

    state_dict: original VITS names -> float32 arrays (weight norm folded: plain `.weight` /
    `.bias`), e.g. `enc_p.emb.weight`, `flow.flows.0.enc.in_layers.0.weight`, `dp.flows.0.logs`,
    `dec.resblocks.4.convs.1.weight`. voice_json: the parsed `<voice>.onnx.json` beside it.
    Raises OnnxVoiceError naming any initializer that is neither a weight nor a graph constant.
    """
    state, voice_json, _ = _read_graph(onnx_path)
    return state, voice_json


def _need(state, key: str, onnx_path) -> np.ndarray:
    if key not in state:
        raise OnnxVoiceError(f"{onnx_path}: {key} is missing; cannot infer the architecture")
    return state[key]


def _config_dict(state, voice_json, conv_attrs, onnx_path) -> dict[str, Any]:
    """The shapes give the architecture (architecture_from_weights, as for every original-VITS
    source); the conv nodes give what no shape holds (strides, dilations), the .onnx.json the rest."""
    cfg = architecture_from_weights(state, str(onnx_path), error=OnnxVoiceError)
    if cfg["use_stochastic_duration_prediction"]:
        hidden = cfg["hidden_size"]
        if _need(state, "dp.pre.weight", onnx_path).shape[0] != hidden:
            raise OnnxVoiceError(f"{onnx_path}: the duration predictor's width differs from hidden_size "
                                 f"({state['dp.pre.weight'].shape[0]} vs {hidden}); transformers' VITS "
                                 "cannot express it")
        kernel = cfg["duration_predictor_kernel_size"]
        for i in range(cfg["depth_separable_num_layers"]):
            if conv_attrs.get(f"dp.convs.convs_sep.{i}", {}).get("dilations", [kernel ** i]) != [kernel ** i]:
                raise OnnxVoiceError(f"{onnx_path}: dp.convs.convs_sep.{i} is not dilated {kernel ** i} "
                                     "(kernel ** layer) as VITS' DDS conv")

    # Prior flow's WaveNet: dilation rate ** layer, the rate read from the second layer's node.
    rate = conv_attrs.get("flow.flows.0.enc.in_layers.1", {}).get("dilations", [1])[0]
    for i in range(cfg["prior_encoder_num_wavenet_layers"]):
        if conv_attrs.get(f"flow.flows.0.enc.in_layers.{i}", {}).get("dilations", [rate ** i]) != [rate ** i]:
            raise OnnxVoiceError(f"{onnx_path}: flow.flows.0.enc.in_layers.{i} is not dilated rate ** {i}")

    # HiFi-GAN: strides and dilations live on the conv nodes.
    num_ups = len(cfg["upsample_kernel_sizes"])
    rates = [int(conv_attrs[f"dec.ups.{i}"]["strides"][0]) for i in range(num_ups)]
    conv_list = "convs" if cfg["resblock"] == "2" else "convs1"
    dilations = []
    for j in range(len(cfg["resblock_kernel_sizes"])):
        n = count_indices(state, rf"dec\.resblocks\.{j}\.{conv_list}\.(\d+)\.weight")
        dilations.append([int(conv_attrs[f"dec.resblocks.{j}.{conv_list}.{m}"]["dilations"][0]) for m in range(n)])

    speakers = int(voice_json.get("num_speakers", 1))
    embed = state.get("emb_g.weight")
    if speakers > 1 and embed is None:
        raise OnnxVoiceError(f"{onnx_path}: the voice config says {speakers} speakers but the graph has no "
                             "speaker table (emb_g)")
    if "num_symbols" in voice_json and int(voice_json["num_symbols"]) != cfg["vocab_size"]:
        raise OnnxVoiceError(f"{onnx_path}: num_symbols {voice_json['num_symbols']} in the voice config, "
                             f"but the text embedding has {cfg['vocab_size']} rows")
    sample_rate = voice_json.get("audio", {}).get("sample_rate")
    if sample_rate is None:
        raise OnnxVoiceError(f"{_voice_json_path(onnx_path)} lacks audio.sample_rate")
    inference = voice_json.get("inference", {})
    length_scale = float(inference.get("length_scale", 1.0))
    if not length_scale > 0:
        raise OnnxVoiceError(f"{_voice_json_path(onnx_path)}: inference.length_scale must be > 0, "
                             f"got {length_scale}")
    filter_length = voice_json.get("audio", {}).get("filter_length")

    cfg.update(
        hidden_act="relu",
        # Only the posterior encoder (absent from a Piper export) reads spectrogram_bins; Piper
        # trains with filter_length 1024 unless its config says otherwise.
        spectrogram_bins=int(filter_length or 1024) // 2 + 1,
        num_speakers=speakers, speaker_embedding_size=0 if embed is None else int(embed.shape[1]),
        upsample_rates=rates, resblock_dilation_sizes=dilations, wavenet_dilation_rate=int(rate),
        sampling_rate=int(sample_rate),
        noise_scale=float(inference.get("noise_scale", 0.667)),
        noise_scale_duration=float(inference.get("noise_w", 0.8)),
        speaking_rate=1.0 / length_scale,   # Piper's length_scale stretches durations: 1 / rate
    )
    return cfg


def onnx_voice_config(onnx_path) -> dict[str, Any]:
    """The VitsConfig dict (transformers' field names, plus `resblock`) of a Piper voice: the
    architecture from initializer shapes and conv node attributes (strides, dilations), sampling
    rate, speakers and noise/length scales from its `.onnx.json` (speaking_rate = 1 / length_scale)."""
    return load_onnx_voice(onnx_path)[1]


def load_onnx_voice(onnx_path) -> tuple[dict[str, np.ndarray], dict[str, Any], dict]:
    """One read of a Piper voice -> (state_dict, config dict, voice_json); see read_onnx_voice."""
    state, voice_json, conv_attrs = _read_graph(onnx_path)
    return state, _config_dict(state, voice_json, conv_attrs, onnx_path), voice_json

