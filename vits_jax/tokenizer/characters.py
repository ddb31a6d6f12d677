"""Character tokenizer for VITS / MMS-TTS checkpoints (`Tokenizer`).

`Tokenizer` reads the same files as transformers' `VitsTokenizer` (``vocab.json``,
``tokenizer_config.json``, optionally ``special_tokens_map.json`` / ``added_tokens.json``) and
produces the same ids: casing normalization that keeps vocabulary entries verbatim, removal of
characters missing from the vocabulary, optional `uroman` romanization and `phonemizer`/espeak-ng
phonemization, splitting on added/special tokens, and interleaving of the blank token (the token
with id 0) when ``add_blank`` is set.

Shapes: ``tok.encode(text)`` returns a ``list[int]`` of length ``2 * n_chars + 1`` with
``add_blank`` (``n_chars`` otherwise), where ``n_chars`` counts the prepared text's characters;
an added token such as MMS' pad token ``"k"`` gets no blanks of its own, as in transformers
(``"kk"`` -> ``[0, 0]``). ``tok(texts)`` returns ``(ids, mask)``, two ``int32`` arrays of shape
``(batch, max_len)``, right-padded.

Deliberate differences from transformers (where transformers fails silently):

* Text that tokenizes to nothing (``""``, ``"!!!"``, text made only of characters missing from the
  vocabulary) raises ``ValueError``; transformers returns an empty id list.
* A token that would map to an id outside ``vocab.json`` raises ``ValueError`` naming it (with
  ``normalize=False`` or ``phonemize=True`` an unknown character maps to ``unk_token``, whose id
  is usually ``len(vocab)``, i.e. past the embedding table). ``unknown="unk"`` restores
  transformers' ids.
* An empty batch raises ``ValueError``; ``is_uroman`` without the `uroman` package raises
  ``ImportError`` (transformers logs a warning and drops the non-Latin characters).
* `uroman.Uroman()` (about 3 s to build) is created once per process rather than once per call.

Additions (off by default, so transformers' ids stay the default): ``expand_numbers`` speaks
numbers, times, currency and years with `num2words` in the config's language; ``fold_diacritics``
replaces a letter the vocabulary lacks by its base letter. Characters dropped by the vocabulary
filter are reported (``on_unknown``: ``"warn"`` by default, ``"error"``, ``"ignore"``).

The text passes through front-ends (str -> str: numbers, casing, uroman, phonemizer or the
vocabulary filter), then the id mapping (`Vocabulary`). Only Python and numpy are needed;
`uroman`, `phonemizer` and `num2words` are imported lazily when asked for.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from .sentences import DEFAULT_MAX_TOKENS, split_text
from .base import TokenizerBase, preview, spans_from_positions
from .normalize import ON_UNKNOWN, filter_vocabulary, lowercase_keeping, report
from .numbers import expand_numbers as _expand_numbers, number_language
from .phonemize import phonemize as _phonemize
from .piper import PiperTokenizer
from .romanize import romanize
from ..voice.hub import resolve
from ..voice.sources import tokenizer_location
from .vocabulary import SPECIAL_TOKEN_KEYS, Vocabulary, token_content

__all__ = ["Tokenizer"]

_UNKNOWN_MODES = ("error", "unk")


class Tokenizer(TokenizerBase):
    """VITS / MMS-TTS tokenizer, id-for-id compatible with transformers' `VitsTokenizer`.

    Args:
        vocab: token -> id mapping (the content of ``vocab.json``; its order matters for
            normalization, as in transformers).
        pad_token, unk_token: special tokens. Missing from ``vocab`` they get new ids after the
            vocabulary (transformers' rule), e.g. MMS' ``"<unk>"`` gets ``len(vocab)``.
        language: the config's language code. ``"ron"`` changes tokenization (``ț`` -> ``ţ``); it
            picks num2words' language for ``expand_numbers``; it is *not* the phonemizer language
            (see ``phonemizer_language``).
        add_blank: interleave the blank token (the vocabulary token with id 0, which is the pad
            token of the released checkpoints) around every character.
        normalize: lowercase the text (keeping vocabulary entries verbatim), then drop every
            character missing from the vocabulary and strip surrounding whitespace. With
            ``phonemize`` only the lowercasing applies.
        phonemize: convert the text to IPA with `phonemizer` + espeak-ng.
        is_uroman: romanize with the `uroman` Python package (>= 1.3), as transformers does:
            ``uroman.Uroman().romanize_string(text)`` (no language code), applied after the
            lowercasing and only when the text contains a non-ASCII character; no perl needed.
        special_tokens: other special tokens (``bos_token``, ``eos_token``, ``sep_token``,
            ``cls_token``, ``mask_token``) -> content; they behave like added tokens.
        added_tokens: ``id -> {"content", "lstrip", "rstrip", "single_word"}`` (the
            ``added_tokens_decoder`` of ``tokenizer_config.json``).
        phonemizer_language: espeak language. transformers always phonemizes with ``"en-us"``
            whatever the config says (MMS configs hold ISO 639-3 codes such as ``"eng"``, which
            espeak does not know), so that is the default.
        unknown: ``"error"`` (default) raises ``ValueError`` for any token whose id is not in
            ``vocab``; ``"unk"`` emits ``unk_token``'s id as transformers does.
        on_unknown: characters the vocabulary filter drops (or replaces): ``"warn"`` (default,
            `warnings.warn` naming them), ``"error"`` (`UnknownCharactersError`, a ValueError)
            or ``"ignore"`` (transformers' silence).
        expand_numbers: spell out numbers, ordinals, times, currency amounts and years with
            `num2words` in ``language``'s language before anything else (left as digits, hence
            dropped and reported, when num2words lacks the language).
        fold_diacritics: a letter missing from the vocabulary becomes its base letter(s) (NFD
            without combining marks) when those are in it; reported like a dropped character.

    The constructor defaults are transformers' (note ``phonemize=True``); `Tokenizer.load` reads
    them from a checkpoint folder.
    """

    kind = "vits"   # describe()["kind"]; vits_jax.synth.speech.is_piper_voice reads it

    def __init__(
        self,
        vocab: Mapping[str, int],
        *,
        pad_token: str | None = "<pad>",
        unk_token: str | None = "<unk>",
        language: str | None = None,
        add_blank: bool = True,
        normalize: bool = True,
        phonemize: bool = True,
        is_uroman: bool = False,
        special_tokens: Mapping[str, str | None] | None = None,
        added_tokens: Mapping[int, Mapping[str, Any] | str] | None = None,
        phonemizer_language: str = "en-us",
        unknown: str = "error",
        on_unknown: str = "warn",
        expand_numbers: bool = False,
        fold_diacritics: bool = False,
    ) -> None:
        if unknown not in _UNKNOWN_MODES:
            raise ValueError(f"unknown must be one of {_UNKNOWN_MODES}, got {unknown!r}")
        if on_unknown not in ON_UNKNOWN:
            raise ValueError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
        self.vocabulary = Vocabulary(vocab, pad_token=pad_token, unk_token=unk_token,
                                     special_tokens=special_tokens, added_tokens=added_tokens,
                                     add_blank=add_blank)
        v = self.vocabulary
        self.vocab = v.vocab
        self.pad_token, self.unk_token, self.special_tokens = v.pad_token, v.unk_token, v.special_tokens
        self.pad_token_id, self.unk_token_id, self.blank_id = v.pad_token_id, v.unk_token_id, v.blank_id
        self.language = language
        self.add_blank = v.add_blank
        self.normalize = bool(normalize)
        self.phonemize = bool(phonemize)
        self.is_uroman = bool(is_uroman)
        self.phonemizer_language = phonemizer_language
        self.unknown = unknown
        self.on_unknown = on_unknown
        self.expand_numbers = bool(expand_numbers)
        self.fold_diacritics = bool(fold_diacritics)
        self.number_language = number_language(language) if self.expand_numbers else None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike, **overrides: Any) -> "TokenizerBase":
        """Load a voice's tokenizer: a checkpoint folder holding ``vocab.json`` (+
        ``tokenizer_config.json``), a hub id (``vits_jax.voice.hub.resolve``), or a Piper voice (a
        ``voice.onnx`` with its ``.onnx.json``, the ``.onnx.json`` itself, a folder holding one
        ``*.onnx.json``, or a converted folder holding ``piper.json``), which gives a
        `PiperTokenizer`.

        ``overrides`` replace config values / constructor arguments (``normalize=False``,
        ``phonemizer_language="fr-fr"``, ``unknown="unk"``, ``expand_numbers=True``...). Like
        transformers, a ``special_tokens_map.json`` overrides the config's special tokens unless
        the config has an ``added_tokens_decoder``; a legacy ``added_tokens.json`` is read in that
        case too.
        """
        path = os.fspath(path)
        if not os.path.exists(path) and not path.endswith((".onnx", ".json")):
            path = resolve(path)        # a hub id; offline this raises hub's message
        kind, path = tokenizer_location(path)
        if kind == "piper":
            return PiperTokenizer.load(path, **overrides)
        vocab = _read_json(os.path.join(path, "vocab.json"))
        config: dict[str, Any] = {}
        config_file = os.path.join(path, "tokenizer_config.json")
        if os.path.exists(config_file):
            config = _read_json(config_file)

        added_tokens = config.get("added_tokens_decoder")
        if added_tokens is None:
            map_file = os.path.join(path, "special_tokens_map.json")
            if os.path.exists(map_file):
                config.update({k: v for k, v in _read_json(map_file).items() if k in SPECIAL_TOKEN_KEYS})
            legacy_file = os.path.join(path, "added_tokens.json")
            if os.path.exists(legacy_file):
                added_tokens = {int(i): {"content": t} for t, i in _read_json(legacy_file).items()}

        kwargs: dict[str, Any] = {
            key: config[key]
            for key in ("language", "add_blank", "normalize", "phonemize", "is_uroman")
            if key in config
        }
        for key in ("pad_token", "unk_token"):
            if key in config:
                kwargs[key] = token_content(config[key])
        kwargs["special_tokens"] = {
            key: token_content(config[key])
            for key in SPECIAL_TOKEN_KEYS
            if key not in ("pad_token", "unk_token") and config.get(key) is not None
        }
        kwargs["added_tokens"] = added_tokens
        kwargs.update(overrides)
        return cls(vocab, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of entries in ``vocab.json`` (the model's embedding size)."""
        return len(self.vocab)

    @property
    def padding_id(self) -> int:
        """Id used to pad batches: the pad token's id, or the blank id 0 if that is not in vocab."""
        if self.pad_token_id is not None and self.pad_token_id in self.vocabulary.vocab_ids:
            return self.pad_token_id
        return 0

    def describe(self) -> dict:
        """Settings worth showing (``vits-jax info``), JSON-serializable."""
        return {"kind": self.kind, "add_blank": self.add_blank, "normalize": self.normalize,
                "phonemize": self.phonemize, "is_uroman": self.is_uroman, "language": self.language,
                "pad_token": self.pad_token, "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, pad_token={self.pad_token!r}, "
            f"add_blank={self.add_blank}, normalize={self.normalize}, phonemize={self.phonemize}, "
            f"is_uroman={self.is_uroman}, language={self.language!r})"
        )

    # ------------------------------------------------------------------ front-ends
    def normalize_text(self, text: str) -> str:
        """Lowercase character by character, keeping vocabulary / added-token matches verbatim."""
        return lowercase_keeping(text, self.vocabulary.norm_by_first)

    def _prepare(self, text: str, on_unknown: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        original = text
        if self.number_language is not None:
            text = _expand_numbers(text, self.number_language)
        if self.normalize:
            text = self.normalize_text(text)
        if self.language == "ron":
            text = text.replace("ț", "ţ")
        if self.is_uroman:
            text = romanize(text)
        if self.phonemize:
            return _phonemize(text, self.phonemizer_language)
        if self.normalize:
            text, changed = filter_vocabulary(text, self.vocab, fold_diacritics=self.fold_diacritics)
            report(changed, original, on_unknown)
        return text

    def prepare_text(self, text: str) -> str:
        """The string whose characters get tokenized (transformers' prepare_for_tokenization)."""
        return self._prepare(text, self.on_unknown)

    def tokenize(self, text: str) -> list[str]:
        """Token strings (transformers' ``tokenize``), before the unknown-token check."""
        return self.vocabulary.tokens(self.prepare_text(text))[0]

    def split_sentences(self, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
        """Text -> pieces of at most `max_tokens` ids each, cut at sentence ends, then clause
        marks, then spaces (`vits_jax.tokenizer.sentences.split_text` with this tokenizer's counts; dropped
        characters are reported when the pieces are encoded, not while counting)."""
        return split_text(text, max_tokens,
                          count=lambda s: len(self.vocabulary.tokens(self._prepare(s, "ignore"))[0]))

    # ------------------------------------------------------------------ ids
    def _ids(self, text: str, prepared: str, tokens: list[str]) -> list[int]:
        if not tokens:
            raise ValueError(
                f"text {preview(text)} tokenizes to no ids: after normalization"
                f"{' / romanization' if self.is_uroman else ''}"
                f"{' / phonemization' if self.phonemize else ''} nothing is left that is in the "
                "vocabulary (transformers would silently return an empty sequence)"
            )
        ids = []
        strict = self.unknown == "error"
        known = self.vocabulary.known
        for token in tokens:
            if token in known:
                ids.append(known[token])
                continue
            idx = self.vocabulary.lookup(token)
            if strict:
                where = "phonemized text" if self.phonemize else "text"
                raise ValueError(
                    f"token {token!r} ({_codepoints(token)}) of the {where} "
                    f"{preview(prepared)} is not in the vocabulary "
                    f"(transformers would emit id {idx}, outside the {self.vocab_size}-entry "
                    "embedding); pass unknown='unk' to keep transformers' ids"
                )
            ids.append(idx)
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of one string, equal to ``VitsTokenizer(...)(text).input_ids``.

        Raises ``ValueError`` when the text tokenizes to nothing, and (with ``unknown="error"``)
        when a token is not in the vocabulary.
        """
        prepared = self.prepare_text(text)
        return self._ids(text, prepared, self.vocabulary.tokens(prepared)[0])

    def encode_words(self, text: str) -> tuple[list[int], list[tuple[str, int, int]]]:
        """``(ids, [(word, first, end)])``; see `TokenizerBase.encode_words`.

        Each word is prepared alone and found in the whole text's prepared string, left to
        right; a word whose preparation is not found there (phonemizer joins some words, e.g.
        "of the") takes the prepared text up to the next space."""
        prepared = self.prepare_text(text)
        tokens, positions = self.vocabulary.tokens(prepared)
        ids = self._ids(text, prepared, tokens)
        words = []
        cursor = 0
        for word in text.split():
            piece = self._prepare(word, "ignore").strip()
            at = prepared.find(piece, cursor) if piece else -1
            if at < 0:
                while cursor < len(prepared) and prepared[cursor] == " ":
                    cursor += 1
                at = piece_end = cursor
                if piece:
                    space = prepared.find(" ", cursor)
                    piece_end = len(prepared) if space < 0 else space
            else:
                piece_end = at + len(piece)
            words.append((word, at, piece_end))
            cursor = piece_end
        return ids, spans_from_positions(words, positions)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text (transformers' ``decode`` without its whitespace clean-up).

        With ``add_blank`` every other token (the blanks) is dropped, like transformers.
        Padding is not removed: slice with the mask first.
        """
        return self.vocabulary.decode(ids)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e})") from None


def _codepoints(token: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in token)
