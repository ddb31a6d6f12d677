"""libespeak-ng through ctypes: text -> IPA clauses with their terminators, as Piper reads them.

Piper phonemizes clause by clause with ``espeak_TextToPhonemesWithTerminator`` (espeak-ng >= 1.52
development builds, which Piper links statically); each clause comes back with its terminator
(``.`` ``?`` ``!`` ``,`` ``:`` ``;`` or none) and whether it ends a sentence. Released espeak-ng
(Debian's 1.51, Homebrew's 1.52) exports only ``espeak_TextToPhonemes``, which makes the same
clauses but does not return the terminator. It does advance the text pointer past the clause
plus one look-ahead character, so the terminator is read back from the consumed text with
espeak-ng's own punctuation table (``readclause.c``): the last clause punctuation character of
the consumed text decides it, as it decides espeak-ng's clause type.

Versions: piper-tts 1.8.0 links espeak-ng 1.52.0.1 (development) and bundles its data. On 270
English sentences this module, on Debian's libespeak-ng 1.51, gives Piper's clauses, terminators
and sentence ends exactly; the phonemes differ in two ways. (1) Dictionary data: 1.51's en_dict
says "oːɹ" where 1.52's says "ɔːɹ" ("for", "more"); reading Piper's bundled data
(``data_path``) removes those. (2) The 1.52 library itself writes "ʲ" after /i/ before a vowel
("ðɪʲ ˈɑːɹmi", "θɹˈiːʲ ʌvðə") and once puts a secondary stress ("wˌʌn" for "One...") where
1.51 puts a primary: with the same data 1.51 does neither, so it comes from the code, not the
data. A model trained on Piper's phonemes hears a few such symbols differently; ids match exactly
when the same espeak-ng build is used (see tests/test_piper_tokenizer.py).

Clause = ``(phonemes, terminator, end_of_sentence)``; ``phonemes`` is espeak-ng's IPA string
(stress marks included, words separated by spaces).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

__all__ = ["EspeakError", "clauses", "clause_spans", "INSTALL_HINT"]

INSTALL_HINT = ("install espeak-ng (Debian/Ubuntu: `apt install espeak-ng`, macOS: "
                "`brew install espeak-ng`)")

_OUTPUT_SYNCHRONOUS = 0x0001  # ENOUTPUT_MODE_SYNCHRONOUS: no audio device is opened
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02

# espeak-ng's clause punctuation (readclause.c: punct_chars / punct_attributes), reduced to what
# Piper keeps: the terminator string ("" when the masked clause type is none of Piper's six) and
# whether the clause type has CLAUSE_TYPE_SENTENCE.
_PUNCTUATION = {
    ",": (",", False), ".": (".", True), "?": ("?", True), "!": ("!", True),
    ":": (":", False), ";": (";", False),
    "\u00a1": ("", False), "\u00bf": ("", False),  # inverted ! ?: optional space after
    "\u2013": (";", False), "\u2014": (";", False),  # en and em dash: semicolon clauses
    "\u2026": ("", False),  # ellipsis: a semicolon that speaks its name, optional space after
}
# Quotes and brackets after the mark do not change the clause type ("Yes." she said).
_OPENERS_CLOSERS = "\"'“”‘’«»()[]{}"


class EspeakError(RuntimeError):
    """libespeak-ng or its voice data is missing or refuses the voice."""


_LOCK = threading.Lock()
_STATE: dict = {"lib": None, "data": None, "voice": None}


def _library(data_path: str | None):
    if _STATE["lib"] is not None:
        if data_path != _STATE["data"]:
            raise EspeakError(f"libespeak-ng is already initialised with data {_STATE['data']!r}; "
                              f"it cannot switch to {data_path!r} within one process")
        return _STATE["lib"]
    names = [ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1", "libespeak-ng.dylib",
             "/opt/homebrew/lib/libespeak-ng.dylib", "/usr/local/lib/libespeak-ng.dylib"]
    lib = None
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise EspeakError(f"the espeak-ng library (libespeak-ng) is not installed: {INSTALL_HINT}")
    lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
    lib.espeak_ng_Initialize.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.espeak_ng_Initialize.restype = ctypes.c_int
    lib.espeak_ng_InitializeOutput.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
    lib.espeak_ng_InitializeOutput.restype = ctypes.c_int
    lib.espeak_ng_ClearErrorContext.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    # The espeak_ng_* calls, not espeak_Initialize: that one exits the process when the data
    # is missing; these return a status.
    lib.espeak_ng_InitializePath(data_path.encode() if data_path else None)
    context = ctypes.c_void_p()
    status = lib.espeak_ng_Initialize(ctypes.byref(context))
    if status != 0:
        lib.espeak_ng_ClearErrorContext(ctypes.byref(context))
        where = data_path or "the library's default location"
        raise EspeakError(f"espeak-ng found no usable voice data (espeak-ng-data) in {where} "
                          f"(status 0x{status & 0xFFFFFFFF:X}): {INSTALL_HINT}")
    if lib.espeak_ng_InitializeOutput(_OUTPUT_SYNCHRONOUS, 0, None) != 0:
        raise EspeakError("espeak-ng failed to initialise its (silent) output")
    _STATE.update(lib=lib, data=data_path)
    return lib


def _terminator(consumed: str, at_end: bool) -> tuple[str, bool]:
    """The clause type of a clause's text (without espeak-ng's look-ahead character)."""
    body = consumed.rstrip()
    if body != consumed and consumed[len(body):].count("\n") >= 2:
        return "", True  # a blank line: espeak-ng's paragraph clause
    while body and body[-1] in _OPENERS_CLOSERS:
        body = body[:-1].rstrip()
    run = len(body) - len(body.rstrip("".join(_PUNCTUATION)))
    tail = body[len(body) - run:]
    if not tail:
        return "", at_end  # the end of the text ends a sentence; a long clause cut at a space does not
    if tail.startswith(".."):
        return _PUNCTUATION["\u2026"]  # espeak-ng reads a run of dots as an ellipsis
    if set(tail) <= set(".!?"):
        return _PUNCTUATION[tail[0]]  # "?!" is a question: the first mark decides
    return _PUNCTUATION[tail[-1]]


def clause_spans(text: str, voice: str, data_path: str | None = None
                 ) -> list[tuple[str, str, bool, int, int]]:
    """espeak-ng's clauses of `text` for `voice` (e.g. "en-us"):
    ``[(ipa, terminator, ends_sentence, start, end)]``, ``text[start:end]`` being the clause's text.

    The end of the text ends a sentence unless the text ends in a clause mark (``,`` or an
    ellipsis), as espeak-ng reports it.
    """
    raw = text.encode("utf-8")
    char_at = [0] * (len(raw) + 1)  # byte offset -> character offset
    b = 0
    for k, ch in enumerate(text):
        n = len(ch.encode("utf-8"))
        char_at[b:b + n] = [k] * n
        b += n
    char_at[len(raw)] = len(text)
    out = []
    with _LOCK:
        lib = _library(data_path)
        if _STATE["voice"] != voice:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                _STATE["voice"] = None  # espeak-ng's current voice is now unknown: set it next time
                raise EspeakError(f"espeak-ng has no voice {voice!r}: install its data ({INSTALL_HINT})")
            _STATE["voice"] = voice
        buf = ctypes.create_string_buffer(raw)
        base = ctypes.addressof(buf)
        ptr = ctypes.c_void_p(base)
        start = 0  # espeak-ng's pointer overshoots by one character: the clause starts here
        while ptr.value:
            ipa = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
            ipa = (ipa or b"").decode("utf-8", "replace")
            if ptr.value:  # the pointer sits one character past the clause's end
                end = max(start, char_at[ptr.value - base] - 1)
                out.append((ipa, *_terminator(text[start:end], at_end=False), start, end))
                start = end
            else:
                out.append((ipa, *_terminator(text[start:], at_end=True), start, len(text)))
    return out


def clauses(text: str, voice: str, data_path: str | None = None) -> list[tuple[str, str, bool]]:
    """``[(ipa, terminator, ends_sentence)]``: Piper's ``espeakbridge.get_phonemes`` contract."""
    return [c[:3] for c in clause_spans(text, voice, data_path)]
