"""When each token and word of spoken text is heard: times from the predicted durations, subtitles.

Shapes: n pieces (sentences) of a `Speech`, T_i tokens of piece i.

Token k of piece i covers frames [sum(d[:k]), sum(d[:k+1])) of that piece (d = the piece's
durations, frames per token), and a frame is `hop_length` samples; piece i starts after the
earlier pieces and the pauses between them. A word covers its tokens (`tokenizer.encode_words`:
the blanks / pads between its symbols included, none around it), so for a character (MMS) voice
a word is its letters and for a phoneme (Piper) voice its phonemes. A piece cut at the frame limit
(`Speech.truncated`) has its times clipped to the audio it has.

    timings(speech, tokenizer)       -> JSON-ready dict: pieces, their tokens and words, in seconds
    piece_timings(speech, tokenizer, i) -> piece i's entry of it; reads only pieces 0..i, so a
                                        stream sends it as soon as piece i is done (an engine Job
                                        reads as a Speech here)
    cues(speech, tokenizer, words=)  -> subtitle cues: one per sentence (its pieces joined), or per
                                        `words` words
    srt(cues), vtt(cues)             -> SubRip / WebVTT text
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..tokenizer.sentences import ends_sentence

__all__ = ["Cue", "piece_starts", "token_times", "word_times", "piece_timings", "timings", "cues",
           "srt", "vtt", "subtitles"]


@dataclasses.dataclass(frozen=True)
class Cue:
    """A span of the audio, in seconds, and the text heard in it."""

    start: float
    end: float
    text: str


def piece_starts(speech) -> list[int]:
    """(n,) first sample of each piece in `speech.waveform`."""
    gaps = getattr(speech, "gaps", None) or [speech.pause_samples] * len(speech.lengths)
    starts, at = [], 0
    for n, gap in zip(speech.lengths, gaps):
        starts.append(at)
        at += n + gap
    return starts


def _frame_edges(speech, i: int) -> np.ndarray:
    """(T_i + 1,) sample offsets of piece i's token boundaries, clipped to the piece's audio."""
    d = np.asarray(speech.durations[i], np.int64)
    edges = np.concatenate([[0], np.cumsum(d)]) * int(speech.hop_length)
    return np.minimum(edges, speech.lengths[i])


def token_times(speech, i: int) -> np.ndarray:
    """(T_i, 2) start / end seconds of piece i's tokens in the whole waveform."""
    if not speech.durations:
        raise ValueError("this Speech carries no durations (made by an older speak?)")
    edges = (_frame_edges(speech, i) + piece_starts(speech)[i]) / float(speech.sampling_rate)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def word_times(speech, tokenizer, i: int) -> list[Cue]:
    """Piece i's space-separated words with their start / end seconds. A word heard for no time
    (no tokens of its own, e.g. a lone dash, or tokens of zero frames) is merged with the word
    before it (the one after, for a first word): "wait -" is one timed word. Only a piece whose
    words all last zero frames keeps a zero-length word."""
    ids, spans = tokenizer.encode_words(speech.pieces[i])
    if list(ids) != list(speech.ids[i]):
        raise ValueError(f"the tokenizer gives other ids for piece {i} ({speech.pieces[i]!r}) than "
                         "the speech was made from: pass the tokenizer given to speak")
    edges = (_frame_edges(speech, i) + piece_starts(speech)[i]) / float(speech.sampling_rate)
    merged: list[list] = []           # [text, start, end]
    for word, first, end in spans:
        start, stop = float(edges[first]), float(edges[end])
        if merged and (stop <= start or merged[-1][2] <= merged[-1][1]):
            last = merged[-1]         # this word, or the one before, is heard for no time: one word
            last[0] = f"{last[0]} {word}"
            if stop > start:
                last[1], last[2] = (last[1] if last[2] > last[1] else start), stop
        else:
            merged.append([word, start, stop])
    return [Cue(start, end, word) for word, start, end in merged]


def piece_timings(speech, tokenizer, i: int) -> dict:
    """Piece i's entry of `timings`: {"text", "start", "end", "truncated", "tokens": [{"id",
    "start", "end"}], "words": [{"word", "start", "end"}]} (seconds in the whole waveform). Reads
    only pieces 0..i of `speech` (and no waveform)."""
    rate = float(speech.sampling_rate)
    start = piece_starts(speech)[i]
    return {
        "text": speech.pieces[i], "start": start / rate, "end": (start + speech.lengths[i]) / rate,
        "truncated": bool(speech.truncated[i]),
        "tokens": [{"id": int(t), "start": float(a), "end": float(b)}
                   for t, (a, b) in zip(speech.ids[i], token_times(speech, i))],
        "words": [{"word": w.text, "start": w.start, "end": w.end}
                  for w in word_times(speech, tokenizer, i)],
    }


def timings(speech, tokenizer) -> dict:
    """The timings of a whole `Speech` as a JSON-ready dict:

    {"sampling_rate", "seconds", "pieces": [piece_timings(speech, tokenizer, i) for each piece]}.
    """
    return {"sampling_rate": int(speech.sampling_rate), "seconds": speech.seconds,
            "pieces": [piece_timings(speech, tokenizer, i) for i in range(len(speech.pieces))]}


def cues(speech, tokenizer=None, *, words: Optional[int] = None) -> list[Cue]:
    """Subtitle cues: one per sentence, or with `words` one per run of at most that many words of
    a piece (needs the tokenizer), each from its first word's start to its last's end.

    A sentence longer than the token limit was spoken as several pieces (cut at clauses): its
    pieces make one cue, from the first's start to the last's end, their texts joined. A piece
    continues into the next when it does not end in sentence punctuation
    (`tokenizer.sentences.ends_sentence`) and only the usual pause follows it (not an SSML break)."""
    rate = float(speech.sampling_rate)
    if words is None:
        gaps = getattr(speech, "gaps", None) or [speech.pause_samples] * len(speech.pieces)
        out, open_cue = [], None
        for s, n, text, gap in zip(piece_starts(speech), speech.lengths, speech.pieces, gaps):
            if open_cue is None:
                open_cue = [s, s + n, text]
            else:
                open_cue[1], open_cue[2] = s + n, f"{open_cue[2]} {text}"
            if ends_sentence(text) or gap != speech.pause_samples:
                out.append(Cue(open_cue[0] / rate, open_cue[1] / rate, open_cue[2]))
                open_cue = None
        if open_cue is not None:
            out.append(Cue(open_cue[0] / rate, open_cue[1] / rate, open_cue[2]))
        return out
    if words < 1 or tokenizer is None:
        raise ValueError(f"words must be >= 1 and a tokenizer given, got words={words}")
    out = []
    for i in range(len(speech.pieces)):
        found = word_times(speech, tokenizer, i)
        for k in range(0, len(found), words):
            group = found[k:k + words]
            out.append(Cue(group[0].start, group[-1].end, " ".join(w.text for w in group)))
    return out


def _clock(seconds: float, decimal: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def srt(found: list[Cue]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(f"{k}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{c.text}\n\n"
                   for k, c in enumerate(found, 1))


def vtt(found: list[Cue]) -> str:
    """WebVTT: the `WEBVTT` header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues."""
    return "WEBVTT\n\n" + "".join(f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{c.text}\n\n"
                                  for c in found)


def subtitles(path: str, found: list[Cue]) -> str:
    """The subtitle text for `path`'s extension (.srt or .vtt); ValueError for another."""
    lower = path.lower()
    if lower.endswith(".srt"):
        return srt(found)
    if lower.endswith(".vtt"):
        return vtt(found)
    raise ValueError(f"subtitles file {path} must end in .srt or .vtt")
