"""Corpus output folder: audio files, per-process record logs and their merge, for `vits_jax.synth.corpus`.

Layout of OUT:
    run.json               the run's settings; a resumed run must match them
    audio/<id>.wav|.flac   one file per spoken row, written to a hidden temporary name and renamed
    manifest.<p>.jsonl     process p's log: one JSON line per finished row, appended after its audio
                           is in place (in completion order; a line cut by a kill is ignored)
    skipped.<p>.jsonl      process p's skipped rows (written whole, atomically)
    manifest.jsonl         all finished rows in manifest order: written by process 0 at the end
    skipped.jsonl          all skipped rows in manifest order, likewise

A file appears under its final name only once complete (temporary name + fsync + rename), so a
run killed at any point (SIGKILL included) leaves only complete audio files and complete log lines.
"""

from __future__ import annotations

import glob
import io
import json
import os
from typing import Iterable

import numpy as np

from . import audio

__all__ = ["audio_path", "write_audio", "append_record", "read_records", "write_jsonl",
           "remove_temporaries", "merge_shards", "AUDIO_DIR", "FORMATS"]

AUDIO_DIR = "audio"
FORMATS = ("wav", "flac")


def audio_path(out_dir: str, ident: str, audio_format: str) -> str:
    return os.path.join(out_dir, AUDIO_DIR, f"{ident}.{audio_format}")


def write_audio(path: str, waveform: np.ndarray, sampling_rate: int, audio_format: str) -> None:
    """waveform (S,) float in [-1, 1] -> 16-bit PCM mono WAV or FLAC at `path`, atomically."""
    if audio_format == "wav":
        audio.write_wav(path, waveform, sampling_rate)
        return
    import soundfile  # the [train]/[test] extra; FLAC only

    buffer = io.BytesIO()
    soundfile.write(buffer, audio.to_pcm16(waveform), int(sampling_rate), format="FLAC", subtype="PCM_16")
    audio.write_atomic(path, buffer.getvalue())


def _line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def append_record(path: str, record: dict) -> None:
    """Appends one JSON line with a single write() and fsyncs it: a kill leaves either the whole
    line or (at worst) a cut last line, which `read_records` drops."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        data = _line(record)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: str) -> list[dict]:
    """The complete JSON-object lines of a log (none if it does not exist). A last line without
    its newline (cut by a kill) is ignored, and the log is truncated to its complete lines so
    appends go on from there."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def write_jsonl(path: str, records: Iterable[dict]) -> None:
    """Records -> a JSONL file (sorted keys, UTF-8), atomically."""
    audio.write_atomic(path, b"".join(_line(r) for r in records))


def remove_temporaries(out_dir: str, names: Iterable[str]) -> None:
    """Deletes the hidden temporaries a killed run may have left for these final file names
    (`.NAME.*.tmp`, the pattern `audio.write_atomic` uses)."""
    for name in names:
        folder, base = os.path.split(name)
        for tmp in glob.glob(os.path.join(out_dir, folder, f".{glob.escape(base)}.*.tmp")):
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _order(record: dict):
    return record["row"], record.get("variant", 0)


def merge_shards(out_dir: str, process_count: int) -> tuple[int, int]:
    """Process 0, after every process has finished: manifest.<p>.jsonl and skipped.<p>.jsonl of
    all processes (and a manifest.jsonl of an earlier, finished run) -> manifest.jsonl and
    skipped.jsonl in manifest order, written atomically; the shards are then removed.
    Returns (rows in manifest.jsonl, rows in skipped.jsonl)."""
    done: dict[str, dict] = {r["id"]: r for r in read_records(os.path.join(out_dir, "manifest.jsonl"))}
    skipped: dict[tuple, dict] = {}
    shards = []
    for p in range(process_count):
        log = os.path.join(out_dir, f"manifest.{p}.jsonl")
        skip = os.path.join(out_dir, f"skipped.{p}.jsonl")
        for record in read_records(log):
            done[record["id"]] = record
        for record in read_records(skip):
            skipped[(record["row"], record.get("variant", 0), record["id"] or "")] = record
        shards += [log, skip]
    rows = sorted(done.values(), key=_order)
    write_jsonl(os.path.join(out_dir, "manifest.jsonl"), rows)
    write_jsonl(os.path.join(out_dir, "skipped.jsonl"), [skipped[k] for k in sorted(skipped)])
    for shard in shards:
        if os.path.exists(shard):
            os.unlink(shard)
    return len(rows), len(skipped)
