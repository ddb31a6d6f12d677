"""Character front-end: casing that keeps vocabulary entries verbatim, then the vocabulary filter.

The filter drops characters missing from the vocabulary (as transformers does) and reports them;
with ``fold_diacritics`` a letter the vocabulary lacks is first replaced by its base letters
(Unicode NFD without combining marks: "é" -> "e") when those are in the vocabulary.
"""

from __future__ import annotations

import unicodedata
import warnings
from typing import Iterable, Mapping

__all__ = ["lowercase_keeping", "filter_vocabulary", "report", "UnknownCharactersError", "ON_UNKNOWN"]

ON_UNKNOWN = ("warn", "error", "ignore")


class UnknownCharactersError(ValueError):
    """Text holds characters the voice cannot speak (raised with ``on_unknown="error"``)."""


def lowercase_keeping(text: str, by_first: Mapping[str, list[str]]) -> str:
    """Lowercase character by character, keeping vocabulary / added-token matches verbatim."""
    out = []
    i, n = 0, len(text)
    while i < n:
        for word in by_first.get(text[i], ()):
            if text.startswith(word, i):
                out.append(word)
                i += len(word)
                break
        else:
            out.append(text[i].lower())
            i += 1
    return "".join(out)


def _base_letters(ch: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))


def filter_vocabulary(text: str, vocab: Mapping[str, int], *, fold_diacritics: bool
                      ) -> tuple[str, dict[str, str | None]]:
    """Keep characters in `vocab`; returns the text and ``{char: replacement or None (dropped)}``.

    Whitespace and punctuation are never reported: they carry no sound of their own (the result
    is stripped, as transformers strips it).
    """
    out = []
    changed: dict[str, str | None] = {}
    for c in text:
        if c in vocab:
            out.append(c)
            continue
        if fold_diacritics:
            base = _base_letters(c)
            if base and base != c and all(b in vocab for b in base):
                out.append(base)
                changed[c] = base
                continue
        if not c.isspace() and not unicodedata.category(c).startswith("P"):
            changed[c] = None  # punctuation is not speech: dropping it is no loss
    return "".join(out).strip(), changed


def _describe(chars: Iterable[str]) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)


def report(changed: Mapping[str, str | None], text: str, on_unknown: str, what: str = "vocabulary") -> None:
    """Warn about (or raise for) dropped and replaced characters, as `on_unknown` says."""
    if not changed or on_unknown == "ignore":
        return
    dropped = [c for c, r in changed.items() if r is None]
    folded = {c: r for c, r in changed.items() if r is not None}
    parts = []
    if dropped:
        parts.append(f"dropped {len(dropped)} character(s) missing from the voice's {what}: "
                     f"{_describe(dropped)}")
    if folded:
        parts.append("replaced " + ", ".join(f"{c!r} by {r!r}" for c, r in folded.items()))
    preview = repr(text) if len(text) <= 60 else repr(text[:60]) + f"... ({len(text)} chars)"
    message = f"text {preview}: " + "; ".join(parts)
    if on_unknown == "error" and dropped:
        raise UnknownCharactersError(message + " (pass on_unknown='warn' or 'ignore' to speak the rest)")
    warnings.warn(message, stacklevel=4)
