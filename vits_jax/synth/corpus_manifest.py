"""Corpus manifests: reading CSV / JSONL rows and checking each one, for `vits_jax.synth.corpus`.

A manifest row has `id` and `text`, and optionally `speaker`, `rate`, `noise_scale`,
`noise_scale_duration` and `seed`. A row that cannot be spoken is not an error for the run: it
becomes a `Skip` with its reason (listed in the output's skipped.jsonl) and the run goes on. Only a
manifest that cannot be read at all (missing file, no `id`/`text` columns, unknown format) raises
`ManifestError`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import unicodedata
from typing import Any, Iterable, Optional, Union

__all__ = ["ManifestError", "Row", "Skip", "read_manifest", "check_rows", "check_id", "MAX_ID_BYTES"]

OPTIONAL = ("speaker", "rate", "noise_scale", "noise_scale_duration", "seed")
COLUMNS = ("id", "text") + OPTIONAL
MAX_ID_BYTES = 200                      # file names are <= 255 bytes on common file systems
_FORBIDDEN = set('/\\:*?"<>|')           # path separators and characters Windows refuses
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (missing file, unknown format, no id/text columns)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One speakable manifest row, its fields parsed. `position` is its 0-based place in the manifest."""

    position: int
    id: str
    text: str
    speaker: Optional[int] = None
    rate: Optional[float] = None
    noise_scale: Optional[float] = None
    noise_scale_duration: Optional[float] = None
    seed: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Skip:
    """A row that is not spoken, with why. `id` is None when the row has no usable id."""

    position: int
    id: Optional[str]
    reason: str

    def record(self) -> dict:
        return {"row": self.position, "id": self.id, "reason": self.reason}


def _detect_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    raise ManifestError(f"manifest {path}: unknown format; name it .csv, .tsv or .jsonl")


def read_manifest(source: Union[str, os.PathLike, Iterable[dict]]) -> list[Union[dict, Skip]]:
    """A manifest path (CSV with a header row, TSV, or JSONL) or an iterable of dicts -> raw rows.

    Each entry is the row's dict of fields (strings for CSV), or a `Skip` for a JSONL line that
    is not a JSON object. Raises ManifestError if the file cannot be read or lacks id/text.
    """
    if not isinstance(source, (str, os.PathLike)):
        rows = list(source)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ManifestError(f"manifest row {i} is a {type(row).__name__}, expected a dict")
        return rows
    path = os.fspath(source)
    fmt = _detect_format(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except IsADirectoryError:
        raise ManifestError(f"manifest {path} is a folder, expected a .csv or .jsonl file") from None
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"manifest {path} is not UTF-8 text ({e})") from None
    if fmt == "csv":
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in ("id", "text") if c not in fields]
        if missing:
            raise ManifestError(f"manifest {path}: the header row must name the columns id and text "
                                f"(missing {', '.join(missing)}; found {fields})")
        reader.fieldnames = fields
        return [dict(r) for r in reader]
    rows: list[Union[dict, Skip]] = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            row = Skip(len(rows), None, f"line {number}: not valid JSON ({e.msg})")
        if not isinstance(row, (dict, Skip)):
            row = Skip(len(rows), None, f"line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    if rows and not any(isinstance(r, dict) and "id" in r and "text" in r for r in rows):
        raise ManifestError(f"manifest {path}: no line has both \"id\" and \"text\"")
    return rows


def check_id(value: Any) -> str:
    """A row id -> itself if it is safe as a file name, else ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"bad id {value!r}: expected a string")
    ident = str(value)
    if not ident or ident != ident.strip():
        raise ValueError(f"bad id {ident!r}: empty or with surrounding spaces")
    if unicodedata.normalize("NFC", ident) != ident:
        raise ValueError(f"unsafe id {ident!r}: not in Unicode NFC form (file systems may rename it)")
    bad = sorted({c for c in ident if c in _FORBIDDEN or unicodedata.category(c)[0] == "C"})
    if bad:
        raise ValueError(f"unsafe id {ident!r} for a file name: contains {bad}")
    if ident.startswith(".") or ident.endswith("."):
        raise ValueError(f"unsafe id {ident!r} for a file name: starts or ends with '.'")
    if ident.split(".")[0].lower() in _RESERVED:
        raise ValueError(f"unsafe id {ident!r} for a file name: reserved device name")
    if len(ident.encode("utf-8")) > MAX_ID_BYTES:
        raise ValueError(f"unsafe id {ident[:40]!r}...: longer than {MAX_ID_BYTES} bytes")
    return ident


def _number(row: dict, name: str, *, positive: bool) -> Optional[float]:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"bad {name} {value!r}: expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"bad {name} {value!r}: expected a number") from None
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        raise ValueError(f"bad {name} {value!r}: must be {'> 0' if positive else '>= 0'} and finite")
    return number


def _integer(row: dict, name: str, low: int, high: int) -> Optional[int]:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"bad {name} {value!r}: expected an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        number = None
    if not isinstance(number, int):
        raise ValueError(f"bad {name} {value!r}: expected an integer")
    if not low <= number < high:
        raise ValueError(f"bad {name} {number}: must be in [{low}, {high})")
    return number


def check_rows(raw: list[Union[dict, Skip]], num_speakers: int) -> tuple[list[Row], list[Skip]]:
    """Raw rows -> (speakable rows, skipped rows), both in manifest order.

    Checks ids (present, safe as a file name, unique: also case-insensitively, since some file
    systems fold case), text (non-empty), speaker (in [0, num_speakers); on a single-speaker model
    only 0 or empty), numbers (rate > 0, noise scales >= 0, seed in [0, 2**32)). The first row with
    an id wins; later duplicates are skipped.
    """
    rows: list[Row] = []
    skipped: list[Skip] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(raw):
        if isinstance(entry, Skip):
            skipped.append(Skip(position, None, entry.reason))
            continue
        ident = entry.get("id")
        try:
            ident = check_id(ident)
        except ValueError as e:
            skipped.append(Skip(position, None if ident is None else str(ident),
                                "missing id" if ident in (None, "") else str(e)))
            continue
        folded = ident.casefold()
        if folded in seen:
            skipped.append(Skip(position, ident, f"duplicate id: row {seen[folded]} has the same id "
                                                 "(compared case-insensitively)"))
            continue
        seen[folded] = position
        text = entry.get("text")
        if not isinstance(text, str) or not text.strip():
            skipped.append(Skip(position, ident, "empty text" if text in (None, "") or
                                isinstance(text, str) else f"bad text {text!r}: expected a string"))
            continue
        try:
            speaker = _integer(entry, "speaker", 0, max(num_speakers, 1))
            if speaker is not None and num_speakers <= 1:
                speaker = None                   # speaker 0 of a single-speaker model
            row = Row(position, ident, text, speaker=speaker,
                      rate=_number(entry, "rate", positive=True),
                      noise_scale=_number(entry, "noise_scale", positive=False),
                      noise_scale_duration=_number(entry, "noise_scale_duration", positive=False),
                      seed=_integer(entry, "seed", 0, 2 ** 32))
        except ValueError as e:
            skipped.append(Skip(position, ident, str(e)))
            continue
        rows.append(row)
    return rows, skipped
