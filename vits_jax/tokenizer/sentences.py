"""Long text -> pieces short enough to synthesize one at a time.

VITS checkpoints are trained on single sentences: a page of text in one pass costs memory
quadratic in its length (relative attention) and drifts in prosody. `split_text` cuts text into
sentences on sentence punctuation and cuts a sentence whose token count exceeds `max_tokens`
further, at clause punctuation (commas, semicolons, dashes), packing as many clauses into each
piece as fit; a clause still too long is cut between words where a phrase starts (never after
"the", "for", "of", ...) into as few pieces of even length as fit (`_cut_phrases`). Only a single
"word" longer than the limit is cut mid-word.

Every step is linear in the text's length (a 100k-character word splits in well under a
second): abbreviations are checked on the word before each full stop only, and an over-long word
is cut by galloping search over prefixes no longer than twice the piece.

Piper voices split as Piper does (espeak-ng's sentence clauses): `PiperTokenizer.split_sentences`;
callers use ``tokenizer.split_sentences(text, max_tokens)`` whatever the tokenizer kind.

Token counts come from a caller-supplied `count` (e.g. ``lambda s: len(tok.encode(s))``); the
default counts characters the way an ``add_blank`` tokenizer does (``2 * len + 1``).
"""

from __future__ import annotations

import re
from typing import Callable, Optional

__all__ = ["split_sentences", "split_long", "split_text", "ends_sentence", "DEFAULT_MAX_TOKENS"]

# 256 ids is ~127 characters with add_blank interleaving: a long sentence, a few seconds of speech.
DEFAULT_MAX_TOKENS = 256

# Sentence end: ., !, ?, … (and runs of them), then closing quotes/brackets, then whitespace or
# the end. CJK / Devanagari / Arabic full stops end a sentence without a following space.
_CLOSERS = "\"'”’»)]}"
_SENTENCE_END = re.compile(rf"([.!?…]+[{re.escape(_CLOSERS)}]*)(?=\s|$)|([。！？．｡।۔؟]+[{re.escape(_CLOSERS)}]*)")
_ENDS_SENTENCE = re.compile(rf"[.!?…。！？．｡।۔؟][{re.escape(_CLOSERS)}]*$")
_PARAGRAPH = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"\s+")
# Clause boundaries: the punctuation stays with the clause before it.
_CLAUSE_END = re.compile(r"(?<=[,:;、，])\s+|(?<=\s[–—])\s+")
# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig approx dept inc ltd".split())


def _normalize_space(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


_LAST_WORD = re.compile(r"(\S+)\s*$")


def _ends_with_abbreviation(paragraph: str, dot: int) -> bool:
    """True if the word ending at ``paragraph[dot]`` (a ".") is "Mr." / "e.g." / an initial
    such as "J." (but not "I." or "A."): no sentence break there. Looks back one word only, so
    a paragraph costs time linear in its length."""
    start = dot
    while start > 0 and not paragraph[start - 1].isspace():
        start -= 1
    word = paragraph[start:dot].rstrip(".").lstrip("\"'“‘«([{")
    if len(word) == 1:
        return word.isupper() and word not in ("I", "A")
    return word.lower() in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Text -> sentences, whitespace normalized, empty ones dropped.

    Breaks after sentence punctuation followed by whitespace (``"Hi. Bye."``, not ``"3.14"``),
    after CJK-style full stops, and at blank lines (paragraphs); single newlines are spaces. A
    full stop after a common abbreviation or a single initial does not break, nor does one
    followed by a lowercase letter (``"e.g. this"``).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = _normalize_space(paragraph)
        start = 0
        for m in _SENTENCE_END.finditer(paragraph):
            end = m.end()
            if m.group(1) is not None and m.group(1).startswith(".") and set(m.group(1)) <= set("." + _CLOSERS):
                after = end + 1 if end < len(paragraph) else end  # one space (normalized)
                if _ends_with_abbreviation(paragraph, m.start()) or paragraph[after:after + 1].islower():
                    continue
            piece = paragraph[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        piece = paragraph[start:].strip()
        if piece:
            sentences.append(piece)
    return sentences


def ends_sentence(piece: str) -> bool:
    """True if `piece` ends in sentence punctuation (closing quotes / brackets after it allowed):
    a piece `split_long` cut from a longer sentence does not, so its sentence goes on in the next."""
    return bool(_ENDS_SENTENCE.search(piece.rstrip()))


def _char_count(text: str) -> int:
    return 2 * len(text) + 1


def _pack(parts: list[str], max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Greedily joins consecutive `parts` with spaces while the joined piece fits."""
    out: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current} {part}" if current else part
        if current and count(candidate) > max_tokens:
            out.append(current)
            current = part
        else:
            current = candidate
    if current:
        out.append(current)
    return out


def _cut_word(word: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """A single over-long word -> the longest prefixes that fit (at least one character each).

    Galloping search: each piece costs O(piece * log piece) in `count` calls on prefixes no
    longer than twice the piece, so a word costs time linear in its length (a binary search over
    the whole remaining word made it quadratic)."""
    out = []
    start, n = 0, len(word)
    while start < n:
        fits, step = 1, 1  # fits: a prefix length known to fit (one character always goes)
        while start + fits < n:
            probe = min(fits + step, n - start)
            if count(word[start:start + probe]) > max_tokens:
                break
            fits, step = probe, step * 2
        else:
            out.append(word[start:])
            break
        lo, hi = fits, min(fits + step, n - start) - 1  # largest length in [lo, hi] that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(word[start:start + mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append(word[start:start + lo])
        start += lo
    return out


# A clause cut between words is cut where a phrase starts, never inside one: not after these words
# (articles, prepositions, conjunctions, determiners, auxiliaries lean on the word after them), and
# preferably before the words that open a phrase. Other languages' words are neutral: there the cut
# only balances the pieces.
_LEANS_ON_NEXT = frozenset("""a an the of for to in on at by with from into onto upon about over under
    and or but nor so yet my your his her its our their this that these those very not no as than
    every each some any all is are was were be been being has have had will would can could should
    shall may might must do does did which who whom whose where when while if""".split())
_OPENS_PHRASE = frozenset("""and or but nor which who whom whose that where when while because
    although though if unless since until before after during for with of to in on at by from
    between into about without within across against""".split())


def _bare(word: str) -> str:
    return word.strip("\"'“”‘’«»()[]{}").lower()


def _cut_phrases(words: list[str], max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Words of one clause (each fitting alone) -> as few pieces as fit, cut between phrases and
    of even length: the cheapest cuts by dynamic programming over word boundaries (a cut after a
    word that leans on the next, e.g. "for the | full", costs most; one before a word opening a
    phrase costs least), piece lengths estimated from the words' counts and checked exactly."""
    n = len(words)
    sizes = [count(w) for w in words]
    join = count(f"{words[0]} {words[1]}") - sizes[0] - sizes[1] if n > 1 else 0
    prefix = [0]
    for c in sizes:
        prefix.append(prefix[-1] + c)

    def estimate(i: int, j: int) -> int:
        return prefix[j] - prefix[i] + join * (j - i - 1)

    def cut_cost(j: int) -> float:  # a cut between words[j - 1] and words[j]
        if j == n:
            return 0.0
        if _bare(words[j - 1]) in _LEANS_ON_NEXT:
            return 100.0
        return 0.0 if _bare(words[j]) in _OPENS_PHRASE else 10.0

    limit = max_tokens
    for _ in range(4):
        best: list[tuple[float, int]] = [(0.0, 0)] + [(float("inf"), 0)] * n   # (cost, piece start)
        for j in range(1, n + 1):
            for i in range(j - 1, -1, -1):
                size = estimate(i, j)
                if size > limit and j - i > 1:
                    break
                spare = (limit - size) / limit
                cost = best[i][0] + 1000.0 + 100.0 * spare * spare + cut_cost(j)
                if cost < best[j][0]:
                    best[j] = (cost, i)
        cuts, j = [], n
        while j:
            cuts.append(j)
            j = best[j][1]
        bounds = [0] + cuts[::-1]
        pieces = [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:])]
        over = max(count(p) for p in pieces) - max_tokens
        if over <= 0:
            return pieces
        limit -= over                 # the estimate was short: plan again with less room
    return _pack(words, max_tokens, count)


def split_long(sentence: str, max_tokens: int = DEFAULT_MAX_TOKENS,
               count: Optional[Callable[[str], int]] = None) -> list[str]:
    """One sentence -> pieces with ``count(piece) <= max_tokens``, cut at clause punctuation
    first, then between words, and mid-word only for a word that alone exceeds the limit."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    count = count or _char_count
    sentence = _normalize_space(sentence)
    if not sentence or count(sentence) <= max_tokens:
        return [sentence] if sentence else []
    pieces: list[str] = []
    for clause in _pack([c for c in _CLAUSE_END.split(sentence) if c], max_tokens, count):
        if count(clause) <= max_tokens:
            pieces.append(clause)
            continue
        words: list[str] = []
        for word in clause.split(" "):
            words.extend([word] if count(word) <= max_tokens else _cut_word(word, max_tokens, count))
        pieces.extend(_cut_phrases(words, max_tokens, count))
    return pieces


def split_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS,
               count: Optional[Callable[[str], int]] = None) -> list[str]:
    """Text -> sentences (`split_sentences`), each cut to at most `max_tokens` (`split_long`)."""
    out: list[str] = []
    for sentence in split_sentences(text):
        out.extend(split_long(sentence, max_tokens, count))
    return out
