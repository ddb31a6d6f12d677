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


def _cpu_seconds(fn, arg, below=0.0, repeats=3):
    """The least CPU time of this thread over `repeats` calls of fn(arg), stopping at the first one
    under `below`: other processes on a shared machine do not count, and the least of a few
    drops the odd cache or allocator hiccup."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        fn(arg)
        best = min(best, time.thread_time() - start)
        if best < below:
            break
    return best


@pytest.mark.parametrize("unit", ["a", "Mr. Smith went home. "])
def test_splitting_is_linear(unit):
    text = unit * (100_000 // len(unit))
    pieces = split_text(text)
    assert all(2 * len(p) + 1 <= 256 for p in pieces)
    if unit == "a":
        assert "".join(pieces) == text  # one long word: cut mid-word, nothing lost
    # Each 10x more text takes ~10x the time, where quadratic work takes ~100x (17.5 s for the
    # 100k-character word once): only that ratio is bounded, generously, never a time. The sizes
    # grow from 10k so that quadratic work fails in seconds instead of running for an hour.
    previous = None
    for size in (10_000, 100_000, 1_000_000):
        text = unit * (size // len(unit))
        bound = 0.0 if previous is None else 30 * previous
        seconds = _cpu_seconds(split_text, text, below=bound)
        assert previous is None or seconds < bound, (size, previous, seconds)
        previous = seconds
