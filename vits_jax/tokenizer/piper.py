"""Piper voices' tokenizer: text -> espeak-ng IPA -> ids through the voice's ``phoneme_id_map``.

Piper (rhasspy/piper1-gpl) phonemizes text clause by clause with espeak-ng, appends each
clause's terminator (``. ? ! , : ;``; a space after ``, : ;``), removes language-switch flags
such as ``(fr)``, splits the result into Unicode NFD code points and groups clauses into
sentences at sentence-ending clauses. A sentence's ids are ``^ _ p1 _ p2 _ ... pn _ $`` (BOS,
the pad after every phoneme, EOS), each phoneme mapped through ``phoneme_id_map`` (a phoneme may
map to several ids); phonemes missing from the map are dropped (and reported here).

Multi-sentence text: `phonemize` and `encode_sentences` give Piper's sentences one by one (what
Piper synthesizes); `encode` joins them, with a space phoneme between, into one sequence, so a
single-sentence text gets exactly Piper's ids. `split_sentences` returns the text of Piper's
sentences, for callers that synthesize sentence by sentence.

Shapes: ``encode(text)`` is ``2 * n_phonemes + 3`` ids.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Callable, Iterable, Mapping, Sequence

from .sentences import DEFAULT_MAX_TOKENS, split_long
from . import espeak
from .base import TokenizerBase, preview
from .normalize import ON_UNKNOWN, report

__all__ = ["PiperTokenizer"]

PAD, BOS, EOS = "_", "^", "$"
_LANGUAGE_FLAG = re.compile(r"\([^)]+\)")
_RAW_BLOCK = re.compile(r"(\[\[.*?\]\])")
_PHONEME_TYPES = ("espeak", "text")

Clauses = Callable[[str, str], Sequence[tuple]]


class PiperTokenizer(TokenizerBase):
    """Tokenizer of a Piper voice (its ``.onnx.json``); same call contract as `Tokenizer`.

    Args:
        phoneme_id_map: phoneme -> list of ids (the config's ``phoneme_id_map``).
        espeak_voice: espeak-ng voice (the config's ``espeak.voice``, e.g. ``"en-us"``).
        phoneme_type: ``"espeak"`` or ``"text"`` (code points as phonemes); Piper's other
            types (pinyin, ...) are refused with a ValueError.
        vowel_clusters: phoneme sequences merged into one phoneme (the config's
            ``vowel_clusters``), as Piper merges them.
        num_symbols: the model's embedding size (``vocab_size``).
        on_unknown: phonemes missing from the map: ``"warn"`` (default), ``"error"``, ``"ignore"``.
        espeak_data: folder holding ``espeak-ng-data``; espeak_library: a libespeak-ng file or
            name. Default: the `espeakng-loader` package's espeak-ng 1.52 and its data when
            installed (the ``piper`` extra; Piper's ids exactly on English, as tested), else the
            system's libespeak-ng and data (Debian's 1.51 differs from Piper on some words).
        clauses: ``(text, voice) -> [(ipa, terminator, ends_sentence, ...)]``; defaults to
            libespeak-ng (`vits_jax.tokenizer.espeak`). Tests pass Piper's own to compare.
        expand_numbers, fold_diacritics: accepted so callers need not branch on the tokenizer
            kind; espeak-ng already speaks numbers and accented letters, so they change nothing.
    """

    kind = "piper"   # describe()["kind"]; vits_jax.synth.speech.is_piper_voice reads it

    def __init__(self, phoneme_id_map: Mapping[str, Sequence[int] | int], *, espeak_voice: str = "en-us",
                 phoneme_type: str = "espeak", vowel_clusters: Iterable[Sequence[str]] | None = None,
                 num_symbols: int | None = None, language: str | None = None, on_unknown: str = "warn",
                 espeak_data: str | None = None, espeak_library: str | None = None, clauses: Clauses | None = None,
                 config: Mapping[str, Any] | None = None, expand_numbers: bool = False,
                 fold_diacritics: bool = False) -> None:
        if on_unknown not in ON_UNKNOWN:
            raise ValueError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
        if phoneme_type not in _PHONEME_TYPES:
            raise ValueError(f"Piper phoneme_type {phoneme_type!r} is not supported (supported: "
                             f"{', '.join(_PHONEME_TYPES)})")
        self.id_map = {str(k): [int(v)] if isinstance(v, int) else [int(i) for i in v]
                       for k, v in phoneme_id_map.items()}
        for symbol in (PAD, BOS, EOS):
            if not self.id_map.get(symbol):
                raise ValueError(f"phoneme_id_map has no {symbol!r} entry")
        self.espeak_voice = espeak_voice
        self.phoneme_type = phoneme_type
        self.vowel_clusters = {tuple(c) for c in vowel_clusters or ()}
        self.language = language
        self.on_unknown = on_unknown
        self.espeak_data = espeak_data
        self.espeak_library = espeak_library
        self._clauses = clauses
        self.config = dict(config or {})
        self.pad_token, self.pad_token_id = PAD, self.id_map[PAD][0]
        self.vocab = {k: v[0] for k, v in self.id_map.items()}  # symbol -> (first) id
        self.add_blank = False
        max_id = max(i for ids in self.id_map.values() for i in ids)
        self._num_symbols = int(num_symbols) if num_symbols else max_id + 1
        self._decode = {tuple(v): k for k, v in self.id_map.items()}

    @classmethod
    def load(cls, path: str, **overrides: Any) -> "PiperTokenizer":
        """From a Piper voice's ``.onnx.json`` (or a converted folder's ``piper.json``)."""
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(config, dict) or "phoneme_id_map" not in config:
            raise ValueError(f"{path} has no phoneme_id_map: not a Piper voice config")
        language = config.get("language")
        kwargs: dict[str, Any] = dict(
            espeak_voice=(config.get("espeak") or {}).get("voice", "en-us"),
            phoneme_type=config.get("phoneme_type", "espeak"),
            vowel_clusters=config.get("vowel_clusters"),
            num_symbols=config.get("num_symbols"),
            language=language.get("code") if isinstance(language, dict) else language,
            config=config)
        kwargs.update(overrides)
        return cls(config["phoneme_id_map"], **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return self._num_symbols

    @property
    def padding_id(self) -> int:
        return self.pad_token_id

    def describe(self) -> dict:
        """Settings worth showing (``vits-jax info``), JSON-serializable."""
        return {"kind": self.kind, "espeak_voice": self.espeak_voice, "phoneme_type": self.phoneme_type,
                "language": self.language, "pad_token": self.pad_token, "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return (f"PiperTokenizer(vocab_size={self.vocab_size}, espeak_voice={self.espeak_voice!r}, "
                f"phoneme_type={self.phoneme_type!r})")

    # ------------------------------------------------------------------ front-end
    def _clause_list(self, text: str) -> list[tuple]:
        if self._clauses is not None:
            return list(self._clauses(text, self.espeak_voice))
        try:
            return espeak.clause_spans(text, self.espeak_voice, self.espeak_data, self.espeak_library)
        except espeak.EspeakError as e:
            raise RuntimeError(f"Piper voices need espeak-ng: {e}") from None

    def _sentences(self, text: str, keep_empty: bool = False) -> list[tuple[list[str], int, int]]:
        """Piper's sentences of phonemes, each with its text span (when the backend gives one).
        An empty last sentence is dropped unless `keep_empty` (Piper drops it after splicing
        raw ``[[ ]]`` blocks)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.phoneme_type == "text":
            return [(list(unicodedata.normalize("NFD", text)), 0, len(text))]
        sentences: list[tuple[list[str], int, int]] = []
        current: list[str] = []
        start = None
        end = 0
        for clause in self._clause_list(text):
            ipa, terminator, ends = clause[:3]
            if start is None:
                start = clause[3] if len(clause) > 3 else 0
            end = clause[4] if len(clause) > 4 else len(text)
            ipa = _LANGUAGE_FLAG.sub("", ipa) + terminator
            if terminator in (",", ":", ";"):
                ipa += " "  # a clause break inside a sentence
            current.extend(unicodedata.normalize("NFD", ipa))
            if ends:
                sentences.append((self._merge_clusters(current), start, end))
                current, start = [], None
        if current:
            sentences.append((self._merge_clusters(current), start or 0, end))
        if sentences and not sentences[-1][0] and not keep_empty:
            sentences.pop()
        return sentences

    def _merge_clusters(self, phonemes: list[str]) -> list[str]:
        if not self.vowel_clusters:
            return phonemes
        longest = max(len(c) for c in self.vowel_clusters)
        out, i = [], 0
        while i < len(phonemes):
            for n in range(min(longest, len(phonemes) - i), 1, -1):
                if tuple(phonemes[i:i + n]) in self.vowel_clusters:
                    out.append("".join(phonemes[i:i + n]))
                    i += n
                    break
            else:
                out.append(phonemes[i])
                i += 1
        return out

    def phonemize(self, text: str) -> list[list[str]]:
        """Piper's ``PiperVoice.phonemize``: a list of sentences, each a list of phonemes.

        As in Piper, ``[[ ... ]]`` holds raw phonemes (one per code point), spliced into the
        current sentence, with a space phoneme where the text has one around the block."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.phoneme_type != "espeak" or "[[" not in text:
            return [s for s, _, _ in self._sentences(text)]
        sentences: list[list[str]] = []
        parts = _RAW_BLOCK.split(text)
        after_raw = False
        for i, part in enumerate(parts):
            if part.startswith("[["):
                if not sentences:
                    sentences.append([])
                if i > 0 and parts[i - 1].endswith(" "):
                    sentences[-1].append(" ")
                sentences[-1].extend(part[2:-2].strip())
                if i < len(parts) - 1 and parts[i + 1].startswith(" "):
                    sentences[-1].append(" ")
                after_raw = True
                continue
            found = [s for s, _, _ in self._sentences(part, keep_empty=True)]
            if after_raw and found:
                sentences[-1].extend(found.pop(0))
            sentences.extend(found)
            after_raw = False
        if sentences and not sentences[-1]:
            sentences.pop()
        return sentences

    # ------------------------------------------------------------------ ids
    def phonemes_to_ids(self, phonemes: Sequence[str], *, text: str | None = None) -> list[int]:
        """``^ _ p1 _ ... pn _ $`` through the id map; unknown phonemes dropped and reported."""
        ids = list(self.id_map[BOS]) + self.id_map[PAD]
        missing: dict[str, None] = {}
        for p in phonemes:
            if p not in self.id_map:
                missing[p] = None
                continue
            ids += self.id_map[p] + self.id_map[PAD]
        ids += self.id_map[EOS]
        report(missing, text if text is not None else "".join(phonemes), self.on_unknown,
               what="phoneme_id_map")
        return ids

    def _phonemes(self, text: str) -> list[str]:
        sentences = self.phonemize(text)
        if not sentences:
            raise ValueError(f"text {preview(text)} gives no phonemes (nothing espeak-ng can speak)")
        joined: list[str] = []
        for k, s in enumerate(sentences):
            if k:
                joined.append(" ")
            joined.extend(s)
        return joined

    def tokenize(self, text: str) -> list[str]:
        """The phoneme symbols behind `encode`'s ids, BOS / pads / EOS included."""
        out = [BOS, PAD]
        for p in self._phonemes(text):
            if p in self.id_map:
                out += [p] * len(self.id_map[p]) + [PAD]
        return out + [EOS]

    def encode(self, text: str) -> list[int]:
        """Ids of `text`; Piper's ids for a one-sentence text, sentences joined by a space
        phoneme otherwise (see the module docstring)."""
        return self.phonemes_to_ids(self._phonemes(text), text=text)

    def encode_sentences(self, text: str) -> list[list[int]]:
        """Piper's ids sentence by sentence: ``[phonemes_to_ids(s) for s in phonemize(text)]``."""
        return [self.phonemes_to_ids(s, text=text) for s in self.phonemize(text)]

    def split_sentences(self, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
        """The text of each of Piper's sentences, a sentence longer than `max_tokens` ids cut
        further at clause marks and spaces (`vits_jax.tokenizer.sentences.split_long`)."""
        out: list[str] = []
        for phonemes, start, end in self._sentences(text):
            piece = " ".join(text[start:end].split())
            if not piece:
                continue
            if 2 * len(phonemes) + 3 <= max_tokens:
                out.append(piece)
            else:
                out.extend(split_long(piece, max_tokens, count=lambda s: len(self.tokenize(s))))
        return out

    def encode_pieces(self, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[tuple[str, list[int]]]:
        """Piper's sentences with their ids from ONE espeak-ng pass over the whole text, as Piper
        synthesizes them (`split_sentences`' pieces; only a sentence longer than `max_tokens`
        is cut and its parts phonemized again). Sentences without phonemes are dropped."""
        if self.phoneme_type == "espeak" and "[[" in text:      # raw phoneme blocks: piece by piece
            return super().encode_pieces(text, max_tokens)
        out: list[tuple[str, list[int]]] = []
        for phonemes, start, end in self._sentences(text):
            piece = " ".join(text[start:end].split())
            if not piece or not phonemes:
                continue
            if 2 * len(phonemes) + 3 <= max_tokens:
                out.append((piece, self.phonemes_to_ids(phonemes, text=piece)))
            else:
                out.extend(super().encode_pieces(piece, max_tokens))
        return out

    def encode_words(self, text: str) -> tuple[list[int], list[tuple[str, int, int]]]:
        """``(ids, [(word, first, end)])``; see `TokenizerBase.encode_words`.

        espeak-ng's words are the space-separated runs of the phonemes. Each text word is
        phonemized alone and takes the next espeak word(s) in order; when an espeak word starts
        with a text word's phonemes but is longer (espeak-ng joins some words, e.g. "of the" ->
        "ʌvðə"), the words it joined share its span."""
        phonemes = self._phonemes(text)
        ids = self.encode(text)
        # phoneme index -> token index (BOS, pad, then one symbol + pad per mapped phoneme)
        token_at, t = [], 2
        for p in phonemes:
            token_at.append(t)
            if p in self.id_map:
                t += len(self.id_map[p]) + 1
        groups: list[tuple[int, int]] = []  # phoneme index ranges of espeak words
        k = 0
        while k < len(phonemes):
            if phonemes[k] == " ":
                k += 1
                continue
            j = k
            while j < len(phonemes) and phonemes[j] != " ":
                j += 1
            groups.append((k, j))
            k = j
        def key(chars) -> str:  # what identifies a word: its segments, without stress or punctuation
            return "".join(c for c in chars if c not in "ˈˌ " and not unicodedata.category(c).startswith("P"))

        keys = [key(phonemes[lo:hi]) for lo, hi in groups]
        spans = []
        g, rest, cursor = 0, None, 2
        for word in text.split():
            alone = [key(w) for s in self.phonemize(word) for w in "".join(s).split()]
            taken = []
            for k in filter(None, alone):
                if g >= len(groups):
                    break
                current = keys[g] if rest is None else rest
                taken.append(g)
                if current != k and current.startswith(k):
                    rest = current[len(k):]  # espeak-ng joined this word with the next
                else:
                    rest, g = None, g + 1
            if taken:
                first, end = token_at[groups[taken[0]][0]], token_at[groups[taken[-1]][1] - 1] + 1
                spans.append((word, first, end))
                cursor = end
            else:
                spans.append((word, cursor, cursor))
        return ids, spans

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to phonemes, BOS / pad / EOS removed (single-id phonemes only)."""
        out = []
        for idx in ids:
            symbol = self._decode.get((int(idx),))
            if symbol is None:
                raise ValueError(f"id {int(idx)} is not in the phoneme_id_map")
            if symbol not in (PAD, BOS, EOS):
                out.append(symbol)
        return "".join(out)
