"""vits-jax: VITS / MMS-TTS text-to-speech in JAX/Flax, faithful to transformers' VitsModel.

The public names below are imported on first use (PEP 562), so `import vits_jax` and the
`vits-jax` command start without loading JAX; `from vits_jax import synthesize` works as usual.
"""

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "Voice": "synth.voice",
    "VitsParams": "core.params", "load": "voice.checkpoint", "save": "voice.checkpoint",
    "convert_weights": "voice.checkpoint", "convert_voice": "voice.checkpoint",
    "VitsConfig": "config",
    "VitsModel": "nn.model", "init_params": "nn.model",
    "Encoded": "core.stages", "GenerateOutput": "core.stages", "encode": "core.stages",
    "generate": "core.stages", "render": "core.stages",
    "SynthesisOutput": "synth.synthesis", "synthesize": "synth.synthesis",
    "Tokenizer": "tokenizer",
    "Speech": "synth.speech", "speak": "synth.speech",
    "stream": "synth.streaming",
    "linear_spectrogram": "core.spectrogram", "posterior": "core.conversion", "flow": "core.conversion",
    "decode": "core.conversion", "convert_speaker": "core.conversion",
    "voice_conversion": "synth.conversion",
}

__all__ = ["Voice", "VitsConfig", "VitsModel", "VitsParams", "init_params", "load", "save", "convert_weights",
           "convert_voice", "Encoded", "GenerateOutput", "encode", "generate", "render",
           "SynthesisOutput", "synthesize", "Tokenizer", "Speech", "speak", "stream",
           "linear_spectrogram", "posterior", "flow", "decode", "convert_speaker", "voice_conversion"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value          # later lookups skip this function
        return value
    try:  # `vits_jax.synth.synthesis` without importing it first, as when this file imported everything
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
