"""Training examples: manifest rows -> tokenized text + audio at the model's rate, bad rows recorded.

Shapes: T tokens, S samples (a whole number of hops).

Bad rows never stop loading: a missing or unreadable audio file, empty text, text that tokenizes to
nothing, a bad speaker id, audio that is too short or too long, too many tokens. Each is recorded
in `Dataset.skipped` as (row number, reason) and one warning summarises them. Audio is read and
resampled by `vits_jax.synth.audio` (`read_audio`, `resample`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from typing import Optional

import numpy as np

from ..synth.audio import read_audio, resample
from .manifest import read_manifest

__all__ = ["Example", "Dataset", "load_dataset"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Example:
    row: int                      # 1-based data row in the manifest
    audio_path: str
    text: str
    ids: np.ndarray               # (T,) int32
    waveform: np.ndarray          # (S,) float32 at the model's sampling rate, S not padded
    speaker: Optional[int] = None


@dataclasses.dataclass
class Dataset:
    examples: list[Example]
    skipped: list[tuple[int, str]]   # (row, reason)
    sampling_rate: int

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def seconds(self) -> float:
        return sum(len(e.waveform) for e in self.examples) / self.sampling_rate


def _speaker(value: Optional[str], num_speakers: int) -> Optional[int]:
    """A manifest speaker field -> id, or raises ValueError with the reason."""
    if num_speakers <= 1:
        if value is None or value.strip() in ("", "0"):
            return None
        raise ValueError(f"speaker {value!r} given but the model has a single speaker")
    if value is None:
        raise ValueError(f"no speaker id (the model has {num_speakers} speakers)")
    try:
        sid = int(value)
    except ValueError:
        raise ValueError(f"speaker {value!r} is not an integer id") from None
    if not 0 <= sid < num_speakers:
        raise ValueError(f"speaker {sid} out of range [0, {num_speakers})")
    return sid


def load_dataset(manifest: str | os.PathLike, tokenizer, *, sampling_rate: int, hop_length: int,
                 num_speakers: int = 1, max_seconds: float = 20.0, min_frames: int = 1,
                 max_tokens: int = 512, use_soundfile: Optional[bool] = None) -> Dataset:
    """Reads, resamples and tokenizes every row; bad rows go to `skipped` (see module docstring).

    Audio is trimmed to a whole number of hops (at most hop - 1 samples are dropped), since the
    spectrogram has one frame per hop.
    """
    examples: list[Example] = []
    skipped: list[tuple[int, str]] = []
    for row, r in read_manifest(manifest):
        if "error" in r:
            skipped.append((row, r["error"]))
            continue
        text = r["text"].strip()
        if not text:
            skipped.append((row, "empty text"))
            continue
        try:
            ids = tokenizer.encode(text)
        except ValueError as e:
            skipped.append((row, f"text does not tokenize: {e}"))
            continue
        if not ids:
            skipped.append((row, "text tokenizes to nothing"))
            continue
        if len(ids) > max_tokens:
            skipped.append((row, f"too many tokens ({len(ids)} > {max_tokens})"))
            continue
        try:
            speaker = _speaker(r["speaker"], num_speakers)
        except ValueError as e:
            skipped.append((row, str(e)))
            continue
        if not os.path.isfile(r["audio"]):
            skipped.append((row, f"audio file not found: {r['audio']}"))
            continue
        try:
            x, rate = read_audio(r["audio"], use_soundfile)
        except Exception as e:  # any reader failure is this row's problem, not the run's
            skipped.append((row, f"unreadable audio {r['audio']}: {e}"))
            continue
        if rate <= 0 or not np.all(np.isfinite(x)):
            skipped.append((row, "audio has no valid sampling rate or non-finite samples"))
            continue
        seconds = len(x) / rate
        if seconds > max_seconds:
            skipped.append((row, f"audio too long ({seconds:.1f} s > {max_seconds:g} s)"))
            continue
        x = resample(x, rate, sampling_rate)
        frames = len(x) // hop_length
        if frames < max(min_frames, 1):
            skipped.append((row, f"audio too short ({frames} frames < {max(min_frames, 1)})"))
            continue
        examples.append(Example(row, r["audio"], text, np.asarray(ids, np.int32),
                                x[:frames * hop_length], speaker))
    if skipped:
        shown = "; ".join(f"row {i}: {why}" for i, why in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        message = f"{manifest}: skipped {len(skipped)} of {len(skipped) + len(examples)} rows ({shown}{more})"
        log.warning(message)
        warnings.warn(message, stacklevel=2)
    return Dataset(examples, skipped, sampling_rate)
