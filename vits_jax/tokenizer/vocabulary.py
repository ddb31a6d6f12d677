"""Token strings <-> ids for VITS / MMS vocabularies, built exactly as transformers' VitsTokenizer.

`Vocabulary` holds ``vocab.json`` plus the added / special tokens (transformers' id rules: explicit
``added_tokens_decoder`` entries first, then special tokens missing from it, which keep their
vocabulary id or get the next free id), splits prepared text around added tokens (leftmost-longest,
with their strip flags) and interleaves the blank token. Shapes: ``tokens(text)`` has
``2 * n_chars + 1`` entries with ``add_blank``; ``positions`` gives each token's character index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["Vocabulary", "SPECIAL_TOKEN_KEYS", "token_content"]

# transformers' SPECIAL_TOKENS_ATTRIBUTES: special tokens missing from the vocabulary get new ids
# in this order.
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                      "mask_token")


@dataclass(frozen=True)
class _AddedToken:
    content: str
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False


def token_content(value: Any) -> str | None:
    """A special token value from a config: a string, ``None`` or an AddedToken dict."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "content" in value:
        return str(value["content"])
    raise ValueError(f"unsupported special token value {value!r}")


class Vocabulary:
    """``vocab.json`` + added and special tokens; see the module docstring."""

    def __init__(self, vocab: Mapping[str, int], *, pad_token: str | None, unk_token: str | None,
                 special_tokens: Mapping[str, str | None] | None,
                 added_tokens: Mapping[int, Mapping[str, Any] | str] | None, add_blank: bool):
        self.vocab: dict[str, int] = {str(k): int(v) for k, v in vocab.items()}
        if not self.vocab:
            raise ValueError("the vocabulary is empty")
        self.id_to_vocab = {v: k for k, v in self.vocab.items()}
        self.vocab_ids = frozenset(self.vocab.values())
        named = {key: None for key in SPECIAL_TOKEN_KEYS}
        for key, value in (special_tokens or {}).items():
            if key not in named or key in ("pad_token", "unk_token"):
                raise ValueError(f"unsupported special token key {key!r}")
            named[key] = token_content(value)
        named["pad_token"] = token_content(pad_token)
        named["unk_token"] = token_content(unk_token)
        self.pad_token = named["pad_token"]
        self.unk_token = named["unk_token"]
        self.special_tokens = {k: v for k, v in named.items() if v is not None}
        self._build_added(added_tokens)

        # Normalization matches vocabulary entries, then added tokens (by id); first hit wins.
        norm: dict[str, list[str]] = {}
        for word in list(self.vocab) + list(self.added_encoder):
            if word:
                norm.setdefault(word[0], []).append(word)
        self.norm_by_first = norm
        # Tokens emitted as-is: vocabulary entries, and added tokens whose id is in the vocabulary.
        self.known: dict[str, int] = dict(self.vocab)
        for content, idx in self.added_encoder.items():
            if idx in self.vocab_ids:
                self.known[content] = idx
            else:
                self.known.pop(content, None)
        self.unk_token_id = self.added_encoder.get(self.unk_token) if self.unk_token else None
        self.pad_token_id = self.lookup(self.pad_token) if self.pad_token is not None else None
        self.add_blank = bool(add_blank)
        if self.add_blank:
            if 0 not in self.id_to_vocab:
                raise ValueError("add_blank needs a vocabulary token with id 0 (the blank)")
            self.blank_token = self.id_to_vocab[0]
            self.blank_id = self.lookup(self.blank_token)
        else:
            self.blank_token = None
            self.blank_id = None

    def _build_added(self, added_tokens) -> None:
        added_decoder: dict[int, _AddedToken] = {}
        for idx, tok in (added_tokens or {}).items():
            if isinstance(tok, str):
                tok = {"content": tok}
            added_decoder[int(idx)] = _AddedToken(
                content=str(tok["content"]), lstrip=bool(tok.get("lstrip", False)),
                rstrip=bool(tok.get("rstrip", False)), single_word=bool(tok.get("single_word", False)))
        added_encoder = {t.content: i for i, t in added_decoder.items()}
        current: dict[Any, int] = {}
        for i in range(len(self.vocab)):
            current[added_decoder[i].content if i in added_decoder else self.id_to_vocab.get(i)] = i
        current.update(added_encoder)
        new_idx, n_new = len(current), 0
        for content in dict.fromkeys(self.special_tokens.values()):
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
                        f"token {added_decoder[idx].content!r} (transformers silently drops the latter)")
            added_decoder[idx] = _AddedToken(content)
            added_encoder[content] = idx
        self.added_decoder = dict(sorted(added_decoder.items()))
        self.added_encoder = {t.content: i for i, t in self.added_decoder.items()}
        # Longest first, so the split below is leftmost-longest like transformers' Trie.
        by_first: dict[str, list[str]] = {}
        for content in sorted(self.added_encoder, key=len, reverse=True):
            by_first.setdefault(content[0], []).append(content)
        self.added_by_first = by_first

    def lookup(self, token: str) -> int | None:
        if token in self.added_encoder:
            return self.added_encoder[token]
        if token in self.vocab:
            return self.vocab[token]
        return self.unk_token_id

    def split_added(self, text: str) -> list[tuple[str, int]]:
        """``(piece, start)`` around added tokens with their strip flags (transformers' ``tokenize``)."""
        if not self.added_by_first:
            return [(text, 0)]
        pieces: list[list] = []
        start = i = 0
        n = len(text)
        while i < n:
            match = next((c for c in self.added_by_first.get(text[i], ()) if text.startswith(c, i)), None)
            if match is None:
                i += 1
                continue
            if i > start:
                pieces.append([text[start:i], start])
            pieces.append([match, i])
            i += len(match)
            start = i
        if start < n:
            pieces.append([text[start:], start])

        for i, (piece, _) in enumerate(pieces):
            if piece not in self.added_encoder:
                continue
            tok = self.added_decoder[self.added_encoder[piece]]
            left = pieces[i - 1][0] if i > 0 else None
            right = pieces[i + 1][0] if i < len(pieces) - 1 else None
            if tok.rstrip and right:
                stripped = right.lstrip()
                pieces[i + 1] = [stripped, pieces[i + 1][1] + len(right) - len(stripped)]
            if tok.lstrip and left:
                pieces[i - 1][0] = left.rstrip()
            if tok.single_word:
                if left and left[-1] != " ":
                    pieces[i - 1][0] += piece
                    pieces[i][0] = ""
                elif right and right[0] != " ":
                    pieces[i + 1] = [piece + pieces[i + 1][0], pieces[i][1]]
                    pieces[i][0] = ""
        return [(p, s) for p, s in pieces]

    def tokens(self, prepared: str) -> tuple[list[str], list[int]]:
        """Token strings of prepared text, and each token's character index (-1: a blank)."""
        tokens: list[str] = []
        positions: list[int] = []
        for piece, start in self.split_added(prepared):
            if not piece:
                continue
            if piece in self.added_encoder:
                tokens.append(piece)
                positions.append(start)
            elif self.add_blank:
                tokens.append(self.blank_token)
                positions.append(-1)
                for k, ch in enumerate(piece):
                    tokens += [ch, self.blank_token]
                    positions += [start + k, -1]
            else:
                tokens.extend(piece)
                positions.extend(range(start, start + len(piece)))
        return tokens, positions

    def decode(self, ids: Iterable[int]) -> str:
        tokens = []
        for idx in ids:
            idx = int(idx)
            if idx in self.added_decoder:
                tokens.append(self.added_decoder[idx].content)
            elif idx in self.id_to_vocab:
                tokens.append(self.id_to_vocab[idx])
            else:
                raise ValueError(f"id {idx} is not in the vocabulary")
        if self.add_blank and len(tokens) > 1:
            tokens = tokens[1::2]
        return "".join(tokens)
