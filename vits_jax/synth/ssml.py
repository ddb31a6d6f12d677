"""SSML spoken: `tokenizer.ssml.parse_ssml`'s runs and breaks -> one `Speech`.

`plan_ssml` decides what is said: each run's pieces (the tokenizer's sentences), its rate (a
multiplier of the voice's, from <prosody>) and speaker (<voice name> through `speaker_for`), and
the silence after every piece: an explicit <break> (several add up), else the usual pause between
sentences, else nothing where a run changes rate or voice in the middle of a sentence. `speak_ssml`
speaks the plan with `speak`, run by run, its pieces numbered on from the previous runs' so every
piece keeps its own noise (`first_piece`); the server's engine (synth/engine.py) takes the same
plan, so SSML sounds the same offline and served. `Speech.gaps` records the silences, so timings
and subtitles (synth/timings.py) stay right across breaks and rate changes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from ..tokenizer.ssml import Break, SsmlError, parse_ssml
from .speech import (DEFAULT_BATCH_SIZE, DEFAULT_PAUSE, NothingToSayError, Speech, is_piper_voice,
                     prepare_pieces, speak)

__all__ = ["speak_ssml", "plan_ssml", "SsmlPlan", "SsmlPart", "SsmlError"]


@dataclasses.dataclass
class SsmlPart:
    """One SSML run with something to say: its pieces, their token ids, and how they are said."""

    pieces: list[str]
    ids: list[list[int]]
    rate: float                   # a multiplier of the voice's speaking rate
    speaker_id: Optional[int]     # <voice name>'s speaker, else the caller's


@dataclasses.dataclass
class SsmlPlan:
    """What an SSML text says: its parts in reading order, and the samples of silence after each
    of their pieces (one entry per piece over all parts; the last is a trailing <break>, or 0)."""

    parts: list[SsmlPart]
    gaps: list[int]
    pause_samples: int


def plan_ssml(tokenizer, ssml: str, *, sampling_rate: int, pause: float = DEFAULT_PAUSE,
              max_tokens: Optional[int] = None, lenient: bool = False, speaker_id=None,
              speaker_for: Optional[Callable[[str], Optional[int]]] = None) -> SsmlPlan:
    """SSML -> SsmlPlan (see the module docstring). `speaker_for(name)`: the speaker id a
    <voice name> selects (SsmlError when None is given and the SSML names a voice). Raises
    NothingToSayError when no run has anything to say."""
    from ..tokenizer.sentences import DEFAULT_MAX_TOKENS

    segments = parse_ssml(ssml, lenient=lenient, language=getattr(tokenizer, "language", None) or "en",
                          phonemes_allowed=is_piper_voice(tokenizer))
    pause_samples = int(round(pause * sampling_rate))
    parts: list[SsmlPart] = []
    gaps: list[int] = []
    last_piece = ""
    pending_break: Optional[float] = None       # seconds of <break> since the last piece
    sentence_ended = False                       # the previous run closed an <s> or <p>
    for seg in segments:
        if isinstance(seg, Break):
            pending_break = (pending_break or 0.0) + seg.seconds
            continue
        speaker = speaker_id
        if seg.voice is not None:
            if speaker_for is None:
                raise SsmlError(f"<voice name={seg.voice!r}>: this voice has no named speakers")
            speaker = speaker_for(seg.voice)
        text = f"[[ {seg.text.strip()} ]]" if seg.phonemes else seg.text
        try:
            pieces, ids = prepare_pieces(tokenizer, text, max_tokens or DEFAULT_MAX_TOKENS)
        except NothingToSayError:
            continue                              # e.g. a lone "." between two prosody runs
        if gaps:                                  # the silence after the previous piece
            gaps[-1] = int(round(pending_break * sampling_rate)) if pending_break is not None else (
                pause_samples if sentence_ended or _ends_sentence(last_piece) else 0)
        pending_break, sentence_ended = None, seg.sentence_end
        parts.append(SsmlPart(pieces=pieces, ids=ids, rate=seg.rate, speaker_id=speaker))
        gaps += [pause_samples] * len(pieces)
        last_piece = pieces[-1]
    if not parts:
        raise NothingToSayError("the SSML holds nothing this voice can say")
    gaps[-1] = int(round(pending_break * sampling_rate)) if pending_break else 0   # a trailing break is kept
    return SsmlPlan(parts=parts, gaps=gaps, pause_samples=pause_samples)


def speak_ssml(params, tokenizer, ssml: str, *, seed: int = 0, speaker_id=None,
               speaking_rate: Optional[float] = None, noise_scale=None, noise_scale_duration=None,
               batch_size: int = DEFAULT_BATCH_SIZE, max_tokens: Optional[int] = None,
               pause: float = DEFAULT_PAUSE, normalize: Optional[bool] = None, lenient: bool = False,
               speaker_for: Optional[Callable[[str], Optional[int]]] = None, progress: bool = False,
               devices=None, dtype=None, programs=None) -> Speech:
    """SSML -> Speech (see the module docstring). `speaker_for(name)`: the speaker id a
    <voice name> selects (SsmlError when None is given and the SSML names a voice). devices,
    dtype, programs: as `speak`."""
    rate = int(params.config.sampling_rate)
    plan = plan_ssml(tokenizer, ssml, sampling_rate=rate, pause=pause, max_tokens=max_tokens,
                     lenient=lenient, speaker_id=speaker_id, speaker_for=speaker_for)
    base_rate = float(params.config.speaking_rate if speaking_rate is None else speaking_rate)
    waves, pieces, lengths, truncated, ids, durations = [], [], [], [], [], []
    for part in plan.parts:
        said = speak(params, tokenizer, "", prepared=(part.pieces, part.ids), seed=seed,
                     speaker_id=part.speaker_id, speaking_rate=base_rate * part.rate,
                     noise_scale=noise_scale, noise_scale_duration=noise_scale_duration,
                     batch_size=batch_size, pause=pause, normalize=normalize, progress=progress,
                     first_piece=len(pieces), devices=devices, dtype=dtype, programs=programs)
        start = 0
        for n in said.lengths:
            waves.append(said.waveform[start:start + n])
            start += n + said.pause_samples
        pieces += said.pieces
        lengths += said.lengths
        truncated += said.truncated
        ids += said.ids
        durations += said.durations
    joined = []
    for wave, gap in zip(waves, plan.gaps):
        joined += [wave, np.zeros(gap, np.float32)]
    return Speech(waveform=np.concatenate(joined).astype(np.float32), sampling_rate=rate, pieces=pieces,
                  lengths=lengths, truncated=truncated, pause_samples=plan.pause_samples, ids=ids,
                  durations=durations, hop_length=int(params.config.hop_length), gaps=plan.gaps)


def _ends_sentence(piece: str) -> bool:
    return piece.rstrip().endswith((".", "!", "?", ";", ":", "。", "！", "？"))
