"""Training data: a manifest of (audio, text[, speaker]) rows -> padded, length-bucketed `Batch`es.

Shapes: N examples, B batch, T tokens, S samples (a multiple of the hop).

Manifest: a CSV file with a header row `audio,text[,speaker]`, or a JSONL file (one object per
line with those keys; `.jsonl` / `.json` suffix). Audio paths are relative to the manifest's folder
(absolute paths are kept). A folder works too: its metadata.csv / metadata.jsonl, or else its
NAME.wav + NAME.txt pairs (rows numbered in file-name order).

Audio: read with `soundfile` when it is installed (WAV, FLAC, OGG, ...), otherwise with the standard
library's `wave` module (PCM WAV, 8/16/24/32-bit). Channels are averaged to mono. A different
sampling rate is converted to the model's with `scipy.signal.resample_poly` (polyphase, with its
anti-aliasing Kaiser-windowed FIR) when scipy is installed, otherwise by linear interpolation with
numpy (no anti-aliasing filter: fine for upsampling, audible aliasing possible when downsampling;
resample the corpus beforehand if scipy is unavailable).

Bad rows never stop loading: a missing or unreadable audio file, empty text, text that tokenizes to
nothing, a bad speaker id, audio that is too short or too long, too many tokens. Each is recorded
in `Dataset.skipped` as (row number, reason) and one warning summarises them. Row numbers count
data rows from 1 (the CSV header is not a row).

Batching: examples are sorted by audio length and cut into batches of `batch_size` consecutive
examples, so each batch holds similar lengths. A batch is padded to buckets (tokens to a multiple of
`token_multiple`, samples to a multiple of `frame_multiple` x hop), so a corpus yields a handful of
shapes and the jitted step compiles a handful of times. Every batch has exactly `batch_size` rows
(the last one is filled up with repeats of its own examples). The batch order is a permutation
drawn from (seed, epoch): `batch_at(step)` is a pure function of the step, which makes resuming
exact.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import warnings
import wave
from typing import Optional, Sequence

import numpy as np

from .step import Batch

__all__ = ["Example", "Dataset", "read_manifest", "read_audio", "resample", "load_dataset", "Batches"]

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


# ------------------------------------------------------------------ manifest
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
FOLDER_MANIFESTS = ("metadata.csv", "metadata.jsonl")


def _folder_rows(folder: str) -> list[tuple[int, dict]]:
    """A folder of NAME.wav (.flac, .ogg) + NAME.txt pairs -> manifest rows, in file-name order.
    An audio file without its transcript is a row with an error (reported and skipped)."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(AUDIO_SUFFIXES))
    if not names:
        raise ValueError(f"{folder} holds no {' / '.join(FOLDER_MANIFESTS)} and no audio files "
                         f"({', '.join(AUDIO_SUFFIXES)}) with .txt transcripts")
    rows = []
    for i, name in enumerate(names, start=1):
        transcript = os.path.join(folder, os.path.splitext(name)[0] + ".txt")
        if not os.path.isfile(transcript):
            rows.append((i, {"error": f"{name}: no transcript {os.path.basename(transcript)}"}))
            continue
        with open(transcript, encoding="utf-8-sig") as f:
            text = " ".join(f.read().split())
        rows.append((i, {"audio": os.path.abspath(os.path.join(folder, name)), "text": text, "speaker": None}))
    return rows


def read_manifest(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """-> [(row, {"audio": absolute path, "text": str, "speaker": str | None})].

    `path` is a CSV or JSONL manifest, or a folder: its metadata.csv / metadata.jsonl when it has
    one, else its NAME.wav + NAME.txt pairs (one utterance each, single speaker).
    Raises ValueError for a manifest that cannot be read as a whole (no `audio`/`text` columns);
    problems of single rows (a JSONL line that is not an object, a missing field) are returned as
    rows with an `"error"` entry, which `load_dataset` reports and skips.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        inside = [os.path.join(path, n) for n in FOLDER_MANIFESTS if os.path.isfile(os.path.join(path, n))]
        if not inside:
            return _folder_rows(path)
        path = inside[0]
    folder = os.path.dirname(os.path.abspath(path))
    rows: list[tuple[int, dict]] = []

    def entry(i: int, record) -> tuple[int, dict]:
        if not isinstance(record, dict):
            return i, {"error": "not a JSON object"}
        audio, text = record.get("audio"), record.get("text")
        if not audio:
            return i, {"error": "no audio path"}
        speaker = record.get("speaker")
        return i, {"audio": os.path.join(folder, os.path.expanduser(str(audio))),
                   "text": "" if text is None else str(text),
                   "speaker": None if speaker in (None, "") else str(speaker)}

    if path.endswith((".jsonl", ".json")):
        with open(path, encoding="utf-8-sig") as f:
            for i, line in enumerate((l for l in f if l.strip()), start=1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    rows.append((i, {"error": f"invalid JSON ({e.msg})"}))
                    continue
                rows.append(entry(i, record))
        return rows
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = [n.strip() for n in (reader.fieldnames or [])]
        if "audio" not in fields or "text" not in fields:
            raise ValueError(f"manifest {path}: the CSV header must name the columns audio,text[,speaker]; "
                             f"got {','.join(fields) or 'nothing'}")
        reader.fieldnames = fields
        for i, record in enumerate(reader, start=1):
            rows.append(entry(i, record))
    return rows


# ------------------------------------------------------------------ audio
def _read_wave(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as w:
        if w.getcomptype() != "NONE":
            raise ValueError(f"compressed WAV ({w.getcomptype()}) needs the soundfile package")
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        data = w.readframes(w.getnframes())
    if width == 1:
        x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    elif width == 4:
        x = (np.frombuffer(data, "<i4").astype(np.float64) / 2.0 ** 31).astype(np.float32)
    else:
        raise ValueError(f"unsupported sample width {width} bytes")
    return x.reshape(-1, channels), rate


def read_audio(path: str, use_soundfile: Optional[bool] = None) -> tuple[np.ndarray, int]:
    """-> (mono waveform (S,) float32 in [-1, 1], sampling rate). Channels are averaged."""
    if use_soundfile is None:
        try:
            import soundfile  # noqa: F401  (probe only)
            use_soundfile = True
        except ImportError:
            use_soundfile = False
    if use_soundfile:
        import soundfile  # noqa: F811

        x, rate = soundfile.read(path, dtype="float32", always_2d=True)   # (S, channels)
    else:
        x, rate = _read_wave(path)
    return x.mean(axis=1).astype(np.float32), int(rate)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """(S,) at `src` Hz -> (round(S * dst / src),) at `dst` Hz; see the module docstring."""
    if src == dst:
        return np.asarray(x, np.float32)
    n = int(round(len(x) * dst / src))
    try:
        from scipy.signal import resample_poly
    except ImportError:
        t = np.arange(n) * (src / dst)                       # output instants in input samples
        return np.interp(t, np.arange(len(x)), x).astype(np.float32)
    g = math.gcd(int(src), int(dst))
    y = resample_poly(np.asarray(x, np.float64), dst // g, src // g)
    return np.asarray(y[:n], np.float32)


# ------------------------------------------------------------------ loading
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


# ------------------------------------------------------------------ batching
def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class Batches:
    """Deterministic, bucketed batches of a Dataset.

    `batch_at(step)`: the batch of training step `step` (epoch = step // len(self); inside an
    epoch the batch order is a permutation drawn from numpy's PCG64 seeded with (seed, epoch)).
    Batches are built on demand (host numpy arrays).
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, hop_length: int, seed: int = 0,
                 token_multiple: int = 16, frame_multiple: int = 32, min_frames: int = 0,
                 padding_id: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if not dataset.examples:
            raise ValueError("the dataset has no usable examples")
        self.dataset, self.batch_size, self.hop, self.seed = dataset, batch_size, hop_length, seed
        self.token_multiple, self.frame_multiple = token_multiple, frame_multiple
        self.min_frames, self.padding_id = min_frames, padding_id
        order = sorted(range(len(dataset.examples)),
                       key=lambda i: (len(dataset.examples[i].waveform), len(dataset.examples[i].ids), i))
        self.groups: list[list[int]] = []
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            self.groups.append([chunk[j % len(chunk)] for j in range(batch_size)])
        self.multi_speaker = any(e.speaker is not None for e in dataset.examples)

    def __len__(self) -> int:
        return len(self.groups)

    def shape_of(self, group: Sequence[int]) -> tuple[int, int]:
        """(T, S) padded sizes of a group of example indices."""
        ex = [self.dataset.examples[i] for i in group]
        tokens = _round_up(max(len(e.ids) for e in ex), self.token_multiple)
        frames = max(_round_up(max(len(e.waveform) // self.hop for e in ex), self.frame_multiple),
                     self.min_frames)
        return tokens, frames * self.hop

    def shapes(self) -> list[tuple[int, int]]:
        return sorted({self.shape_of(g) for g in self.groups})

    def make(self, group: Sequence[int]) -> Batch:
        tokens, samples = self.shape_of(group)
        b = len(group)
        ids = np.full((b, tokens), self.padding_id, np.int32)        # (B, T)
        text_lengths = np.zeros(b, np.int32)                          # (B,)
        wav = np.zeros((b, samples), np.float32)                      # (B, S)
        audio_lengths = np.zeros(b, np.int32)                         # (B,)
        speakers = np.zeros(b, np.int32)
        for r, i in enumerate(group):
            e = self.dataset.examples[i]
            ids[r, :len(e.ids)], text_lengths[r] = e.ids, len(e.ids)
            wav[r, :len(e.waveform)], audio_lengths[r] = e.waveform, len(e.waveform)
            speakers[r] = e.speaker or 0
        return Batch(ids, text_lengths, wav, audio_lengths, speakers if self.multi_speaker else None)

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))

    def batch_at(self, step: int) -> Batch:
        epoch, index = divmod(int(step), len(self.groups))
        return self.make(self.groups[int(self.order(epoch)[index])])
