"""What a path is as a voice (`describe_source`, `tokenizer_location`), and its weights read (`open_source`).

Sources (a converted vits-jax folder is described here and read by checkpoint.py; an exported one,
`vits-jax export`'s, is a converted folder plus `programs/manifest.json` and the serialized
programs, which synth/exported.py writes and reads):
- a transformers folder: `config.json` + `model.safetensors` (or sharded, or `pytorch_model.bin`);
- an original VITS checkpoint (jaywalnut310/vits `G_*.pth` = `{"model": ...}`, MMS' fairseq release,
  a plain state dict in .pth/.pt/.bin/.safetensors) with its VITS `config.json` (`data` / `model`
  sections) beside it or given as `config=`; a folder holding both (the newest G_*.pth is used);
- Piper's Lightning checkpoint `.ckpt` (`state_dict` with `model_g.` / `model_d.` prefixes); the
  hyper-parameters from the checkpoint (`hyper_parameters`) or from `config=`;
- a Piper voice `.onnx` (+ `.onnx.json`), or a folder holding one (read by piper_onnx.py).

Every source of original VITS names gets its architecture from the weights' shapes
(architecture.py); values no shape can tell (upsample rates, residual dilations, the sampling rate,
the spectrogram size) must come from the config; a missing one is an error naming it, never a guess.
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
from .architecture import architecture_from_weights
from .mapper import Table
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


# ---------------------------------------------------------------------------- what a path is
CONVERTED, EXPORTED, TRANSFORMERS_KIND, ORIGINAL, PIPER_CHECKPOINT, PIPER_ONNX = (
    "vits-jax", "vits-jax exported", "transformers", "original VITS", "Piper checkpoint", "Piper ONNX")
WEIGHT_NAMES = (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH_BIN)
PARAMS_DIR = "params"           # a converted folder's orbax tree
PROGRAMS_DIR = "programs"       # an exported folder's serialized programs, beside params/
PROGRAMS_MANIFEST = "manifest.json"   # in PROGRAMS_DIR: what was exported, for which jax


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What a local voice is, decided from file names and small JSON files (no weights read).

    kind:    CONVERTED, EXPORTED (a converted folder with exported programs), TRANSFORMERS_KIND,
             ORIGINAL, PIPER_CHECKPOINT or PIPER_ONNX.
    path:    the path as given; weights: the file (or folder) the weights are read from.
    config:  the config.json that describes the voice (None where the weights carry it: Piper
             .onnx voices, Piper checkpoints without config=).
    tokenizer_files: {name in a converted folder: file to copy there}.
    """

    kind: str
    path: str
    weights: str
    config: Optional[str]
    tokenizer_files: dict

    @property
    def format(self) -> str:
        """One line for `vits-jax info`."""
        name = os.path.basename(self.weights)
        return {CONVERTED: "vits-jax checkpoint (orbax)",
                EXPORTED: "vits-jax checkpoint (orbax) with exported programs",
                TRANSFORMERS_KIND: f"transformers ({name})",
                PIPER_ONNX: f"Piper ONNX voice ({name})", PIPER_CHECKPOINT: f"Piper training checkpoint ({name})",
                }.get(self.kind, "original VITS checkpoint")


def _read_json_quietly(path: str):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _newest_generator(folder: str) -> Optional[str]:
    """jaywalnut310's training folder: G_<step>.pth, the highest step."""
    found = glob.glob(os.path.join(glob.escape(folder), "G_*.pth"))
    steps = [(int(m[1]), f) for f in found if (m := re.fullmatch(r"G_(\d+)\.pth", os.path.basename(f)))]
    return max(steps)[1] if steps else None


def _tokenizer_files(folder: str) -> dict[str, str]:
    files = {n: os.path.join(folder, n) for n in TOKENIZER_FILES if os.path.isfile(os.path.join(folder, n))}
    if os.path.isfile(os.path.join(folder, PIPER_JSON)):
        files[PIPER_JSON] = os.path.join(folder, PIPER_JSON)
    return files


def is_converted(path: str) -> bool:
    """A converted vits-jax folder (exported ones included): params/ and config.json."""
    return os.path.isdir(os.path.join(path, PARAMS_DIR)) and os.path.isfile(os.path.join(path, "config.json"))


def programs_manifest(path: str) -> str:
    """Where an exported folder keeps its programs' manifest."""
    return os.path.join(path, PROGRAMS_DIR, PROGRAMS_MANIFEST)


def _only(folder: str, suffix: str) -> Optional[str]:
    found = sorted(glob.glob(os.path.join(glob.escape(folder), f"*{suffix}")))
    if len(found) > 1:
        raise SourceError(f"{folder} holds several {suffix} files ({', '.join(map(os.path.basename, found))}); "
                          "name the one to use")
    return found[0] if found else None


def _checkpoint_file(path: str, config: Optional[str]) -> SourceInfo:
    """A weights file (.pth/.pt/.bin/.safetensors): original VITS when its config is VITS' or
    Piper's (or no transformers config is beside it), else transformers."""
    cfg = config or os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    data = _read_json_quietly(cfg) if os.path.isfile(cfg) else None
    transformers = isinstance(data, dict) and "model_type" in data or (
        isinstance(data, dict) and "model" not in data and "phoneme_id_map" not in data)
    kind = TRANSFORMERS_KIND if transformers else ORIGINAL
    return SourceInfo(kind, path, path, cfg if os.path.isfile(cfg) else None, {})


def describe_source(path: str, config: Optional[str] = None) -> SourceInfo:
    """THE one place that decides what a local file or folder is as a voice. `config`: the
    training config of an original VITS or Piper checkpoint when it is not beside the weights.
    Raises FileNotFoundError / SourceError naming what is missing or ambiguous."""
    path = os.fspath(path)
    if config is not None and not os.path.isfile(config):
        raise FileNotFoundError(f"config {config} not found")
    if os.path.isdir(path):
        cfg_path = os.path.join(path, "config.json")
        if is_converted(path):
            kind = EXPORTED if os.path.isfile(programs_manifest(path)) else CONVERTED
            return SourceInfo(kind, path, os.path.join(path, PARAMS_DIR), cfg_path, _tokenizer_files(path))
        data = read_json(cfg_path, "model config") if os.path.isfile(cfg_path) else None
        if isinstance(data, dict) and "model" in data and "data" in data:        # original VITS folder
            weights = _newest_generator(path) or next(
                (os.path.join(path, n) for n in ("model.safetensors", "model.pth", PYTORCH_BIN)
                 if os.path.isfile(os.path.join(path, n))), None)
            if weights is None:
                raise SourceError(f"{path} holds an original VITS config.json but no G_*.pth weights")
            return dataclasses.replace(_checkpoint_file(weights, config or cfg_path), path=path)
        names = [n for n in WEIGHT_NAMES if os.path.isfile(os.path.join(path, n))]
        if data is not None and names:
            return SourceInfo(TRANSFORMERS_KIND, path, os.path.join(path, names[0]), config or cfg_path,
                              _tokenizer_files(path))
        onnx = _only(path, ".onnx")
        if onnx is not None:
            return dataclasses.replace(describe_source(onnx), path=path)
        ckpt = _only(path, ".ckpt")
        if ckpt is not None:
            return dataclasses.replace(describe_source(ckpt, config), path=path)
        if data is not None:
            raise FileNotFoundError(f"no {SAFETENSORS} or {PYTORCH_BIN} in {path}")
        raise SourceError(f"{path} is not a voice folder: it holds no config.json with weights, no .onnx "
                          "voice and no .ckpt checkpoint")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    if path.endswith(".onnx"):
        return SourceInfo(PIPER_ONNX, path, path, None, {PIPER_JSON: path + ".json"})
    if path.endswith(".ckpt"):
        return SourceInfo(PIPER_CHECKPOINT, path, path, config, {})
    if path.endswith(TORCH_SUFFIXES + (".safetensors",)):
        return _checkpoint_file(path, config)
    raise SourceError(f"{path}: unknown weights format (expected a folder, .onnx, .ckpt, .pth, .pt, .bin "
                      "or .safetensors)")


def tokenizer_location(path: str, config: Optional[str] = None) -> tuple[str, str]:
    """A local voice or tokenizer -> ("vits", folder with vocab.json) or ("piper", voice config JSON),
    without reading weights. The one place that decides where a voice's tokenizer is.

    Read as they are: a folder with vocab.json, or with piper.json (a converted Piper voice), or
    holding exactly one *.onnx.json; a Piper .onnx (its .onnx.json beside it); a .onnx.json.
    A training checkpoint (G_*.pth, Piper's .ckpt, a state dict, or a folder holding one) takes the
    tokenizer beside its config: the config itself when it is a Piper voice config (it holds a
    `phoneme_id_map`), else the vocab.json in the config's folder.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        if path.endswith(".onnx.json") or os.path.basename(path) == PIPER_JSON:
            return "piper", path
        if path.endswith(".onnx"):
            if not os.path.isfile(path + ".json"):
                raise FileNotFoundError(f"Piper voice {path} has no {os.path.basename(path)}.json beside "
                                        "it (the voice's config and phoneme map)")
            return "piper", path + ".json"
        data = _read_json_quietly(path) if path.endswith(".json") else None
        if isinstance(data, dict) and "phoneme_id_map" in data:
            return "piper", path                         # a Piper voice config under any name
        if not path.endswith(TORCH_SUFFIXES + (".safetensors", ".ckpt")):
            raise ValueError(f"{path} is not a voice: pass a model folder, a Piper .onnx / .onnx.json "
                             "or a hub id")
    elif os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "vocab.json")):
            return "vits", path
        if os.path.isfile(os.path.join(path, PIPER_JSON)):
            return "piper", os.path.join(path, PIPER_JSON)
        found = sorted(glob.glob(os.path.join(glob.escape(path), "*.onnx.json")))
        if len(found) == 1:
            return "piper", found[0]
        if len(found) > 1:
            raise ValueError(f"{path} holds {len(found)} Piper voices ({', '.join(map(os.path.basename, found))}): "
                             "pass the one to use")
    else:
        raise FileNotFoundError(f"no such file: {path}")
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config = config or os.path.join(folder, "config.json")
    data = _read_json_quietly(config) if os.path.isfile(config) else None
    if isinstance(data, dict) and "phoneme_id_map" in data:
        return "piper", config                          # Piper's training config: its phonemes
    beside = os.path.dirname(os.path.abspath(config))
    if os.path.isfile(os.path.join(beside, "vocab.json")):
        return "vits", beside
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")) and \
            not glob.glob(os.path.join(glob.escape(path), "*.ckpt")):
        raise FileNotFoundError(f"{path} holds no tokenizer: no vocab.json, piper.json or *.onnx.json")
    raise FileNotFoundError(f"voice {path} has no tokenizer (no vocab.json, nor a Piper config with a "
                            f"phoneme_id_map): put the voice's vocab.json and tokenizer_config.json, "
                            f"or its Piper .onnx.json, in {beside}")


# ---------------------------------------------------------------------------- reading weights
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
    return _original(path, state, hparams, where, PIPER_CHECKPOINT, files)


def _piper_onnx(path: str) -> Source:
    from .piper_onnx import load_onnx_voice     # needs the optional `onnx` package

    state, config_dict, _voice_json = load_onnx_voice(path)
    try:
        config = VitsConfig.from_dict(config_dict)
    except (TypeError, ValueError) as e:
        raise SourceError(f"{path}: {e}") from None
    return Source(PIPER_ONNX, path, config, ORIGINAL_VITS, state, {PIPER_JSON: path + ".json"})


def _weights_file(path: str, config: Optional[str]) -> Source:
    state = read_weights(path)
    if any(k.startswith(("enc_p.", "dec.", "flow.flows.")) for k in state):     # original VITS names
        hparams, where, files = _checkpoint_config(path, config)
        return _original(path, state, hparams, where, ORIGINAL, files)
    config = config or os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if not os.path.isfile(config):
        raise SourceError(f"{path}: transformers weights need their config.json beside them or as config=PATH")
    return Source(TRANSFORMERS_KIND, path, VitsConfig.from_json(config), TRANSFORMERS, state,
                  _tokenizer_files(os.path.dirname(config)))


def open_source(path: str, config: Optional[str] = None, info: Optional[SourceInfo] = None) -> Source:
    """A local file or folder (not a converted one) -> Source, its weights read. `config`: the
    training config of an original VITS or Piper checkpoint when it is not beside the weights."""
    info = info or describe_source(path, config)
    if info.kind in (CONVERTED, EXPORTED):
        raise SourceError(f"{info.path} is a converted vits-jax folder: read it with vits_jax.load")
    if info.kind == PIPER_ONNX:
        return _piper_onnx(info.weights)
    if info.kind == PIPER_CHECKPOINT:
        return _piper_checkpoint(info.weights, config)
    if info.kind == TRANSFORMERS_KIND and os.path.isdir(info.path):
        return Source(TRANSFORMERS_KIND, info.path, VitsConfig.from_json(info.config), TRANSFORMERS,
                      read_weights(info.path), info.tokenizer_files)
    return _weights_file(info.weights, info.config if info.kind == ORIGINAL and os.path.isdir(info.path)
                         else config)
