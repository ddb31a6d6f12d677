"""uroman front-end: romanization of non-Latin text, as transformers' VitsTokenizer does it."""

from __future__ import annotations

import functools
import re

__all__ = ["romanize"]

_NON_ASCII = re.compile(r"[^\x00-\x7F]")


@functools.lru_cache(maxsize=1)
def _uroman():
    # uroman.Uroman() takes ~3 s to build: once per process, not once per call.
    try:
        import uroman
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this tokenizer config sets is_uroman=true and the text contains non-ASCII characters: "
            "install the romanizer with `pip install uroman`") from err
    return uroman.Uroman()


def romanize(text: str) -> str:
    """``uroman.Uroman().romanize_string(text)`` (no language code), only if `text` is not ASCII."""
    return _uroman().romanize_string(text) if _NON_ASCII.search(text) else text
