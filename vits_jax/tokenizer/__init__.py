"""Text -> ids. Front-ends turn text into symbols (numbers, casing, uroman, phonemizer,
espeak-ng as Piper runs it); id mappings turn symbols into ids (a VITS vocabulary with blanks,
a Piper ``phoneme_id_map`` with pads). Two tokenizers share one call contract (`TokenizerBase`):

    characters.py   Tokenizer: transformers' VitsTokenizer (MMS), its load() finds any voice
    piper.py        PiperTokenizer: Piper voices' espeak-ng phoneme ids
    vocabulary.py   VITS vocabulary + added / special tokens -> ids
    normalize.py    casing, vocabulary filter, diacritic folding, unknown-character reports
    numbers.py      num2words expansion        romanize.py   uroman
    phonemize.py    phonemizer (MMS)           espeak.py     libespeak-ng clauses via ctypes
    sentences.py    long text -> sentence-sized pieces          base.py   batching, shared API

Where a voice's tokenizer files are is decided by `vits_jax.voice.sources.tokenizer_location`.
"""

from .base import TokenizerBase
from .characters import Tokenizer
from .espeak import EspeakError
from .normalize import UnknownCharactersError
from .piper import PiperTokenizer

__all__ = ["Tokenizer", "PiperTokenizer", "TokenizerBase", "UnknownCharactersError", "EspeakError"]
