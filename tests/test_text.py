"""vits_jax.tokenizer.sentences: sentence splitting and long-piece cutting, including its linear cost."""

import time

import pytest

from vits_jax.tokenizer.sentences import split_long, split_sentences, split_text


def test_sentences_and_abbreviations():
    text = "Dr. Smith went to Washington. He said e.g. this. J. R. Tolkien wrote.\n\nHi! \"Yes.\" No"
    assert split_sentences(text) == ["Dr. Smith went to Washington.", "He said e.g. this.",
                                     "J. R. Tolkien wrote.", "Hi!", '"Yes."', "No"]
    assert split_sentences("Pi is 3.14 today. Really") == ["Pi is 3.14 today.", "Really"]


def test_long_pieces_fit_and_keep_the_text():
    sentence = "one two three, four five six; seven eight nine ten eleven twelve"
    pieces = split_long(sentence, max_tokens=31)
    assert all(2 * len(p) + 1 <= 31 for p in pieces)
    assert " ".join(pieces) == sentence
    with pytest.raises(ValueError, match="max_tokens"):
        split_long(sentence, max_tokens=0)


def _seconds(fn, arg):
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


@pytest.mark.parametrize("unit", ["a", "Mr. Smith went home. "])
def test_splitting_is_linear(unit):
    small = unit * (100_000 // len(unit))
    big = unit * (1_000_000 // len(unit))
    pieces = split_text(small)
    assert all(2 * len(p) + 1 <= 256 for p in pieces)
    if unit == "a":
        assert "".join(pieces) == small  # one long word: cut mid-word, nothing lost
    t_small = min(_seconds(split_text, small) for _ in range(2))
    t_big = _seconds(split_text, big)
    assert t_small < 0.5, t_small  # was 17.5 s for the 100k-character word
    # 10x the text: ~10x the time (quadratic would be ~100x); generous for a shared CPU
    assert t_big < 30 * t_small + 0.5, (t_small, t_big)
