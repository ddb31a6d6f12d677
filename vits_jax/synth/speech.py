"""Text of any length -> one waveform: sentence planning, batching by length, joining (host API).

Shapes: n pieces (sentence-sized parts of the text), B batch rows, T tokens, S samples.

`speak` is what `vits-jax say`, the notebooks and the training loop's samples use:
  1. `prepare_pieces` splits the text with the tokenizer's own splitter (`split_sentences`: Piper
     voices split as Piper, character voices by vits_jax/tokenizer/sentences.py), longer sentences at commas and
     then between words so none exceeds `max_tokens`, and drops pieces with nothing to say;
  2. the pieces are sorted by token count and synthesized `batch_size` at a time (similar lengths
     share a batch, so little is spent on padding), then put back in reading order;
  3. each piece is optionally peak-normalized (Piper's `normalize_audio`; on by default for Piper
     voices only) and the pieces are joined with `pause` seconds of silence.

A voice's params and tokenizer come from `vits_jax.Voice.load` (vits_jax/synth/voice.py), whose
`speak` / `stream` call these functions with the voice's defaults.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Iterator, Optional

import numpy as np

from . import audio
from .progress import progress_bar
from ..tokenizer.base import pad_ids
from ..tokenizer.sentences import DEFAULT_MAX_TOKENS

# JAX and the modules built on it (synthesis, checkpoint, config, tokenizer) are imported inside
# the functions that use them, so `vits-jax --help` and argument errors answer without loading JAX.

__all__ = ["Speech", "NothingToSayError", "speak", "prepare_pieces", "is_piper_voice", "speak_stream",
           "DEFAULT_PAUSE", "DEFAULT_BATCH_SIZE"]

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
    ids: list[list[int]] = dataclasses.field(default_factory=list)        # (T_i,) token ids per piece
    durations: list[np.ndarray] = dataclasses.field(default_factory=list)  # (T_i,) int frames per token
    hop_length: int = 0           # samples per frame: a token spans durations * hop_length samples
    gaps: Optional[list[int]] = None   # samples of silence after each piece (None: pause_samples
                                       # between pieces; SSML breaks make them differ)

    @property
    def seconds(self) -> float:
        return len(self.waveform) / self.sampling_rate


def is_piper_voice(tokenizer) -> bool:
    """A voice is a Piper voice when its tokenizer is Piper's: its `kind` (a class attribute of
    the tokenizers, also `describe()["kind"]`) is "piper"."""
    return getattr(tokenizer, "kind", None) == "piper"


def prepare_pieces(tokenizer, text: str, max_tokens: int = DEFAULT_MAX_TOKENS):
    """Text -> (pieces, ids per piece). Pieces with nothing to say (e.g. "...") are dropped.

    Raises NothingToSayError for empty text or text without a single pronounceable character,
    and the tokenizer's ValueError for a token outside the vocabulary.
    """
    if not text or not text.strip():
        raise NothingToSayError("empty text: nothing to say")
    prepared = tokenizer.encode_pieces(text, max_tokens)     # each sentence tokenized once
    if not prepared:
        shown = text.strip()
        shown = repr(shown if len(shown) <= 60 else shown[:60] + "...")
        raise NothingToSayError(f"text {shown} has nothing this model can pronounce: none of its "
                                "characters is in the model's vocabulary (see `vits-jax info MODEL`)")
    return [p for p, _ in prepared], [ids for _, ids in prepared]


def speak(params, tokenizer, text: str, *, seed: int = 0, speaker_id: Optional[int] = None,
          speaking_rate: Optional[float] = None, noise_scale: Optional[float] = None,
          noise_scale_duration: Optional[float] = None, batch_size: int = DEFAULT_BATCH_SIZE,
          max_tokens: int = DEFAULT_MAX_TOKENS, pause: float = DEFAULT_PAUSE,
          normalize: Optional[bool] = None, progress: bool = False, stream: bool = False,
          prepared: Optional[tuple[list[str], list[list[int]]]] = None, first_piece: int = 0,
          devices=None, dtype=None, programs=None):
    """Text of any length -> one waveform (see the module docstring for the plan): a `Speech`;
    with stream=True an iterator of waveform chunks as they are produced (`speak_stream`).

    The pieces go in as few batches as `batch_size` allows, all of one row count (10 pieces at
    batch size 8: two batches of 5; the last is filled up with repeats, which are encoded but
    not rendered), so one compiled program serves all batches of a length bucket.

    Randomness: piece `i` (in reading order) draws its noise from `fold_in(key(seed), i)`, and
    `synthesize` makes an item's audio independent of its batch, so the result depends on the
    text and the seed, not on `batch_size`. A one-sentence text sounds as
    `synthesize(params, ids, key=jax.random.key(seed))` (with normalize off).

    normalize: scale each piece so its peak |sample| is 1.0, as Piper's API does per sentence
    (`audio.peak_normalize`). None (default) means: on for Piper voices (`is_piper_voice`), off
    for transformers / MMS voices, whose levels stay as the model makes them.
    progress: a progress bar on a terminal's stderr (vits_jax.synth.progress).
    prepared: `prepare_pieces(tokenizer, text, max_tokens)`'s result when the caller has it (the
    CLI checks the text before loading weights), so the text is not tokenized again.
    first_piece: the index of this text's first piece in a longer text spoken in parts (SSML
    runs): piece i draws from fold_in(key(seed), first_piece + i), as in `speak_stream`.
    devices, dtype: as `synthesize` (the batch split over these devices; the decoder's compute
    dtype). A stream is rendered on one device.
    programs: exported stage programs for `synthesize` (a Voice from a `vits-jax export` folder).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if stream:
        return speak_stream(params, tokenizer, text, seed=seed, speaker_id=speaker_id,
                            speaking_rate=speaking_rate, noise_scale=noise_scale,
                            noise_scale_duration=noise_scale_duration, max_tokens=max_tokens,
                            pause=pause, normalize=normalize, prepared=prepared, first_piece=first_piece,
                            dtype=dtype, programs=programs)
    import jax
    import jax.numpy as jnp

    from .synthesis import synthesize

    if normalize is None:
        normalize = is_piper_voice(tokenizer)
    pieces, ids = prepared or prepare_pieces(tokenizer, text, max_tokens)
    n = len(pieces)
    order = sorted(range(n), key=lambda i: len(ids[i]))
    rows = -(-n // -(-n // batch_size))   # as few batches as batch_size allows, evenly filled
    base = jax.random.key(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(first_piece, first_piece + n,
                                                                       dtype=jnp.uint32))       # (n,)
    waves: list[Optional[np.ndarray]] = [None] * n
    durations: list[Optional[np.ndarray]] = [None] * n
    truncated = [False] * n
    bar = progress_bar(n, progress, unit="sentence", leave=False)
    try:
        for start in range(0, n, rows):
            chunk = order[start:start + rows]
            batch = chunk + [chunk[-1]] * (rows - len(chunk))
            input_ids, mask = pad_ids([ids[i] for i in batch], tokenizer.padding_id)  # (B, T)
            with warnings.catch_warnings():  # truncation is reported in Speech.truncated
                warnings.simplefilter("ignore")
                out = synthesize(params, input_ids, attention_mask=mask,
                                 key=keys[np.asarray(batch)], speaker_id=speaker_id,
                                 speaking_rate=speaking_rate, noise_scale=noise_scale,
                                 noise_scale_duration=noise_scale_duration, devices=devices, dtype=dtype,
                                 programs=programs)
            waveform = np.asarray(out.waveform)                                   # (B, S)
            lengths = np.asarray(out.lengths)                                     # (B,)
            cut = np.asarray(out.truncated)                                       # (B,)
            frames = np.asarray(out.durations)                                    # (B, T)
            for r, i in enumerate(chunk):
                piece = waveform[r, :int(lengths[r])].astype(np.float32)          # (S_i,)
                waves[i] = audio.peak_normalize(piece) if normalize else piece
                durations[i] = frames[r, :len(ids[i])].astype(np.int64)           # (T_i,)
                truncated[i] = bool(cut[r])
            bar.update(len(chunk))
    finally:
        bar.close()
    rate = int(params.config.sampling_rate)
    pause_samples = int(round(pause * rate))
    return Speech(waveform=audio.concatenate(waves, pause_samples), sampling_rate=rate,
                  pieces=pieces, lengths=[len(w) for w in waves], truncated=truncated,
                  pause_samples=pause_samples, ids=ids, durations=durations,
                  hop_length=int(params.config.hop_length))


def speak_stream(params, tokenizer, text: str, *, seed: int = 0, speaker_id: Optional[int] = None,
                 speaking_rate: Optional[float] = None, noise_scale: Optional[float] = None,
                 noise_scale_duration: Optional[float] = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                 pause: float = DEFAULT_PAUSE, normalize: Optional[bool] = None,
                 first_piece: int = 0, prepared: Optional[tuple[list[str], list[list[int]]]] = None,
                 dtype=None, programs=None) -> Iterator[np.ndarray]:
    """`speak` as it is produced: float32 waveform chunks (S_k,) in reading order, the pauses
    between pieces included, whose concatenation is `speak(...)`'s waveform (same pieces, same
    seeds per piece; within float32 round-off, as an item alone vs in a batch).

    first_piece: the index of this text's first piece in a longer text given in parts (e.g. line
    by line): piece i draws from fold_in(key(seed), first_piece + i), and a pause comes first when
    first_piece > 0, so the parts concatenate to `speak` of the whole text when its sentences
    split as the parts' do.

    Pieces are rendered one by one in reading order, each in chunks (`vits_jax.synth.streaming.stream`:
    a small first chunk, then larger ones, exactly the piece's samples), so the first audio comes
    after a fraction of the first sentence. With normalize (Piper voices' default) a piece is
    yielded whole, since its level depends on its peak. Text errors are raised at the first `next()`.
    """
    import jax

    from .streaming import stream

    if normalize is None:
        normalize = is_piper_voice(tokenizer)
    pieces, ids = prepared or prepare_pieces(tokenizer, text, max_tokens)
    rate = int(params.config.sampling_rate)
    gap = np.zeros(int(round(pause * rate)), np.float32)
    base = jax.random.key(seed)
    for i, piece_ids in enumerate(ids, first_piece):
        if i and gap.size:
            yield gap
        with warnings.catch_warnings():  # truncation (warned at the call): as in speak, not repeated
            warnings.simplefilter("ignore")
            # one key per item, as speak passes them to synthesize: the same noise
            chunks = stream(params, np.asarray(piece_ids, np.int32), key=jax.random.fold_in(base, i)[None],
                            speaker_id=speaker_id, speaking_rate=speaking_rate, noise_scale=noise_scale,
                            noise_scale_duration=noise_scale_duration, dtype=dtype,
                            programs=programs)
        if normalize:
            yield audio.peak_normalize(np.concatenate([np.asarray(c, np.float32) for c in chunks]))
        else:
            yield from (np.asarray(c, np.float32) for c in chunks)
