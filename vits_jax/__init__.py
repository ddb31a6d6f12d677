"""vits-jax: VITS / MMS-TTS text-to-speech in JAX/Flax, faithful to transformers' VitsModel."""

from .checkpoint import VitsParams, load, save
from .config import VitsConfig
from .core import Encoded, GenerateOutput, encode, generate, render
from .model import VitsModel, init_params
from .synthesis import SynthesisOutput, synthesize
from .tokenizer import Tokenizer

__all__ = ["VitsConfig", "VitsModel", "VitsParams", "init_params", "load", "save",
           "Encoded", "GenerateOutput", "encode", "generate", "render",
           "SynthesisOutput", "synthesize", "Tokenizer"]
__version__ = "0.1.0"
