"""phonemizer front-end: IPA through the `phonemizer` package and espeak-ng, as transformers calls it."""

from __future__ import annotations

import re

__all__ = ["phonemize"]

_WHITESPACE_RUN = re.compile(r"\s+")


def phonemize(text: str, language: str) -> str:
    try:
        import phonemizer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("this tokenizer config sets phonemize=true: install `pip install phonemizer` "
                          "and the espeak-ng system package (`apt install espeak-ng` / "
                          "`brew install espeak-ng`)") from err
    # The exact call transformers' VitsTokenizer makes (phonemizer caches the espeak backend).
    out = phonemizer.phonemize(text, language=language, backend="espeak", strip=True,
                               preserve_punctuation=True, with_stress=True)
    return _WHITESPACE_RUN.sub(" ", out)
