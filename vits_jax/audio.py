"""WAV files: 16-bit PCM mono, written atomically, with the standard library's `wave` module.

Shapes: S samples. Waveforms are float arrays in [-1, 1] (values outside are clipped).
"""

from __future__ import annotations

import io
import os
import tempfile
import wave
from typing import BinaryIO

import numpy as np

__all__ = ["to_pcm16", "silence", "concatenate", "write_wav", "wav_bytes", "read_wav"]


def to_pcm16(waveform) -> np.ndarray:
    """float waveform (S,) -> int16 (S,): clipped to [-1, 1], scaled by 32767, rounded."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the waveform has NaN or infinite samples")
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def silence(seconds: float, sampling_rate: int) -> np.ndarray:
    """(round(seconds * sampling_rate),) zeros, float32."""
    if seconds < 0:
        raise ValueError(f"a pause cannot be negative, got {seconds} s")
    return np.zeros(int(round(seconds * sampling_rate)), np.float32)


def concatenate(pieces, pause_samples: int) -> np.ndarray:
    """Waveforms (S_i,) joined with `pause_samples` zeros between consecutive ones."""
    pieces = [np.asarray(p, np.float32) for p in pieces]
    if not pieces:
        return np.zeros(0, np.float32)
    gap = np.zeros(int(pause_samples), np.float32)
    out = [pieces[0]]
    for p in pieces[1:]:
        out += [gap, p]
    return np.concatenate(out)


def _write(f: BinaryIO, pcm: np.ndarray, sampling_rate: int) -> None:
    with wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sampling_rate))
        w.writeframes(pcm.tobytes())


def wav_bytes(waveform, sampling_rate: int) -> bytes:
    """The bytes of a 16-bit PCM mono WAV file holding `waveform`."""
    buf = io.BytesIO()
    _write(buf, to_pcm16(waveform), sampling_rate)
    return buf.getvalue()


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_wav(path: str | os.PathLike, waveform, sampling_rate: int) -> None:
    """Writes `waveform` (S,) as a 16-bit PCM mono WAV at `sampling_rate`, atomically.

    The file is written to a temporary file in the same folder, flushed to disk and renamed over
    `path`; on any error the temporary file is removed and an existing `path` is left as it was.
    A replaced file keeps its permission bits; a new one gets the usual ones (0666 & ~umask).
    """
    if int(sampling_rate) <= 0:
        raise ValueError(f"sampling rate must be positive, got {sampling_rate}")
    pcm = to_pcm16(waveform)  # validate before touching the file system
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; pass a file name such as {os.path.join(path, 'out.wav')}")
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = _default_mode()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, pcm, sampling_rate)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A 16-bit PCM mono WAV file -> (float32 waveform (S,) in [-1, 1], sampling rate)."""
    with wave.open(os.fspath(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono, got {w.getnchannels()} channel(s) of "
                             f"{8 * w.getsampwidth()} bits")
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32767.0, rate
