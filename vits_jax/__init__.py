"""vits-jax: VITS / MMS-TTS text-to-speech in JAX/Flax, faithful to transformers' VitsModel.

The public names below are imported on first use (PEP 562), so `import vits_jax` and the
`vits-jax` command start without loading JAX; `from vits_jax import synthesize` works as usual.
"""

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "VitsParams": "checkpoint", "load": "checkpoint", "save": "checkpoint", "convert_voice": "checkpoint",
    "VitsConfig": "config",
    "VitsModel": "model", "init_params": "model",
    "Encoded": "core", "GenerateOutput": "core", "encode": "core", "generate": "core", "render": "core",
    "SynthesisOutput": "synthesis", "synthesize": "synthesis",
    "Tokenizer": "tokenizer",
    "Speech": "speech", "speak": "speech",
    "stream": "streaming",
}

__all__ = ["VitsConfig", "VitsModel", "VitsParams", "init_params", "load", "save", "convert_voice",
           "Encoded", "GenerateOutput", "encode", "generate", "render",
           "SynthesisOutput", "synthesize", "Tokenizer", "Speech", "speak", "stream"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value          # later lookups skip this function
        return value
    try:  # `vits_jax.synthesis` without importing it first, as when this file imported everything
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
