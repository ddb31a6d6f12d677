"""SSML -> what to say: text runs with their prosody, voice and phonemes, and explicit breaks.

    parse_ssml('<speak>Hi <break time="300ms"/> <prosody rate="slow">there</prosody>.</speak>')
    -> [Run("Hi", rate=1.0), Break(0.3), Run("there", rate=0.8), Run(".", rate=1.0)]

Elements: <speak>, <p> and <s> (sentence boundaries; a paragraph ends with a strong break),
<break time="300ms|1.5s" strength="none|x-weak|weak|medium|strong|x-strong">,
<prosody rate="80%|x-slow|slow|medium|fast|x-fast|default|1.2"> (rates multiply when nested),
<say-as interpret-as="characters|spell-out|cardinal|number|ordinal|date|telephone">, <sub alias>,
<voice name> (a speaker of the voice, or another loaded voice), <phoneme alphabet="ipa" ph>
(spoken as the phonemes written: Piper voices only), <mark name> and <audio> are accepted and
not spoken. Malformed XML and unknown elements or values raise SsmlError naming the line and
column; with lenient=True an unknown element's text is spoken and a warning says so.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
import xml.parsers.expat
from typing import Optional, Union

__all__ = ["SsmlError", "Run", "Break", "parse_ssml", "BREAK_STRENGTHS", "RATE_NAMES"]

# seconds of silence per break strength (the SSML 1.1 scale, as common engines read it)
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.2}
RATE_NAMES = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.6}
PARAGRAPH_BREAK = BREAK_STRENGTHS["strong"]
MAX_BREAK = 60.0   # seconds: a longer break is almost surely a typo ("300s" for "300ms")
_KNOWN = {"speak", "p", "s", "break", "prosody", "say-as", "sub", "voice", "phoneme", "mark", "audio",
          "emphasis", "lang"}


class SsmlError(ValueError):
    """SSML this reader cannot speak: the message names the line and column."""


@dataclasses.dataclass(frozen=True)
class Run:
    """Text to speak with the settings in force: rate (a multiplier of the voice's), voice (a
    <voice name>, None: the caller's), phonemes (IPA from <phoneme>, spoken as written), and
    whether a sentence ends here (<s>, <p>)."""

    text: str
    rate: float = 1.0
    voice: Optional[str] = None
    phonemes: bool = False
    sentence_end: bool = False


@dataclasses.dataclass(frozen=True)
class Break:
    """seconds of silence."""

    seconds: float


Segment = Union[Run, Break]


def _duration(value: str, where: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*", value)
    if not m:
        raise SsmlError(f"{where}: break time {value!r} is not a duration such as 300ms or 1.5s")
    seconds = float(m[1]) / (1000.0 if m[2] == "ms" else 1.0)
    if seconds > MAX_BREAK:
        raise SsmlError(f"{where}: break time {value!r} is longer than {MAX_BREAK:.0f} s")
    return seconds


def _rate(value: str, where: str) -> float:
    value = value.strip()
    if value in RATE_NAMES:
        return RATE_NAMES[value]
    m = re.fullmatch(r"([+-]?\d+(?:\.\d*)?)\s*%", value)
    if m:                             # "80%": 0.8 of normal; "+20%": 1.2 times
        number = float(m[1])
        rate = 1.0 + number / 100.0 if value.startswith(("+", "-")) else number / 100.0
    else:
        try:
            rate = float(value)
        except ValueError:
            raise SsmlError(f"{where}: prosody rate {value!r} is not a percentage, a number or one of "
                            f"{', '.join(RATE_NAMES)}") from None
    if not 0.1 <= rate <= 10.0:
        raise SsmlError(f"{where}: prosody rate {value!r} gives {rate:g}, outside [0.1, 10]")
    return rate


def _say_as(kind: str, text: str, language: str, where: str) -> str:
    """<say-as> text -> words the tokenizer reads."""
    kind = kind.strip().lower()
    if kind in ("characters", "spell-out", "verbatim"):
        return " ".join(c for c in text if not c.isspace())
    if kind == "telephone":
        return " ".join(c for c in text if c.isalnum())
    if kind in ("cardinal", "number", "ordinal", "date"):
        try:
            from num2words import num2words
        except ImportError:
            raise SsmlError(f"{where}: say-as {kind} needs the num2words package "
                            "(pip install num2words)") from None
        lang = (language or "en").replace("-", "_").split("_")[0]
        try:
            if kind == "date":
                m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*", text)
                if not m:
                    raise SsmlError(f"{where}: say-as date {text!r} is not YYYY-MM-DD")
                import calendar
                year, month, day = int(m[1]), int(m[2]), int(m[3])
                if not 1 <= month <= 12:
                    raise SsmlError(f"{where}: say-as date {text!r} has no month {month}")
                return (f"{calendar.month_name[month]} {num2words(day, to='ordinal', lang=lang)}, "
                        f"{num2words(year, to='year', lang=lang)}")
            number = int(text.strip().replace(",", ""))
            return num2words(number, to="ordinal" if kind == "ordinal" else "cardinal", lang=lang)
        except (ValueError, NotImplementedError) as e:
            if isinstance(e, SsmlError):
                raise
            raise SsmlError(f"{where}: say-as {kind} cannot read {text!r} ({e})") from None
    raise SsmlError(f"{where}: say-as interpret-as={kind!r} is not one of characters, spell-out, "
                    "cardinal, number, ordinal, date, telephone")


def parse_ssml(ssml: str, *, lenient: bool = False, language: str = "en",
               phonemes_allowed: bool = True) -> list[Segment]:
    """SSML text -> segments in reading order (see the module docstring). A document without a
    <speak> root is read as the content of one. `phonemes_allowed`: False for voices that read
    characters, not phonemes (a <phoneme> element is then an error)."""
    if not isinstance(ssml, str) or not ssml.strip():
        raise SsmlError("empty SSML: nothing to say")
    body = ssml.strip()
    offset = 0
    if not re.match(r"(<\?xml[^>]*\?>\s*)?<speak[\s>/]", body):
        body = f"<speak>{body}</speak>"
        offset = len("<speak>")
    parser = xml.parsers.expat.ParserCreate()
    out: list[Segment] = []
    stack: list[dict] = [{"tag": "#root", "rate": 1.0, "voice": None, "capture": None}]

    def where() -> str:
        line, column = parser.CurrentLineNumber, parser.CurrentColumnNumber + 1
        if line == 1:
            column -= offset
        return f"line {line}, column {column}"

    def state() -> dict:
        return stack[-1]

    def emit_text(text: str) -> None:
        top = state()
        if top["capture"] is not None:
            top["capture"].append(text)
            return
        if top.get("skip"):
            return
        if text:
            out.append(Run(text, rate=top["rate"], voice=top["voice"]))

    def end_sentence() -> None:
        for k in range(len(out) - 1, -1, -1):
            if isinstance(out[k], Run):
                out[k] = dataclasses.replace(out[k], sentence_end=True)
                return

    def start(tag: str, attrs: dict) -> None:
        here = where()
        top = dict(state(), tag=tag, capture=None, attrs=attrs, where=here, skip=state().get("skip", False))
        if state()["capture"] is not None and tag not in _KNOWN:
            pass
        if tag not in _KNOWN:
            if not lenient:
                raise SsmlError(f"{here}: unknown SSML element <{tag}> (pass --ssml-lenient to speak its "
                                "text and ignore the tag)")
            warnings.warn(f"SSML {here}: unknown element <{tag}>: its text is spoken, the tag ignored",
                          stacklevel=4)
        elif tag == "break":
            if "time" in attrs:
                out.append(Break(_duration(attrs["time"], here)))
            else:
                strength = attrs.get("strength", "medium")
                if strength not in BREAK_STRENGTHS:
                    raise SsmlError(f"{here}: break strength {strength!r} is not one of "
                                    f"{', '.join(BREAK_STRENGTHS)}")
                out.append(Break(BREAK_STRENGTHS[strength]))
        elif tag == "prosody" and "rate" in attrs:
            top["rate"] = state()["rate"] * _rate(attrs["rate"], here)
        elif tag == "voice":
            name = attrs.get("name")
            if not name:
                raise SsmlError(f"{here}: <voice> needs a name attribute")
            top["voice"] = name
        elif tag in ("say-as", "sub", "phoneme"):
            if tag == "say-as" and "interpret-as" not in attrs:
                raise SsmlError(f"{here}: <say-as> needs an interpret-as attribute")
            if tag == "sub" and "alias" not in attrs:
                raise SsmlError(f"{here}: <sub> needs an alias attribute")
            if tag == "phoneme":
                if "ph" not in attrs:
                    raise SsmlError(f"{here}: <phoneme> needs a ph attribute")
                if attrs.get("alphabet", "ipa") != "ipa":
                    raise SsmlError(f"{here}: <phoneme alphabet={attrs['alphabet']!r}>: only ipa is read")
                if not phonemes_allowed:
                    raise SsmlError(f"{here}: <phoneme> needs a voice that reads phonemes (a Piper voice); "
                                    "this voice reads characters: write the word out instead")
            top["capture"] = []
        elif tag in ("mark", "audio"):
            top["skip"] = True
        stack.append(top)

    def end(tag: str) -> None:
        top = stack.pop()
        if top["capture"] is not None:
            text = "".join(top["capture"])
            if tag == "say-as":
                said = _say_as(top["attrs"]["interpret-as"], text, language, top["where"])
                out.append(Run(said, rate=top["rate"], voice=top["voice"]))
            elif tag == "sub":
                out.append(Run(top["attrs"]["alias"], rate=top["rate"], voice=top["voice"]))
            elif tag == "phoneme":
                out.append(Run(top["attrs"]["ph"], rate=top["rate"], voice=top["voice"], phonemes=True))
        if tag in ("s", "p"):
            end_sentence()
        if tag == "p":
            out.append(Break(PARAGRAPH_BREAK))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = emit_text
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as e:
        column = e.offset + 1 - (offset if e.lineno == 1 else 0)
        raise SsmlError(f"malformed SSML at line {e.lineno}, column {column}: "
                        f"{xml.parsers.expat.ErrorString(e.code)}") from None
    # adjacent runs with the same settings read as one text
    merged: list[Segment] = []
    for seg in out:
        last = merged[-1] if merged else None
        if (isinstance(seg, Run) and isinstance(last, Run) and not seg.phonemes and not last.phonemes
                and not last.sentence_end and (seg.rate, seg.voice) == (last.rate, last.voice)):
            merged[-1] = dataclasses.replace(last, text=last.text + seg.text, sentence_end=seg.sentence_end)
        else:
            merged.append(seg)
    return [s for s in merged if not isinstance(s, Run) or s.text.strip()]
