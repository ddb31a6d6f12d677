"""SSML spoken: `tokenizer.ssml.parse_ssml`'s runs and breaks -> one `Speech`.

Each run is spoken with `speak` at its own rate (the voice's rate times the run's <prosody> rates)
and speaker (<voice name> through `speaker_for`), its pieces numbered on from the previous runs'
so every piece keeps its own noise (`first_piece`). Silence after a piece: an explicit <break>
(several add up), else the usual pause between sentences, else nothing where a run changes
rate or voice in the middle of a sentence. `Speech.gaps` records it, so timings and subtitles
(synth/timings.py) stay right across breaks and rate changes.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..tokenizer.ssml import Break, Run, SsmlError, parse_ssml
from .speech import DEFAULT_BATCH_SIZE, DEFAULT_PAUSE, NothingToSayError, Speech, is_piper_voice, speak

__all__ = ["speak_ssml", "SsmlError"]


def speak_ssml(params, tokenizer, ssml: str, *, seed: int = 0, speaker_id=None,
               speaking_rate: Optional[float] = None, noise_scale=None, noise_scale_duration=None,
               batch_size: int = DEFAULT_BATCH_SIZE, max_tokens: Optional[int] = None,
               pause: float = DEFAULT_PAUSE, normalize: Optional[bool] = None, lenient: bool = False,
               speaker_for: Optional[Callable[[str], Optional[int]]] = None, progress: bool = False,
               programs=None) -> Speech:
    """SSML -> Speech (see the module docstring). `speaker_for(name)`: the speaker id a
    <voice name> selects (SsmlError when None is given and the SSML names a voice)."""
    from ..tokenizer.sentences import DEFAULT_MAX_TOKENS

    piper = is_piper_voice(tokenizer)
    segments = parse_ssml(ssml, lenient=lenient, language=getattr(tokenizer, "language", None) or "en",
                          phonemes_allowed=piper)
    base_rate = float(params.config.speaking_rate if speaking_rate is None else speaking_rate)
    rate = int(params.config.sampling_rate)
    pause_samples = int(round(pause * rate))
    waves, pieces, lengths, truncated, ids, durations, gaps = [], [], [], [], [], [], []
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
            said = speak(params, tokenizer, text, seed=seed, speaker_id=speaker,
                         speaking_rate=base_rate * seg.rate, noise_scale=noise_scale,
                         noise_scale_duration=noise_scale_duration, batch_size=batch_size,
                         max_tokens=max_tokens or DEFAULT_MAX_TOKENS, pause=pause, normalize=normalize,
                         progress=progress, first_piece=len(pieces), programs=programs)
        except NothingToSayError:
            continue                              # e.g. a lone "." between two prosody runs
        if gaps:                                  # the silence after the previous piece
            gaps[-1] = int(round(pending_break * rate)) if pending_break is not None else (
                pause_samples if sentence_ended or _ends_sentence(pieces[-1]) else 0)
        pending_break, sentence_ended = None, seg.sentence_end
        start = 0
        for k, n in enumerate(said.lengths):
            waves.append(said.waveform[start:start + n])
            start += n + said.pause_samples
        pieces += said.pieces
        lengths += said.lengths
        truncated += said.truncated
        ids += said.ids
        durations += said.durations
        gaps += [said.pause_samples] * len(said.pieces)
    if not pieces:
        raise NothingToSayError("the SSML holds nothing this voice can say")
    gaps[-1] = int(round(pending_break * rate)) if pending_break else 0    # a trailing break is kept
    joined = []
    for wave, gap in zip(waves, gaps):
        joined += [wave, np.zeros(gap, np.float32)]
    return Speech(waveform=np.concatenate(joined).astype(np.float32), sampling_rate=rate, pieces=pieces,
                  lengths=lengths, truncated=truncated, pause_samples=pause_samples, ids=ids,
                  durations=durations, hop_length=int(params.config.hop_length), gaps=gaps)


def _ends_sentence(piece: str) -> bool:
    return piece.rstrip().endswith((".", "!", "?", ";", ":", "。", "！", "？"))

