"""Character tokenizer for VITS / MMS-TTS checkpoints.

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

Only Python and numpy are needed; `uroman` and `phonemizer` are imported lazily when a config
asks for them.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["Tokenizer"]

# transformers' SPECIAL_TOKENS_ATTRIBUTES: special tokens missing from the vocabulary get new ids
# in this order.
_SPECIAL_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
_NON_ASCII = re.compile(r"[^\x00-\x7F]")
_WHITESPACE_RUN = re.compile(r"\s+")
_UNKNOWN_MODES = ("error", "unk")


@dataclass(frozen=True)
class _AddedToken:
    content: str
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False


def _token_content(value: Any) -> str | None:
    """A special token value from a config: a string, ``None`` or an AddedToken dict."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "content" in value:
        return str(value["content"])
    raise ValueError(f"unsupported special token value {value!r}")


@functools.lru_cache(maxsize=1)
def _uroman():
    try:
        import uroman
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this tokenizer config sets is_uroman=true and the text contains non-ASCII characters: "
            "install the romanizer with `pip install uroman`"
        ) from err
    return uroman.Uroman()


def _phonemize(text: str, language: str) -> str:
    try:
        import phonemizer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this tokenizer config sets phonemize=true: install `pip install phonemizer` and the "
            "espeak-ng system package"
        ) from err
    # The exact call transformers' VitsTokenizer makes (phonemizer caches the espeak backend).
    out = phonemizer.phonemize(
        text,
        language=language,
        backend="espeak",
        strip=True,
        preserve_punctuation=True,
        with_stress=True,
    )
    return _WHITESPACE_RUN.sub(" ", out)


class Tokenizer:
    """VITS / MMS-TTS tokenizer, id-for-id compatible with transformers' `VitsTokenizer`.

    Args:
        vocab: token -> id mapping (the content of ``vocab.json``; its order matters for
            normalization, as in transformers).
        pad_token, unk_token: special tokens. Missing from ``vocab`` they get new ids after the
            vocabulary (transformers' rule), e.g. MMS' ``"<unk>"`` gets ``len(vocab)``.
        language: the config's language code. Only ``"ron"`` changes tokenization (``ț`` ->
            ``ţ``); it is *not* the phonemizer language (see ``phonemizer_language``).
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

    The constructor defaults are transformers' (note ``phonemize=True``); `Tokenizer.load` reads
    them from a checkpoint folder.
    """

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
    ) -> None:
        if unknown not in _UNKNOWN_MODES:
            raise ValueError(f"unknown must be one of {_UNKNOWN_MODES}, got {unknown!r}")
        self.vocab: dict[str, int] = {str(k): int(v) for k, v in vocab.items()}
        if not self.vocab:
            raise ValueError("the vocabulary is empty")
        self.language = language
        self.add_blank = bool(add_blank)
        self.normalize = bool(normalize)
        self.phonemize = bool(phonemize)
        self.is_uroman = bool(is_uroman)
        self.phonemizer_language = phonemizer_language
        self.unknown = unknown
        self._id_to_vocab = {v: k for k, v in self.vocab.items()}
        self._vocab_ids = frozenset(self.vocab.values())

        # Added tokens, exactly as transformers builds them: explicit `added_tokens_decoder`
        # entries first, then special tokens missing from it, which keep their vocabulary id or
        # get the next free id.
        named = {key: None for key in _SPECIAL_TOKEN_KEYS}
        for key, value in (special_tokens or {}).items():
            if key not in named or key in ("pad_token", "unk_token"):
                raise ValueError(f"unsupported special token key {key!r}")
            named[key] = _token_content(value)
        named["pad_token"] = _token_content(pad_token)
        named["unk_token"] = _token_content(unk_token)
        self.pad_token = named["pad_token"]
        self.unk_token = named["unk_token"]
        self.special_tokens = {k: v for k, v in named.items() if v is not None}

        added_decoder: dict[int, _AddedToken] = {}
        for idx, tok in (added_tokens or {}).items():
            if isinstance(tok, str):
                tok = {"content": tok}
            added_decoder[int(idx)] = _AddedToken(
                content=str(tok["content"]),
                lstrip=bool(tok.get("lstrip", False)),
                rstrip=bool(tok.get("rstrip", False)),
                single_word=bool(tok.get("single_word", False)),
            )
        added_encoder = {t.content: i for i, t in added_decoder.items()}
        current: dict[Any, int] = {}
        for i in range(len(self.vocab)):
            token = added_decoder[i].content if i in added_decoder else self._id_to_vocab.get(i)
            current[token] = i
        current.update(added_encoder)
        new_idx, n_new = len(current), 0
        for content in dict.fromkeys(v for v in self.special_tokens.values()):
            if content == "" or content in added_encoder:
                continue
            if content in current:
                idx = current[content]
            else:
                idx = new_idx + n_new
                n_new += 1
                if idx in added_decoder:
                    raise ValueError(
                        f"special token {content!r} would get id {idx}, already used by added "
                        f"token {added_decoder[idx].content!r} (transformers silently drops the "
                        "latter)"
                    )
            added_decoder[idx] = _AddedToken(content)
            added_encoder[content] = idx
        self._added_decoder = dict(sorted(added_decoder.items()))
        self._added_encoder = {t.content: i for i, t in self._added_decoder.items()}
        # Longest first, so the split below is leftmost-longest like transformers' Trie.
        by_first: dict[str, list[str]] = {}
        for content in sorted(self._added_encoder, key=len, reverse=True):
            by_first.setdefault(content[0], []).append(content)
        self._added_by_first = by_first

        # Normalization matches vocabulary entries, then added tokens (by id); first hit wins.
        norm: dict[str, list[str]] = {}
        for word in list(self.vocab) + list(self._added_encoder):
            if word:
                norm.setdefault(word[0], []).append(word)
        self._norm_by_first = norm

        # Tokens emitted as-is: vocabulary entries, and added tokens whose id is in the vocabulary.
        self._known: dict[str, int] = {t: i for t, i in self.vocab.items()}
        for content, idx in self._added_encoder.items():
            if idx in self._vocab_ids:
                self._known[content] = idx
            else:
                self._known.pop(content, None)
        self.unk_token_id = self._added_encoder.get(self.unk_token) if self.unk_token else None
        self.pad_token_id = self._lookup(self.pad_token) if self.pad_token is not None else None
        if self.add_blank:
            if 0 not in self._id_to_vocab:
                raise ValueError("add_blank needs a vocabulary token with id 0 (the blank)")
            self._blank_token = self._id_to_vocab[0]
            self.blank_id = self._lookup(self._blank_token)
        else:
            self._blank_token = None
            self.blank_id = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike, **overrides: Any) -> "Tokenizer":
        """Load from a checkpoint folder holding ``vocab.json`` (+ ``tokenizer_config.json``).

        ``overrides`` replace config values / constructor arguments (``normalize=False``,
        ``phonemizer_language="fr-fr"``, ``unknown="unk"``...). Like transformers, a
        ``special_tokens_map.json`` overrides the config's special tokens unless the config has an
        ``added_tokens_decoder``; a legacy ``added_tokens.json`` is read in that case too.
        """
        path = os.fspath(path)
        with open(os.path.join(path, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        config: dict[str, Any] = {}
        config_file = os.path.join(path, "tokenizer_config.json")
        if os.path.exists(config_file):
            with open(config_file, encoding="utf-8") as f:
                config = json.load(f)

        added_tokens = config.get("added_tokens_decoder")
        if added_tokens is None:
            map_file = os.path.join(path, "special_tokens_map.json")
            if os.path.exists(map_file):
                with open(map_file, encoding="utf-8") as f:
                    config.update(
                        {k: v for k, v in json.load(f).items() if k in _SPECIAL_TOKEN_KEYS}
                    )
            legacy_file = os.path.join(path, "added_tokens.json")
            if os.path.exists(legacy_file):
                with open(legacy_file, encoding="utf-8") as f:
                    added_tokens = {int(i): {"content": t} for t, i in json.load(f).items()}

        kwargs: dict[str, Any] = {
            key: config[key]
            for key in ("language", "add_blank", "normalize", "phonemize", "is_uroman")
            if key in config
        }
        for key in ("pad_token", "unk_token"):
            if key in config:
                kwargs[key] = _token_content(config[key])
        kwargs["special_tokens"] = {
            key: _token_content(config[key])
            for key in _SPECIAL_TOKEN_KEYS
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
        if self.pad_token_id is not None and self.pad_token_id in self._vocab_ids:
            return self.pad_token_id
        return 0

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, pad_token={self.pad_token!r}, "
            f"add_blank={self.add_blank}, normalize={self.normalize}, phonemize={self.phonemize}, "
            f"is_uroman={self.is_uroman}, language={self.language!r})"
        )

    # ------------------------------------------------------------------ text processing
    def normalize_text(self, text: str) -> str:
        """Lowercase character by character, keeping vocabulary / added-token matches verbatim."""
        out = []
        i, n = 0, len(text)
        by_first = self._norm_by_first
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

    def prepare_text(self, text: str) -> str:
        """The string whose characters get tokenized (transformers' prepare_for_tokenization)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.normalize:
            text = self.normalize_text(text)
        if self.language == "ron":
            text = text.replace("ț", "ţ")
        if self.is_uroman and _NON_ASCII.search(text):
            text = _uroman().romanize_string(text)
        if self.phonemize:
            text = _phonemize(text, self.phonemizer_language)
        elif self.normalize:
            vocab = self.vocab
            text = "".join(c for c in text if c in vocab).strip()
        return text

    def _lookup(self, token: str) -> int | None:
        if token in self._added_encoder:
            return self._added_encoder[token]
        if token in self.vocab:
            return self.vocab[token]
        return self.unk_token_id

    def _split_added(self, text: str) -> list[str]:
        """Split around added tokens and apply their strip flags (transformers' ``tokenize``)."""
        if not self._added_by_first:
            return [text]
        pieces: list[str] = []
        start = i = 0
        n = len(text)
        while i < n:
            match = None
            for content in self._added_by_first.get(text[i], ()):
                if text.startswith(content, i):
                    match = content
                    break
            if match is None:
                i += 1
                continue
            if i > start:
                pieces.append(text[start:i])
            pieces.append(match)
            i += len(match)
            start = i
        if start < n:
            pieces.append(text[start:])

        added = self._added_encoder
        for i, piece in enumerate(pieces):
            if piece not in added:
                continue
            tok = self._added_decoder[added[piece]]
            left = pieces[i - 1] if i > 0 else None
            right = pieces[i + 1] if i < len(pieces) - 1 else None
            if tok.rstrip and right:
                pieces[i + 1] = right.lstrip()
            if tok.lstrip and left:
                pieces[i - 1] = left.rstrip()
            if tok.single_word:
                if left and left[-1] != " ":
                    pieces[i - 1] += piece
                    pieces[i] = ""
                elif right and right[0] != " ":
                    pieces[i + 1] = piece + pieces[i + 1]
                    pieces[i] = ""
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Token strings (transformers' ``tokenize``), before the unknown-token check."""
        return self._tokenize_prepared(self.prepare_text(text))

    def _tokenize_prepared(self, prepared: str) -> list[str]:
        tokens: list[str] = []
        for piece in self._split_added(prepared):
            if not piece:
                continue
            if piece in self._added_encoder:
                tokens.append(piece)
            elif self.add_blank:
                blank = self._blank_token
                tokens.append(blank)
                for ch in piece:
                    tokens.append(ch)
                    tokens.append(blank)
            else:
                tokens.extend(piece)
        return tokens

    def encode(self, text: str) -> list[int]:
        """Token ids of one string, equal to ``VitsTokenizer(...)(text).input_ids``.

        Raises ``ValueError`` when the text tokenizes to nothing, and (with ``unknown="error"``)
        when a token is not in the vocabulary.
        """
        prepared = self.prepare_text(text)
        tokens = self._tokenize_prepared(prepared)
        if not tokens:
            raise ValueError(
                f"text {_preview(text)} tokenizes to no ids: after normalization"
                f"{' / romanization' if self.is_uroman else ''}"
                f"{' / phonemization' if self.phonemize else ''} nothing is left that is in the "
                "vocabulary (transformers would silently return an empty sequence)"
            )
        ids = []
        strict = self.unknown == "error"
        known = self._known
        for token in tokens:
            if token in known:
                ids.append(known[token])
                continue
            idx = self._lookup(token)
            if strict:
                where = "phonemized text" if self.phonemize else "text"
                raise ValueError(
                    f"token {token!r} ({_codepoints(token)}) of the {where} "
                    f"{_preview(prepared)} is not in the vocabulary "
                    f"(transformers would emit id {idx}, outside the {self.vocab_size}-entry "
                    "embedding); pass unknown='unk' to keep transformers' ids"
                )
            ids.append(idx)
        return ids

    def __call__(
        self, texts: str | Sequence[str], *, pad_to_multiple_of: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode a string or a batch of strings.

        Returns:
            ``(ids, mask)``: ``int32`` arrays of shape ``(batch, max_len)``; ``ids`` is right-padded
            with `padding_id` (the pad token id), ``mask`` is 1 on real tokens and 0 on padding.
            ``max_len`` is rounded up to a multiple of ``pad_to_multiple_of`` when given.
        """
        if isinstance(texts, str):
            texts = [texts]
        elif not isinstance(texts, Iterable):
            raise TypeError(f"texts must be a str or a sequence of str, got {type(texts).__name__}")
        texts = list(texts)
        if not texts:
            raise ValueError("empty batch: pass at least one text")
        encoded = [self.encode(t) for t in texts]
        max_len = max(len(e) for e in encoded)
        if pad_to_multiple_of is not None:
            if int(pad_to_multiple_of) <= 0:
                raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
            m = int(pad_to_multiple_of)
            max_len = -(-max_len // m) * m
        ids = np.full((len(encoded), max_len), self.padding_id, dtype=np.int32)
        mask = np.zeros((len(encoded), max_len), dtype=np.int32)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        return ids, mask

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text (transformers' ``decode`` without its whitespace clean-up).

        With ``add_blank`` every other token (the blanks) is dropped, like transformers.
        Padding is not removed: slice with the mask first.
        """
        tokens = []
        for idx in ids:
            idx = int(idx)
            if idx in self._added_decoder:
                tokens.append(self._added_decoder[idx].content)
            elif idx in self._id_to_vocab:
                tokens.append(self._id_to_vocab[idx])
            else:
                raise ValueError(f"id {idx} is not in the vocabulary")
        if self.add_blank and len(tokens) > 1:
            tokens = tokens[1::2]
        return "".join(tokens)


def _preview(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def _codepoints(token: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in token)
