"""Number front-end: digits -> words with `num2words`, in the voice's language.

Handles currency amounts ($ £ € ¥ before the number), times (``8:45``), English ordinals
(``21st``), years (a standalone 1100-2099), percentages, decimals and integers with thousands
separators, in that order of precedence. Languages come as the tokenizer config's code: MMS'
ISO 639-3 (``eng``), ISO 639-1 (``en``) or a locale (``en_US``, ``en-us``).
"""

from __future__ import annotations

import re

__all__ = ["number_language", "expand_numbers"]

# ISO 639-3 -> num2words language (only languages num2words has; checked at use).
_ISO3 = {
    "amh": "am", "ara": "ar", "arb": "ar", "aze": "az", "azj": "az", "bel": "be", "ben": "bn",
    "cat": "ca", "che": "ce", "ces": "cs", "cym": "cy", "dan": "da", "deu": "de", "eng": "en",
    "epo": "eo", "spa": "es", "fas": "fa", "pes": "fa", "fin": "fi", "fra": "fr", "heb": "he",
    "hun": "hu", "ind": "id", "isl": "is", "ita": "it", "jpn": "ja", "kan": "kn", "kor": "ko",
    "kaz": "kz", "lit": "lt", "lav": "lv", "lvs": "lv", "nld": "nl", "nor": "no", "nob": "no",
    "pol": "pl", "por": "pt", "ron": "ro", "rus": "ru", "slk": "sk", "slv": "sl", "srp": "sr",
    "swe": "sv", "tel": "te", "tet": "tet", "tgk": "tg", "tha": "th", "tur": "tr", "ukr": "uk",
    "vie": "vi",
}
_CURRENCY = {"$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY"}
_NUMBER = r"\d{1,3}(?:,\d{3})+|\d+"
_PATTERN = re.compile(
    rf"(?P<cur>[$£€¥])\s?(?P<amount>(?:{_NUMBER})(?:\.\d+)?)"
    r"|(?<![\d:])(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?![\d:])"
    r"|(?<![\d.,])(?P<ord>\d+)(?P<suffix>st|nd|rd|th)\b"
    r"|(?<![\d.,])(?P<year>1[1-9]\d\d|20\d\d)(?![\d%]|[.,]\d)"
    rf"|(?<![\d.,])(?P<num>(?:{_NUMBER})(?:\.\d+)?)(?P<pct>\s?%)?(?![\d])"
)


def number_language(code: str | None) -> str | None:
    """num2words' language for a config language code, or None when num2words lacks it."""
    if not code:
        return None
    from num2words import CONVERTER_CLASSES

    code = code.replace("-", "_")
    for candidate in (code, code.split("_")[0].lower(), _ISO3.get(code.lower(), "")):
        if candidate in CONVERTER_CLASSES:
            return candidate
    return None


def _words(value, lang: str, **kw) -> str:
    from num2words import num2words

    return num2words(value, lang=lang, **kw)


def _replace(m: re.Match, lang: str) -> str:
    english = lang.startswith("en")
    if m["cur"]:
        amount = m["amount"].replace(",", "")
        try:  # a float: num2words reads an int amount as cents
            return _words(float(amount), lang, to="currency", currency=_CURRENCY[m["cur"]])
        except (NotImplementedError, KeyError, ValueError, TypeError):
            return _words(float(amount) if "." in amount else int(amount), lang)
    if m["hour"]:
        hour, minute = int(m["hour"]), int(m["minute"])
        out = _words(hour, lang)
        if minute == 0:
            return out + (" o'clock" if english else "")
        return out + (" oh" if english and minute < 10 else "") + " " + _words(minute, lang)
    if m["ord"]:
        return _words(int(m["ord"]), lang, to="ordinal") if english else m[0]
    if m["year"]:
        try:
            return _words(int(m["year"]), lang, to="year")
        except (NotImplementedError, TypeError):
            return _words(int(m["year"]), lang)
    num = m["num"].replace(",", "")
    out = _words(float(num) if "." in num else int(num), lang)
    if m["pct"]:
        out += " percent" if english else " %"
    return out


def expand_numbers(text: str, lang: str) -> str:
    """`text` with its numbers spelled out in num2words language `lang` (see `number_language`)."""
    return _PATTERN.sub(lambda m: _replace(m, lang), text)
