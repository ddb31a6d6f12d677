"""Where a voice comes from: one sniffer, readers, the strict mapper and its tables, the hub.

    sources.py       describe_source (THE answer to "what is this path?"), tokenizer_location,
                     open_source (weights read -> Source); hyper-parameters of original VITS configs
    architecture.py  VitsConfig fields from the shapes of original-VITS-named weights
    files.py         safetensors / torch / JSON files -> numpy and Python values
    torch_pickle.py  PyTorch pickles read without torch, safely
    piper_onnx.py    a Piper .onnx voice -> original VITS names and its config
    mapper.py        the one strict mapper (source names -> Flax tree, layout transforms)
    tables.py        its name tables: transformers, original VITS, discriminator, Flax
    checkpoint.py    load (any source -> VitsParams), save, convert_weights (-> a converted folder)
    hub.py           hub ids and Piper voice names -> local folders
    default.py       which voice speaks when none is named

The `Voice` object (params + tokenizer + defaults, with speak / stream / synthesize) is
`vits_jax.synth.voice.Voice`: it runs synth's programs, so it sits above this package.
Names are imported on first use, so `vits-jax --help` starts without JAX.
"""

import importlib

_EXPORTS = {
    **dict.fromkeys(["TRAINING_ONLY", "ConversionError", "InferenceOnlyError", "Mapped", "Row", "Table",
                     "absent_training_weights", "check_trainable", "fold_weight_norm", "map_weights"], "mapper"),
    **dict.fromkeys(["DISCRIMINATOR", "FLAX", "ORIGINAL_VITS", "TRANSFORMERS"], "tables"),
    **dict.fromkeys(["SourceInfo", "SourceError", "describe_source", "tokenizer_location", "open_source"],
                    "sources"),
    **dict.fromkeys(["load", "save", "convert_weights", "convert_voice", "DestinationError"], "checkpoint"),
    **dict.fromkeys(["default_model", "describe_default"], "default"),
    **dict.fromkeys(["resolve", "ModelNotFoundError"], "hub"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
