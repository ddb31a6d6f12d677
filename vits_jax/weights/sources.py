"""What a path holds -> (state dict, name table, VitsConfig, tokenizer files to keep).

Sources (a converted vits-jax folder is read by checkpoint.py, not here):
- a transformers folder: `config.json` + `model.safetensors` (or sharded, or `pytorch_model.bin`);
- an original VITS checkpoint (jaywalnut310/vits `G_*.pth` = `{"model": ...}`, MMS' fairseq release,
  a plain state dict in .pth/.pt/.bin/.safetensors) with its VITS `config.json` (`data` / `model`
  sections) beside it or given as `config=`; a folder holding both (the newest G_*.pth is used);
- Piper's Lightning checkpoint `.ckpt` (`state_dict` with `model_g.` / `model_d.` prefixes); the
  hyper-parameters from the checkpoint (`hyper_parameters`) or from `config=`;
- a Piper voice `.onnx` (+ `.onnx.json`), or a folder holding one (read by onnx_voice.py).

Hyper-parameters the original VITS code fixes rather than configures (WaveNet and flow depths, the
duration predictor's kernel, layers, flows and bins, the attention window, the vocabulary size,
speakers) are read from the tensor shapes, so forks that changed them still load. Values no shape
can tell (upsample rates, residual dilations, the sampling rate, the spectrogram size) must come
from the config; a missing one is an error naming it, never a guess. Constants of the original code
that no file records: WaveNet dilation rate 1, spline tail bound 5, 2 duration-flow channels.
"""

from __future__ import annotations

import ast
import dataclasses
import glob
import os
import re
from typing import Any, Mapping, Optional

import numpy as np

from ..config import VitsConfig
from .files import (PYTORCH_BIN, SAFETENSORS, SAFETENSORS_INDEX, TORCH_SUFFIXES, TrainingCheckpoint,
                    read_json, read_weights)
from .mapper import ConversionError, Table
from .tables import ORIGINAL_VITS, TRANSFORMERS

TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
PIPER_JSON = "piper.json"       # a Piper voice's .onnx.json, kept verbatim in a converted folder


class SourceError(ValueError):
    """A path that is not a voice vits-jax can read, or a config that lacks a needed value."""


@dataclasses.dataclass
class Source:
    """A readable voice. `tokenizer_files`: {name in a converted folder: file to copy there}."""

    kind: str
    path: str
    config: VitsConfig
    table: Table
    state_dict: Mapping[str, np.ndarray]
    tokenizer_files: dict[str, str]


# ---------------------------------------------------------------------------- hyper-parameters
def _count(state: Mapping, pattern: str) -> int:
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


def architecture_from_weights(state: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    """VitsConfig fields that an original-VITS-named state dict determines by its shapes."""
    def need(module_or_key, weight=True):
        w = _weight(state, module_or_key) if weight else state.get(module_or_key)
        if w is None:
            raise ConversionError(f"{where}: {module_or_key} is missing; not an original VITS generator")
        return w

    emb = need("enc_p.emb.weight", weight=False)
    rel_k = need("enc_p.encoder.attn_layers.0.emb_rel_k", weight=False)      # (1, 2W+1, head_dim)
    ffn = need("enc_p.encoder.ffn_layers.0.conv_1")                          # (filter, hidden, k)
    out: dict[str, Any] = dict(
        vocab_size=emb.shape[0], hidden_size=emb.shape[1],
        num_hidden_layers=_count(state, r"enc_p\.encoder\.attn_layers\.(\d+)\."),
        window_size=(rel_k.shape[1] - 1) // 2, num_attention_heads=emb.shape[1] // rel_k.shape[2],
        ffn_dim=ffn.shape[0], ffn_kernel_size=ffn.shape[2],
        flow_size=need("enc_p.proj").shape[0] // 2,
        prior_encoder_num_flows=_count(state, r"flow\.flows\.(\d+)\.pre\."),
        prior_encoder_num_wavenet_layers=_count(state, r"flow\.flows\.0\.enc\.in_layers\.(\d+)\."),
        wavenet_kernel_size=need("flow.flows.0.enc.in_layers.0").shape[2],
        wavenet_dilation_rate=1, depth_separable_channels=2, duration_predictor_tail_bound=5.0,
        upsample_initial_channel=need("dec.conv_pre").shape[0],
        upsample_kernel_sizes=[need(f"dec.ups.{i}").shape[2]
                               for i in range(_count(state, r"dec\.ups\.(\d+)\."))],
        resblock="2" if _weight(state, "dec.resblocks.0.convs.0") is not None else "1",
        use_stochastic_duration_prediction="dp.flows.0.logs" in state,
    )
    if _weight(state, "enc_q.pre") is not None:
        out["posterior_encoder_num_wavenet_layers"] = _count(state, r"enc_q\.enc\.in_layers\.(\d+)\.")
        out["spectrogram_bins"] = need("enc_q.pre").shape[1]
    if out["use_stochastic_duration_prediction"]:
        sep = need("dp.convs.convs_sep.0")
        flows = [int(m[1]) for k in state if (m := re.match(r"dp\.flows\.(\d+)\.proj\.", k))]
        out.update(duration_predictor_kernel_size=sep.shape[2],
                   depth_separable_num_layers=_count(state, r"dp\.convs\.convs_sep\.(\d+)\."),
                   duration_predictor_num_flows=max(flows) // 2 + 1 if flows else 0,
                   duration_predictor_flow_bins=(need(f"dp.flows.{max(flows)}.proj").shape[0] + 1) // 3
                   if flows else 10)
    else:
        conv = need("dp.conv_1")
        out.update(duration_predictor_filter_channels=conv.shape[0], duration_predictor_kernel_size=conv.shape[2])
    emb_g = state.get("emb_g.weight")
    out.update(num_speakers=1 if emb_g is None else emb_g.shape[0],
               speaker_embedding_size=0 if emb_g is None else emb_g.shape[1])
    num_blocks = _count(state, r"dec\.resblocks\.(\d+)\.")
    stages = len(out["upsample_kernel_sizes"])
    if stages == 0 or num_blocks % stages:
        raise ConversionError(f"{where}: {num_blocks} decoder residual blocks for {stages} upsampling stages")
    first = "convs" if out["resblock"] == "2" else "convs1"
    out["resblock_kernel_sizes"] = [need(f"dec.resblocks.{j}.{first}.0").shape[2]
                                    for j in range(num_blocks // stages)]
    return {k: (int(v) if isinstance(v, (np.integer, int)) and not isinstance(v, bool) else v)
            for k, v in out.items()}


def _literal(value):
    """Piper stores some tuples as strings ("(8, 8, 4)"): read them as Python literals."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def config_from_hparams(h: Mapping[str, Any], state: Mapping[str, np.ndarray], where: str) -> VitsConfig:
    """Original VITS / Piper hyper-parameters (Piper's names: sample_rate, num_speakers, ...) plus
    the weights' shapes -> VitsConfig. Values in `h` win; the mapper then checks them against the
    shapes, so a config that disagrees with the weights is reported, not silently overridden."""
    def need(name):
        if h.get(name) is None:
            raise SourceError(f"{where} lacks {name}, which the weights cannot tell; give the "
                              "training config (VITS config.json or Piper's hyper-parameters)")
        return _literal(h[name])

    cfg = architecture_from_weights(state, where)
    renames = dict(hidden_channels="hidden_size", inter_channels="flow_size", filter_channels="ffn_dim",
                   n_heads="num_attention_heads", n_layers="num_hidden_layers", kernel_size="ffn_kernel_size",
                   resblock="resblock", resblock_kernel_sizes="resblock_kernel_sizes",
                   upsample_initial_channel="upsample_initial_channel",
                   upsample_kernel_sizes="upsample_kernel_sizes", use_sdp="use_stochastic_duration_prediction",
                   num_symbols="vocab_size")
    for name, field in renames.items():
        if h.get(name) is not None:
            cfg[field] = _literal(h[name])
    if h.get("gin_channels") and cfg["num_speakers"] > 1:
        cfg["speaker_embedding_size"] = int(h["gin_channels"])
    cfg["upsample_rates"] = need("upsample_rates")
    cfg["resblock_dilation_sizes"] = need("resblock_dilation_sizes")
    cfg["sampling_rate"] = need("sample_rate")
    if "spectrogram_bins" not in cfg or h.get("filter_length") is not None:
        cfg["spectrogram_bins"] = int(need("filter_length")) // 2 + 1
    cfg["resblock"] = str(cfg["resblock"])
    try:
        return VitsConfig.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise SourceError(f"{where}: {e}") from None


def hparams_from_vits_json(data: Any, path: str) -> dict[str, Any]:
    """VITS' config.json ({"data": {...}, "model": {...}}) -> Piper-style hyper-parameter names."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or not isinstance(data.get("data"), dict):
        raise SourceError(f"{path} is not an original VITS config (no 'data' and 'model' sections)")
    h = {**data["data"], **data["model"]}
    h["sample_rate"] = data["data"].get("sampling_rate")
    h["num_speakers"] = data["data"].get("n_speakers")
    return h


# ---------------------------------------------------------------------------- sources
def _names_are_original(state: Mapping[str, Any]) -> bool:
    return any(k.startswith(("enc_p.", "dec.", "flow.flows.")) for k in state)


def _newest_generator(folder: str) -> Optional[str]:
    """jaywalnut310's training folder: G_<step>.pth, the highest step."""
    found = glob.glob(os.path.join(folder, "G_*.pth"))
    steps = [(int(m[1]), f) for f in found if (m := re.fullmatch(r"G_(\d+)\.pth", os.path.basename(f)))]
    return max(steps)[1] if steps else None


def _tokenizer_files(folder: str) -> dict[str, str]:
    files = {n: os.path.join(folder, n) for n in TOKENIZER_FILES if os.path.isfile(os.path.join(folder, n))}
    if os.path.isfile(os.path.join(folder, PIPER_JSON)):
        files[PIPER_JSON] = os.path.join(folder, PIPER_JSON)
    return files


def _original(path: str, state: Mapping[str, np.ndarray], hparams: Mapping, where: str, kind: str,
              files: dict[str, str]) -> Source:
    config = config_from_hparams(hparams, state, where)
    return Source(kind, path, config, ORIGINAL_VITS, state, files)


def _checkpoint_config(weights: str, config: Optional[str]) -> tuple[dict, str, dict[str, str]]:
    """The VITS config.json for a checkpoint file: `config` or config.json beside it."""
    config = config or os.path.join(os.path.dirname(os.path.abspath(weights)), "config.json")
    if not os.path.isfile(config):
        raise SourceError(f"{weights} is an original VITS checkpoint; its hyper-parameters are in the "
                          f"training config.json, which is not beside it: pass it as config=PATH "
                          f"(--config on the command line)")
    data = read_json(config, "VITS config")
    if isinstance(data, dict) and "phoneme_id_map" in data and "model" not in data:
        return {"sample_rate": data.get("audio", {}).get("sample_rate")}, config, {PIPER_JSON: config}
    return hparams_from_vits_json(data, config), config, _tokenizer_files(os.path.dirname(config))


def _piper_checkpoint(path: str, config: Optional[str]) -> Source:
    ckpt: TrainingCheckpoint = read_weights(path)
    state = {k[len("model_g."):]: v for k, v in ckpt.items() if k.startswith("model_g.")}
    if not state:
        raise SourceError(f"{path} has no generator weights (no 'model_g.' entries in its state_dict)")
    hparams: dict[str, Any] = {}
    files: dict[str, str] = {}
    where = f"{path} (hyper_parameters)"
    if config is not None or ckpt.hyper_parameters is None:
        hparams, where, files = _checkpoint_config(path, config)
    if ckpt.hyper_parameters is not None:
        from .torch_pickle import Opaque
        hparams = {**{k: v for k, v in ckpt.hyper_parameters.items() if not isinstance(v, Opaque)}, **hparams}
    if not files:
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
        if os.path.isfile(beside) and "phoneme_id_map" in (read_json(beside) or {}):
            files = {PIPER_JSON: beside}       # Piper's training folder keeps the voice config here
    return _original(path, state, hparams, where, "Piper checkpoint", files)


def _piper_onnx(path: str) -> Source:
    from .onnx_voice import load_onnx_voice     # needs the optional `onnx` package

    state, config_dict, _voice_json = load_onnx_voice(path)
    try:
        config = VitsConfig.from_dict(config_dict)
    except (TypeError, ValueError) as e:
        raise SourceError(f"{path}: {e}") from None
    return Source("Piper ONNX", path, config, ORIGINAL_VITS, state, {PIPER_JSON: path + ".json"})


def _weights_file(path: str, config: Optional[str]) -> Source:
    state = read_weights(path)
    if _names_are_original(state):
        hparams, where, files = _checkpoint_config(path, config)
        return _original(path, state, hparams, where, "original VITS", files)
    config = config or os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if not os.path.isfile(config):
        raise SourceError(f"{path}: transformers weights need their config.json beside them or as config=PATH")
    return Source("transformers", path, VitsConfig.from_json(config), TRANSFORMERS, state,
                  _tokenizer_files(os.path.dirname(config)))


def _folder(path: str, config: Optional[str]) -> Source:
    cfg_path = os.path.join(path, "config.json")
    data = read_json(cfg_path, "model config") if os.path.isfile(cfg_path) else None
    if isinstance(data, dict) and "model" in data and "data" in data:        # original VITS folder
        weights = _newest_generator(path) or next(
            (os.path.join(path, n) for n in ("model.safetensors", "model.pth", PYTORCH_BIN)
             if os.path.isfile(os.path.join(path, n))), None)
        if weights is None:
            raise SourceError(f"{path} holds an original VITS config.json but no G_*.pth weights")
        return _weights_file(weights, config or cfg_path)
    if data is not None and any(os.path.isfile(os.path.join(path, n))
                                for n in (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH_BIN)):
        return Source("transformers", path, VitsConfig.from_json(config or cfg_path), TRANSFORMERS,
                      read_weights(path), _tokenizer_files(path))
    for suffix, opener in ((".onnx", lambda f: _piper_onnx(f)), (".ckpt", lambda f: _piper_checkpoint(f, config))):
        found = sorted(glob.glob(os.path.join(path, f"*{suffix}")))
        if len(found) == 1:
            return opener(found[0])
        if len(found) > 1:
            raise SourceError(f"{path} holds several {suffix} files ({', '.join(map(os.path.basename, found))}); "
                              "name the one to use")
    if data is not None:
        raise FileNotFoundError(f"no {SAFETENSORS} or {PYTORCH_BIN} in {path}")
    raise SourceError(f"{path} is not a voice folder: it holds no config.json with weights, no .onnx "
                      "voice and no .ckpt checkpoint")


def open_source(path: str, config: Optional[str] = None) -> Source:
    """A local file or folder -> Source. `config`: the training config of an original VITS or Piper
    checkpoint when it is not beside the weights."""
    path = os.fspath(path)
    if config is not None and not os.path.isfile(config):
        raise FileNotFoundError(f"config {config} not found")
    if os.path.isdir(path):
        return _folder(path, config)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    if path.endswith(".onnx"):
        return _piper_onnx(path)
    if path.endswith(".ckpt"):
        return _piper_checkpoint(path, config)
    if path.endswith(TORCH_SUFFIXES + (".safetensors",)):
        return _weights_file(path, config)
    raise SourceError(f"{path}: unknown weights format (expected a folder, .onnx, .ckpt, .pth, .pt, .bin "
                      "or .safetensors)")
