"""Training manifests: a CSV / JSONL file, or a folder of clips -> numbered (audio, text, speaker) rows.

A CSV file has a header row `audio,text[,speaker]`; a JSONL file holds one object per line with
those keys (`.jsonl` / `.json` suffix). Audio paths are relative to the manifest's folder (absolute
paths are kept). A folder works too: its metadata.csv / metadata.jsonl, or else its NAME.wav +
NAME.txt pairs (rows numbered in file-name order). Row numbers count data rows from 1 (the CSV
header is not a row).
"""

from __future__ import annotations

import csv
import json
import os

__all__ = ["AUDIO_SUFFIXES", "FOLDER_MANIFESTS", "read_manifest"]

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
