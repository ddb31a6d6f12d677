"""The call contract every tokenizer keeps: batches of texts -> right-padded ``(ids, mask)``.

Subclasses provide ``encode(text) -> list[int]``, ``tokenize``, ``padding_id`` and
``word_spans``; this class adds batching, sentence splitting and word spans on top.
Shapes: ``tok(texts)`` -> two ``int32`` arrays ``(B, T)``, ``T`` the longest item (rounded up to
``pad_to_multiple_of``).
"""

from __future__ import annotations

from typing import Optional, Iterable, Sequence

import numpy as np

from .sentences import DEFAULT_MAX_TOKENS, split_text

__all__ = ["TokenizerBase", "preview", "spans_from_positions"]


def preview(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


class TokenizerBase:
    padding_id: int
    kind: str        # "vits" (characters, MMS) or "piper" (phonemes)

    def encode(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:  # pragma: no cover - abstract
        """Settings worth showing (``vits-jax info``), JSON-serializable."""
        raise NotImplementedError

    def encode_words(self, text: str) -> tuple[list[int], list[tuple[str, int, int]]]:
        """``(ids, word_spans)``: ``ids == encode(text)``; ``word_spans[k] = (word, first, end)``
        says the k-th space-separated word of `text` is spoken by ``ids[first:end]`` (blanks or
        pads between its symbols included, none around it). A word that yields no ids (e.g. a
        lone dash) gets ``first == end``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def split_sentences(self, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
        """Text -> pieces of at most `max_tokens` ids each, cut at sentence ends, then clause
        marks, then spaces (`vits_jax.tokenizer.sentences.split_text` with this tokenizer's counts)."""
        return split_text(text, max_tokens, count=lambda s: len(self.tokenize(s)))

    def encode_pieces(self, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[tuple[str, list[int]]]:
        """Text -> [(piece, ids)] in reading order: `split_sentences`' pieces, each tokenized once;
        pieces with nothing to say (e.g. "...") are dropped. A piece the caller asked to refuse
        (`on_unknown="error"`) still raises."""
        from .normalize import UnknownCharactersError

        out = []
        for piece in self.split_sentences(text, max_tokens):
            try:
                ids = self.encode(piece)
            except UnknownCharactersError:
                raise
            except ValueError:        # nothing to say in this piece
                continue
            if ids:
                out.append((piece, ids))
        return out

    def __call__(self, texts: str | Sequence[str], *, pad_to_multiple_of: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Encode a string or a batch of strings.

        Returns:
            ``(ids, mask)``: ``int32`` arrays of shape ``(batch, max_len)``; ``ids`` is right-padded
            with `padding_id`, ``mask`` is 1 on real tokens and 0 on padding. ``max_len`` is
            rounded up to a multiple of ``pad_to_multiple_of`` when given.
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
        return pad_ids(encoded, self.padding_id, max_len)


def pad_ids(sequences, padding_id: int, width: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Id sequences -> right-padded (ids (B, W) int32, mask (B, W) int32), W = `width` or the
    longest sequence. The one padding helper: tokenizers, speak and corpus synthesis use it."""
    width = max(len(e) for e in sequences) if width is None else int(width)
    ids = np.full((len(sequences), width), padding_id, dtype=np.int32)
    mask = np.zeros((len(sequences), width), dtype=np.int32)
    for row, e in enumerate(sequences):
        ids[row, : len(e)] = e
        mask[row, : len(e)] = 1
    return ids, mask


def spans_from_positions(words: list[tuple[str, int, int]], positions: list[int]
                         ) -> list[tuple[str, int, int]]:
    """Words given as character ranges of a prepared text -> token ranges, through each token's
    character index (`positions`, -1 for blanks)."""
    first_at: dict[int, int] = {}
    last_at: dict[int, int] = {}
    for t, p in enumerate(positions):
        if p >= 0:
            first_at.setdefault(p, t)
            last_at[p] = t
    out = []
    cursor = 0
    for word, start, end in words:
        toks = [t for p in range(start, end) for t in (first_at.get(p), last_at.get(p)) if t is not None]
        if toks:
            out.append((word, min(toks), max(toks) + 1))
            cursor = max(toks) + 1
        else:
            out.append((word, cursor, cursor))
    return out
