"""Text of any length -> one waveform: sentence planning, batching by length, joining (host API).

Shapes: n pieces (sentence-sized parts of the text), B batch rows, T tokens, S samples.

`speak` is what `vits-jax say`, the notebooks and the training loop's samples use:
  1. `prepare_pieces` splits the text into sentences (vits_jax/text.py), longer ones at commas and
     then between words so none exceeds `max_tokens`, and drops pieces with nothing to say;
  2. the pieces are sorted by token count and synthesized `batch_size` at a time (similar lengths
     share a batch, so little is spent on padding), then put back in reading order;
  3. each piece is optionally peak-normalized (Piper's `normalize_audio`; on by default for Piper
     voices only) and the pieces are joined with `pause` seconds of silence.

`open_model` / `load_model` turn a model location (folder or hub id) into what `speak` needs.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Optional

import numpy as np

from . import audio
from .hub import resolve
from .progress import progress_bar
from .text import DEFAULT_MAX_TOKENS, split_text
from .voices import default_model

# JAX and the modules built on it (synthesis, checkpoint, config, tokenizer) are imported inside
# the functions that use them, so `vits-jax --help` and argument errors answer without loading JAX.

__all__ = ["Speech", "NothingToSayError", "speak", "prepare_pieces", "is_piper_voice", "open_model",
           "load_model", "DEFAULT_PAUSE", "DEFAULT_BATCH_SIZE"]

DEFAULT_PAUSE = 0.25          # seconds of silence between pieces
DEFAULT_BATCH_SIZE = 8


class NothingToSayError(ValueError):
    """The text is empty, or none of its characters is in the voice's vocabulary."""


@dataclasses.dataclass
class Speech:
    """The result of `speak`: the joined waveform and what it is made of."""

    waveform: np.ndarray          # (S,) float32, pieces joined with pauses
    sampling_rate: int
    pieces: list[str]             # the text pieces, in reading order
    lengths: list[int]            # samples of each piece
    truncated: list[bool]         # piece cut at the synthesizer's frame limit
    pause_samples: int

    @property
    def seconds(self) -> float:
        return len(self.waveform) / self.sampling_rate


def is_piper_voice(tokenizer) -> bool:
    """A voice is a Piper voice when its tokenizer is Piper's (it says so in `kind`)."""
    return getattr(tokenizer, "kind", None) == "piper"


def prepare_pieces(tokenizer, text: str, max_tokens: int = DEFAULT_MAX_TOKENS):
    """Text -> (pieces, ids per piece). Pieces with nothing to say (e.g. "...") are dropped.

    Raises NothingToSayError for empty text or text without a single pronounceable character,
    and the tokenizer's ValueError for a token outside the vocabulary.
    """
    if not text or not text.strip():
        raise NothingToSayError("empty text: nothing to say")
    pieces = split_text(text, max_tokens, count=lambda s: len(tokenizer.tokenize(s)))
    pieces = [p for p in pieces if tokenizer.tokenize(p)]
    if not pieces:
        shown = text.strip()
        shown = repr(shown if len(shown) <= 60 else shown[:60] + "...")
        raise NothingToSayError(f"text {shown} has nothing this model can pronounce: none of its "
                                "characters is in the model's vocabulary (see `vits-jax info MODEL`)")
    return pieces, [tokenizer.encode(p) for p in pieces]


def speak(params, tokenizer, text: str, *, seed: int = 0, speaker_id: Optional[int] = None,
          speaking_rate: Optional[float] = None, noise_scale: Optional[float] = None,
          noise_scale_duration: Optional[float] = None, batch_size: int = DEFAULT_BATCH_SIZE,
          max_tokens: int = DEFAULT_MAX_TOKENS, pause: float = DEFAULT_PAUSE,
          normalize: Optional[bool] = None, progress: bool = False) -> Speech:
    """Text of any length -> one waveform (see the module docstring for the plan).

    Every batch holds exactly `batch_size` rows (the last is filled up with repeats) so one
    compiled program serves all batches of a length bucket.

    Randomness: piece `i` (in reading order) draws its noise from `fold_in(key(seed), i)`, and
    `synthesize` makes an item's audio independent of its batch, so the result depends on the
    text and the seed, not on `batch_size`. A one-sentence text sounds as
    `synthesize(params, ids, key=jax.random.key(seed))` (with normalize off).

    normalize: scale each piece so its peak |sample| is 1.0, as Piper's API does per sentence
    (`audio.peak_normalize`). None (default) means: on for Piper voices (`is_piper_voice`), off
    for transformers / MMS voices, whose levels stay as the model makes them.
    progress: a progress bar on a terminal's stderr (vits_jax.progress).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    import jax
    import jax.numpy as jnp

    from .synthesis import synthesize

    if normalize is None:
        normalize = is_piper_voice(tokenizer)
    pieces, ids = prepare_pieces(tokenizer, text, max_tokens)
    n = len(pieces)
    order = sorted(range(n), key=lambda i: len(ids[i]))
    rows = batch_size if n > batch_size else n
    base = jax.random.key(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(n, dtype=jnp.uint32))  # (n,)
    waves: list[Optional[np.ndarray]] = [None] * n
    truncated = [False] * n
    bar = progress_bar(n, progress, unit="sentence", leave=False)
    try:
        for start in range(0, n, rows):
            chunk = order[start:start + rows]
            batch = chunk + [chunk[-1]] * (rows - len(chunk))
            width = max(len(ids[i]) for i in batch)
            input_ids = np.full((rows, width), tokenizer.padding_id, np.int32)  # (B, T)
            mask = np.zeros((rows, width), np.int32)                            # (B, T)
            for r, i in enumerate(batch):
                input_ids[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            with warnings.catch_warnings():  # truncation is reported in Speech.truncated
                warnings.simplefilter("ignore")
                out = synthesize(params, input_ids, attention_mask=mask,
                                 key=keys[np.asarray(batch)], speaker_id=speaker_id,
                                 speaking_rate=speaking_rate, noise_scale=noise_scale,
                                 noise_scale_duration=noise_scale_duration)
            waveform = np.asarray(out.waveform)                                   # (B, S)
            lengths = np.asarray(out.lengths)                                     # (B,)
            cut = np.asarray(out.truncated)                                       # (B,)
            for r, i in enumerate(chunk):
                piece = waveform[r, :int(lengths[r])].astype(np.float32)          # (S_i,)
                waves[i] = audio.peak_normalize(piece) if normalize else piece
                truncated[i] = bool(cut[r])
            bar.update(len(chunk))
    finally:
        bar.close()
    rate = int(params.config.sampling_rate)
    pause_samples = int(round(pause * rate))
    return Speech(waveform=audio.concatenate(waves, pause_samples), sampling_rate=rate,
                  pieces=pieces, lengths=[len(w) for w in waves], truncated=truncated,
                  pause_samples=pause_samples)


def open_model(model: str):
    """A folder or hub id -> (local folder, VitsConfig, Tokenizer), without loading the weights."""
    from .config import VitsConfig
    from .tokenizer import Tokenizer

    folder = resolve(model)
    config = VitsConfig.from_json(os.path.join(folder, "config.json"))
    if not os.path.isfile(os.path.join(folder, "vocab.json")):
        raise FileNotFoundError(f"model folder {folder} has no vocab.json: copy the tokenizer files "
                                "(vocab.json, tokenizer_config.json, special_tokens_map.json) next to "
                                "config.json")
    return folder, config, Tokenizer.load(folder)


def load_model(model: Optional[str] = None):
    """A converted folder, a transformers folder or a hub id -> (VitsParams, Tokenizer).
    None: the default voice (`vits_jax.voices.default_model()`)."""
    from .checkpoint import load

    folder, _, tokenizer = open_model(default_model() if model is None else model)
    return load(folder), tokenizer
