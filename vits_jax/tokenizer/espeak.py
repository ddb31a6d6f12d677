"""libespeak-ng through ctypes: text -> IPA clauses with their terminators, as Piper reads them.

Piper phonemizes clause by clause with ``espeak_TextToPhonemesWithTerminator`` (espeak-ng >= 1.52
development builds, which Piper links statically); each clause comes back with its terminator
(``.`` ``?`` ``!`` ``,`` ``:`` ``;`` or none) and whether it ends a sentence. Released espeak-ng
(Debian's 1.51, Homebrew's 1.52) exports only ``espeak_TextToPhonemes``, which makes the same
clauses but does not return the terminator. It does advance the text pointer past the clause
plus one look-ahead character, so the terminator is read back from the consumed text with
espeak-ng's own punctuation table (``readclause.c``): the last clause punctuation character of
the consumed text decides it, as it decides espeak-ng's clause type.

Which espeak-ng: the `espeakng-loader` package's libespeak-ng 1.52.0 and its data when it is
installed (``pip install 'vits-jax[piper]'``), else the system's library and data. piper-tts 1.8.0
links espeak-ng 1.52.0.1 (development) and bundles its data; with espeakng-loader this module gives
Piper's clauses, terminators, sentence ends and phonemes exactly on 272 English sentences and the
edge cases of tests/test_piper_tokenizer.py. One code difference is reproduced here: Piper's build
writes espeak-ng's linking phoneme ``;`` (after /i/ before a vowel: "ðɪʲ ˈɑːɹmi", "θɹˈiːʲ ʌvðə")
as "ʲ" (a prevPh condition that hides it in 1.52.0 is always false there, espeak-ng issue
#2367); espeak-ng 1.52.0 writes nothing, so each clause is read twice, as IPA and as phoneme
names, and an empty IPA slot named ``;`` becomes "ʲ". Other languages whose phoneme tables use
prevPh conditions may still differ from Piper. With Debian's libespeak-ng 1.51 the terminators
and sentence ends match, but its en dictionary differs ("oːɹ" where 1.52 says "ɔːɹ": "for",
"more"): ids equalled Piper's on 229 of the 272 sentences when measured.

Clause = ``(phonemes, terminator, end_of_sentence)``; ``phonemes`` is espeak-ng's IPA string
(stress marks included, words separated by spaces).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

__all__ = ["EspeakError", "clauses", "clause_spans", "bundled", "version", "INSTALL_HINT"]

INSTALL_HINT = ("install espeak-ng (`pip install espeakng-loader`, as Piper's; or Debian/Ubuntu: "
                "`apt install espeak-ng`, macOS: `brew install espeak-ng`)")

_OUTPUT_SYNCHRONOUS = 0x0001  # ENOUTPUT_MODE_SYNCHRONOUS: no audio device is opened
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_SEP = "\x1f"  # phoneme separator requested from espeak-ng (bits 8-23 of the phoneme mode)
_SEPARATOR = ord(_SEP)
_LINK = "\u02b2"  # ʲ: how Piper's espeak-ng writes the linking phoneme ";"

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
_STATE: dict = {"lib": None, "path": None, "data": None, "voice": None}
_SYSTEM_NAMES = ("libespeak-ng.so.1", "libespeak-ng.dylib", "/opt/homebrew/lib/libespeak-ng.dylib",
                 "/usr/local/lib/libespeak-ng.dylib")


def bundled() -> tuple[str, str] | None:
    """``(library, data folder)`` of the `espeakng-loader` package (espeak-ng 1.52 with its
    data, the ``piper`` extra), or None when it is not installed."""
    try:
        import espeakng_loader
    except ImportError:
        return None
    # the folder that holds espeak-ng-data: what espeak_ng_InitializePath takes on every version
    return espeakng_loader.get_library_path(), os.path.dirname(espeakng_loader.get_data_path())


_RTLD_NOW = 2
_NEW_NAMESPACE = -1  # LM_ID_NEWLM


def _private(path: str):
    """`path` loaded in a linker namespace of its own (glibc's dlmopen) where available.

    espeakng-loader's copy has the system library's soname (libespeak-ng.so.1): loaded plainly,
    it would answer every later dlopen of that name in this process (phonemizer's, for MMS
    voices), with its data folder missing there, and espeak-ng would exit the process."""
    try:
        dlmopen = ctypes.CDLL(None).dlmopen
    except (AttributeError, OSError):  # not glibc (macOS: no soname clash there)
        return ctypes.CDLL(path)
    dlmopen.restype = ctypes.c_void_p
    dlmopen.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_int]
    handle = dlmopen(_NEW_NAMESPACE, path.encode(), _RTLD_NOW)
    return ctypes.CDLL(path, handle=handle) if handle else ctypes.CDLL(path)


def _load(library: str | None):
    """``(CDLL, path)``: `library` if given, else espeakng-loader's, else the system's."""
    found = bundled()
    if found and library in (None, found[0]):
        try:
            return _private(found[0]), found[0]
        except OSError as e:
            raise EspeakError(f"espeakng-loader's libespeak-ng cannot be loaded ({e}): reinstall "
                              f"it, or {INSTALL_HINT}") from None
    names = [library] if library is not None else [ctypes.util.find_library("espeak-ng"), *_SYSTEM_NAMES]
    for name in names:
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError:
            continue
    raise EspeakError(f"the espeak-ng library (libespeak-ng) is not installed: {INSTALL_HINT}")


def _library(data_path: str | None, library: str | None = None):
    """The initialised library. One library and one data folder per process: libespeak-ng keeps
    them in globals. Defaults: espeakng-loader's library and data when installed (espeak-ng 1.52,
    as Piper), else the system's library and its own data."""
    if data_path is None and library is None and (found := bundled()) is not None:
        library, data_path = found
    if _STATE["lib"] is not None:
        if data_path != _STATE["data"] or library not in (None, _STATE["path"]):
            raise EspeakError(f"libespeak-ng is already initialised from {_STATE['path']!r} with data "
                              f"{_STATE['data']!r}; it cannot switch to {library or 'another library'!r} "
                              f"with data {data_path!r} within one process")
        return _STATE["lib"]
    lib, path = _load(library)
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
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
    _STATE.update(lib=lib, path=path, data=data_path)
    return lib


def version() -> str:
    """The version of the libespeak-ng in use (e.g. ``"1.52.0"``); the default one if none is yet."""
    with _LOCK:
        lib = _STATE["lib"] or _library(None)
        return lib.espeak_Info(None).decode()


def _terminator(consumed: str, at_end: bool) -> tuple[str, bool]:
    """The clause type of a clause's text (without espeak-ng's look-ahead character)."""
    body = consumed.rstrip()
    if body != consumed and consumed[len(body):].count("\n") >= 2:
        return "", True  # a blank line: espeak-ng's paragraph clause
    while body and body[-1] in _OPENERS_CLOSERS:
        body = body[:-1].rstrip()
    if not any(ch.isalnum() for ch in body):
        body = body.replace(".", " ").rstrip()  # readclause.c: a dot before any letter or digit is a space
    run = len(body) - len(body.rstrip("".join(_PUNCTUATION)))
    tail = body[len(body) - run:]
    if not tail:
        return "", at_end  # the end of the text ends a sentence; a long clause cut at a space does not
    if tail.startswith(".."):
        return _PUNCTUATION["\u2026"]  # espeak-ng reads a run of dots as an ellipsis
    if set(tail) <= set(".!?"):
        return _PUNCTUATION[tail[0]]  # "?!" is a question: the first mark decides
    return _PUNCTUATION[tail[-1]]


def _pass(lib, raw: bytes, mode: int) -> list[tuple[str, int | None]]:
    """One pass of espeak_TextToPhonemes over `raw`: ``[(phonemes, byte offset after or None)]``."""
    buf = ctypes.create_string_buffer(raw)
    base = ctypes.addressof(buf)
    ptr = ctypes.c_void_p(base)
    out = []
    while ptr.value:
        phonemes = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
        out.append(((phonemes or b"").decode("utf-8", "replace"), ptr.value - base if ptr.value else None))
    return out


def _link(ipa: str, names: str) -> str:
    """The IPA of one clause, given with phoneme separators, without them; espeak-ng's linking
    phoneme ``;`` written as "ʲ" (see the module docstring). `names` is the same clause as
    phoneme names: the two align slot by slot."""
    ipa_words, name_words = ipa.split(" "), names.split(" ")
    if len(ipa_words) != len(name_words):
        return ipa.replace(_SEP, "")
    words = []
    for ipa_word, name_word in zip(ipa_words, name_words):
        slots, name_slots = ipa_word.split(_SEP), name_word.split(_SEP)
        if len(slots) == len(name_slots):
            slots = [_LINK if not s and n == ";" else s for s, n in zip(slots, name_slots)]
        words.append("".join(slots))
    return " ".join(words)


def clause_spans(text: str, voice: str, data_path: str | None = None, library: str | None = None
                 ) -> list[tuple[str, str, bool, int, int]]:
    """espeak-ng's clauses of `text` for `voice` (e.g. "en-us"):
    ``[(ipa, terminator, ends_sentence, start, end)]``, ``text[start:end]`` being the clause's text.

    The end of the text ends a sentence unless the text ends in a clause mark (``,`` or an
    ellipsis), as espeak-ng reports it. `data_path` (the folder holding ``espeak-ng-data``) and
    `library` (a libespeak-ng file or name) default as `_library` says.
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
        lib = _library(data_path, library)
        if _STATE["voice"] != voice:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                _STATE["voice"] = None  # espeak-ng's current voice is now unknown: set it next time
                raise EspeakError(f"espeak-ng has no voice {voice!r}: install its data ({INSTALL_HINT})")
            _STATE["voice"] = voice
        ipa_pass = _pass(lib, raw, _PHONEMES_IPA | _SEPARATOR << 8)
        names_pass = _pass(lib, raw, _SEPARATOR << 8)  # phoneme names: shows the linking ";"
    if [o for _, o in names_pass] != [o for _, o in ipa_pass]:  # not expected: then no names
        names_pass = [("", o) for _, o in ipa_pass]
    start = 0  # espeak-ng's pointer overshoots by one character: the clause starts here
    for (ipa, offset), (names, _) in zip(ipa_pass, names_pass):
        ipa = _link(ipa, names)
        if offset is not None:  # the pointer sits one character past the clause's end
            end = max(start, char_at[offset] - 1)
            out.append((ipa, *_terminator(text[start:end], at_end=False), start, end))
            start = end
        else:
            out.append((ipa, *_terminator(text[start:], at_end=True), start, len(text)))
    return out


def clauses(text: str, voice: str, data_path: str | None = None, library: str | None = None
            ) -> list[tuple[str, str, bool]]:
    """``[(ipa, terminator, ends_sentence)]``: Piper's ``espeakbridge.get_phonemes`` contract."""
    return [c[:3] for c in clause_spans(text, voice, data_path, library)]
