"""vits-jax: VITS / MMS-TTS text-to-speech in JAX/Flax, faithful to transformers' VitsModel."""

from .checkpoint import VitsParams, convert_voice, load, save
from .config import VitsConfig
from .model import VitsModel, init_params
from .synthesis import SynthesisOutput, synthesize
from .tokenizer import Tokenizer

__all__ = ["VitsConfig", "VitsModel", "VitsParams", "init_params", "load", "save", "convert_voice",
           "SynthesisOutput", "synthesize", "Tokenizer"]
__version__ = "0.1.0"
