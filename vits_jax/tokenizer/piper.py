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

import bisect
import json
import re
import unicodedata
from typing import Any, Callable, Iterable, Mapping, Sequence

from .sentences import DEFAULT_MAX_TOKENS, split_long
from . import espeak
from .base import TokenizerBase, preview
from .normalize import ON_UNKNOWN, report

__all__ = ["PiperTokenizer"]


def _segment(c: str) -> bool:
    """A code point that identifies a word's sound: not a space, stress mark or punctuation."""
    return c not in "ˈˌ " and not unicodedata.category(c).startswith("P")


def _align(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of a minimal edit-distance alignment of `a` to `b` (matches and
    substitutions), in order. Cost O(len(a) * len(b)); callers pass a piece's phonemes."""
    n, m = len(a), len(b)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, up, ai = cost[i], cost[i - 1], a[i - 1]
        row[0] = i
        for j in range(1, m + 1):
            row[j] = min(up[j - 1] + (ai != b[j - 1]), up[j] + 1, row[j - 1] + 1)
    pairs, i, j = [], n, m
    while i and j:
        if cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]

PAD, BOS, EOS = "_", "^", "$"
_LANGUAGE_FLAG = re.compile(r"\([^)]+\)")
_RAW_BLOCK = re.compile(r"(\[\[.*?\]\])")
_PIECES_KEPT = 256
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
        # piece text -> its phonemes from encode_pieces' pass, so encode_words (timings, after
        # synthesis) reads the phonemes the speech was made from instead of running espeak-ng
        # again. Bounded: the most recent _PIECES_KEPT pieces.
        self._pieces: dict[str, list[str]] = {}

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

    def _sentence_texts(self, text: str) -> list[tuple[list[str], str]]:
        """Piper's sentences as (phonemes, text, whitespace normalized). A sentence with no
        phonemes (a closing quotation mark or bracket espeak-ng reads as a clause of its own)
        joins the sentence before it, so the text keeps its punctuation: '... report."'."""
        out: list[tuple[list[str], str]] = []
        lead = ""
        for phonemes, start, end in self._sentences(text, keep_empty=True):
            piece = " ".join(text[start:end].split())
            if not piece:
                continue
            if not phonemes:
                if out:
                    out[-1] = (out[-1][0], out[-1][1] + piece)
                else:
                    lead += piece
                continue
            out.append((phonemes, lead + piece))
            lead = ""
        return out

    def split_sentences(self, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
        """The text of each of Piper's sentences, a sentence longer than `max_tokens` ids cut
        further at clause marks, then between phrases (`vits_jax.tokenizer.sentences.split_long`)."""
        out: list[str] = []
        for phonemes, piece in self._sentence_texts(text):
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
        for phonemes, piece in self._sentence_texts(text):
            if 2 * len(phonemes) + 3 <= max_tokens:
                out.append((piece, self.phonemes_to_ids(phonemes, text=piece)))
                self._keep_piece(piece, phonemes)
            else:
                out.extend(super().encode_pieces(piece, max_tokens))
        return out

    def _keep_piece(self, piece: str, phonemes: list[str]) -> None:
        self._pieces.pop(piece, None)
        self._pieces[piece] = phonemes
        while len(self._pieces) > _PIECES_KEPT:
            self._pieces.pop(next(iter(self._pieces)))

    def _words_alone(self, words: Sequence[str]) -> list[list[str]]:
        """Each word's phonemes as if phonemized alone (`phonemize(word)`, sentences joined),
        from ONE espeak-ng pass: a blank line between words makes each its own clause(s),
        attributed back by their text offsets."""
        if self.phoneme_type != "espeak" or self._clauses is not None or any("[[" in w for w in words):
            return [[p for s in self.phonemize(w) for p in s] for w in words]
        joined = "\n\n".join(words)
        starts, position = [], 0
        for word in words:
            starts.append(position)
            position += len(word) + 2
        found: list[list[str]] = [[] for _ in words]
        for ipa, terminator, _, start, _ in self._clause_list(joined):
            found[bisect.bisect_right(starts, start) - 1].extend(
                unicodedata.normalize("NFD", _LANGUAGE_FLAG.sub("", ipa) + terminator))
        return found

    def encode_words(self, text: str) -> tuple[list[int], list[tuple[str, int, int]]]:
        """``(ids, [(word, first, end)])``; see `TokenizerBase.encode_words`.

        espeak-ng speaks words in context (weak forms: "had been" -> "hɐdbɪn", joined words:
        "of the" -> "ʌvðə"), so a text word's phonemes are found by aligning, segment by segment
        (stress and punctuation aside), each word phonemized alone against the text's phonemes
        (`_align`, an edit-distance alignment). A word takes the phonemes aligned to it; the
        phonemes between two words of one espeak word go to the later word, an espeak word's
        trailing punctuation to its last word. A word with no phoneme of its own (e.g. a lone
        dash) gets an empty span where it stands.

        A piece `encode_pieces` made keeps its phonemes: its words are then found with one
        espeak-ng pass (the words alone), the piece itself is not phonemized again."""
        phonemes = self._pieces.get(text) or self._phonemes(text)
        ids = self.phonemes_to_ids(phonemes, text=text)
        # phoneme index -> token index (BOS, pad, then one symbol + pad per mapped phoneme)
        token_at, t = [], 2
        for p in phonemes:
            token_at.append(t)
            if p in self.id_map:
                t += len(self.id_map[p]) + 1
        group_of, group_end, g = [], {}, -1    # espeak word (space-separated run) of each phoneme
        for k, p in enumerate(phonemes):
            if p == " ":
                group_of.append(-1)
                continue
            if k == 0 or phonemes[k - 1] == " ":
                g += 1
            group_of.append(g)
            group_end[g] = k + 1
        context = [(c, k) for k, p in enumerate(phonemes) for c in p if _segment(c)]
        words = text.split()
        alone = [(c, w) for w, word_phonemes in enumerate(self._words_alone(words))
                 for p in word_phonemes for c in p if _segment(c)]
        found: list[list[int]] = [[] for _ in words]            # phoneme indices of each word
        for a, b in _align([c for c, _ in alone], [c for c, _ in context]):
            found[alone[a][1]].append(context[b][1])
        ranges: list[list[int] | None] = [[min(f), max(f) + 1] if f else None for f in found]
        ranged = [w for w, r in enumerate(ranges) if r]
        for w, nxt in zip(ranged, ranged[1:] + [None]):
            lo, hi = ranges[w]
            if nxt is not None and group_of[ranges[nxt][0]] == group_of[hi - 1]:
                ranges[w][1] = ranges[nxt][0]               # up to the next word in the same espeak word
            else:
                ranges[w][1] = group_end[group_of[hi - 1]]  # its espeak word's end (punctuation)
        for w, prev in zip(ranged, [None] + ranged[:-1]):
            lo = ranges[w][0]
            if prev is None or group_of[ranges[prev][1] - 1] != group_of[lo]:
                while lo > 0 and phonemes[lo - 1] != " ":   # from its espeak word's start
                    lo -= 1
                ranges[w][0] = lo
        spans, cursor = [], 2
        for word, r in zip(words, ranges):
            if r is None:
                spans.append((word, cursor, cursor))
                continue
            last = r[1] - 1
            first, end = token_at[r[0]], token_at[last] + len(self.id_map.get(phonemes[last], ()))
            spans.append((word, first, max(first, end)))
            cursor = max(first, end)
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
