"""Audio files: 16-bit PCM mono WAV written atomically (with `soundfile`: also FLAC, OGG Vorbis and,
where its libsndfile has it, MP3, by the file's extension); WAV (and with `soundfile`, FLAC, OGG) read.

Shapes: S samples, C channels. Waveforms are float arrays in [-1, 1] (values outside are clipped
on writing).

Scales: writing maps [-1, 1] to [-32767, 32767] (symmetric, so -1.0 and 1.0 both fit); reading
divides n-bit PCM by 2**(n-1) (16-bit: 32768), the convention of soundfile/libsndfile, so both
readers here give the same numbers. A written file reads back within 1/32768 of the clipped input.

Reading: `read_audio` uses `soundfile` when it is installed (WAV, FLAC, OGG, ...), otherwise
`read_wav` (the standard library's `wave` module: PCM WAV, 8/16/24/32-bit). Channels are averaged
to mono. `resample` converts between sampling rates with `scipy.signal.resample_poly` (polyphase,
with its anti-aliasing Kaiser-windowed FIR) when scipy is installed, otherwise by linear
interpolation with numpy (no anti-aliasing filter: fine for upsampling, audible aliasing possible
when downsampling; resample beforehand if scipy is unavailable).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import wave
from typing import BinaryIO, Callable, Optional

import numpy as np

__all__ = ["to_pcm16", "silence", "concatenate", "peak_normalize", "temporary_name", "write_atomic", "write_wav", "wav_bytes", "read_wav",
           "read_audio", "resample", "FORMATS", "writable_extensions", "audio_bytes", "write_audio"]

# Output file extension -> soundfile's (format, subtype). WAV is written by the standard library.
FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".mp3": ("MP3", "MPEG_LAYER_III")}
_WRITABLE: Optional[list] = None


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


def peak_normalize(waveform) -> np.ndarray:
    """(S,) -> (S,) float32 scaled so its largest |sample| is 1.0, as Piper's `normalize_audio`
    (piper-tts 1.8 `PiperVoice.synthesize`, per sentence); a near-silent input (peak < 1e-8)
    becomes zeros rather than amplified noise."""
    x = np.asarray(waveform, np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < 1e-8:
        return np.zeros_like(x)
    return x / np.float32(peak)


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


def temporary_name(path: str | os.PathLike) -> str:
    """The prefix of the temporary file `write_wav` writes beside `path` (hidden, same folder)."""
    return f".{os.path.basename(os.fspath(path))}."


def write_atomic(path: str | os.PathLike, data: bytes, *,
                 before_replace: Optional[Callable[[], None]] = None) -> None:
    """Writes `data` to `path` atomically: a temporary file in the same folder, flushed to disk and
    renamed over `path`; on any error the temporary file is removed and an existing `path` is left
    as it was. A replaced file keeps its permission bits; a new one gets the usual ones
    (0666 & ~umask). `before_replace` is called just before the rename (the commit point);
    whatever it raises abandons the write the same way (the command line checks for Ctrl-C there).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; pass a file name such as {os.path.join(path, 'out.wav')}")
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = _default_mode()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temporary_name(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_wav(path: str | os.PathLike, waveform, sampling_rate: int, *,
              before_replace: Optional[Callable[[], None]] = None) -> None:
    """Writes `waveform` (S,) as a 16-bit PCM mono WAV at `sampling_rate`, atomically
    (`write_atomic`: an existing `path` is replaced only by a complete file)."""
    if int(sampling_rate) <= 0:
        raise ValueError(f"sampling rate must be positive, got {sampling_rate}")
    pcm = to_pcm16(waveform)  # validate before touching the file system
    if os.path.isdir(os.fspath(path)):
        raise IsADirectoryError(f"{path} is a folder; pass a file name such as {os.path.join(path, 'out.wav')}")
    buf = io.BytesIO()
    _write(buf, pcm, sampling_rate)
    write_atomic(path, buf.getvalue(), before_replace=before_replace)


def writable_extensions() -> list[str]:
    """The output extensions this installation writes: ".wav" always; ".flac", ".ogg" and ".mp3"
    when `soundfile` is installed and its libsndfile encodes them (MP3 needs libsndfile >= 1.1),
    found by encoding a few samples once."""
    global _WRITABLE
    if _WRITABLE is None:
        found = [".wav"]
        try:
            import soundfile
        except ImportError:
            soundfile = None
        for ext, (fmt, subtype) in FORMATS.items():
            if soundfile is None or ext == ".wav":
                continue
            try:
                soundfile.write(io.BytesIO(), np.zeros(64, np.float32), 22050, format=fmt, subtype=subtype)
            except Exception:  # noqa: BLE001  (libsndfile without this format: not offered)
                continue
            found.append(ext)
        _WRITABLE = found
    return list(_WRITABLE)


def _extension(path: str | os.PathLike) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def audio_bytes(waveform, sampling_rate: int, extension: str = ".wav") -> bytes:
    """The bytes of a mono audio file holding `waveform`, in the format of `extension` (".wav":
    16-bit PCM; ".flac": 16-bit FLAC; ".ogg": Vorbis; ".mp3"); ValueError for another extension
    or one this installation cannot write (`writable_extensions`)."""
    extension = extension.lower()
    if extension == ".wav":
        return wav_bytes(waveform, sampling_rate)
    if extension not in writable_extensions():
        raise ValueError(f"cannot write {extension or 'a file without an extension'} audio: the "
                         f"supported extensions are {', '.join(writable_extensions())}")
    import soundfile

    pcm = to_pcm16(waveform)                    # the same clipped 16-bit samples as the WAV
    fmt, subtype = FORMATS[extension]
    buf = io.BytesIO()
    soundfile.write(buf, pcm.astype(np.float32) / np.float32(32768.0), int(sampling_rate),
                    format=fmt, subtype=subtype)
    return buf.getvalue()


def write_audio(path: str | os.PathLike, waveform, sampling_rate: int, *,
                before_replace: Optional[Callable[[], None]] = None) -> None:
    """Writes `waveform` (S,) in the format of `path`'s extension (`audio_bytes`), atomically
    (`write_atomic`)."""
    if int(sampling_rate) <= 0:
        raise ValueError(f"sampling rate must be positive, got {sampling_rate}")
    if os.path.isdir(os.fspath(path)):
        raise IsADirectoryError(f"{path} is a folder; pass a file name such as {os.path.join(path, 'out.wav')}")
    write_atomic(path, audio_bytes(waveform, sampling_rate, _extension(path)), before_replace=before_replace)


def _pcm_to_float(data: bytes, width: int) -> np.ndarray:
    """Interleaved little-endian PCM bytes -> float32 samples, n-bit PCM divided by 2**(n-1)."""
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    if width == 3:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    if width == 4:
        return (np.frombuffer(data, "<i4").astype(np.float64) / 2.0 ** 31).astype(np.float32)
    raise ValueError(f"unsupported sample width {width} bytes")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A PCM WAV file (8/16/24/32-bit, any channels) -> (float32 mono waveform (S,), sampling rate).

    Channels are averaged; n-bit samples are divided by 2**(n-1) (see the module docstring).
    """
    with wave.open(os.fspath(path), "rb") as w:
        if w.getcomptype() != "NONE":
            raise ValueError(f"{path}: compressed WAV ({w.getcomptype()}) needs the soundfile package")
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        data = w.readframes(w.getnframes())
    x = _pcm_to_float(data, width).reshape(-1, channels)     # (S, C)
    return x.mean(axis=1).astype(np.float32), int(rate)


def read_audio(path: str | os.PathLike, use_soundfile: Optional[bool] = None) -> tuple[np.ndarray, int]:
    """-> (mono waveform (S,) float32 in [-1, 1], sampling rate); soundfile when installed (or asked
    for with use_soundfile=True), else `read_wav`. Channels are averaged."""
    if use_soundfile is None:
        try:
            import soundfile  # noqa: F401  (probe only)
            use_soundfile = True
        except ImportError:
            use_soundfile = False
    if not use_soundfile:
        return read_wav(path)
    import soundfile

    x, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)   # (S, C)
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
