"""vits_jax.tokenizer.Tokenizer against transformers' VitsTokenizer, id for id.

Every config is checked on a deterministic corpus of >= 200 strings with `_check_corpus`:

* transformers returns ids that are all in vocab.json -> ours are identical;
* transformers returns no ids ("", "!!!", only out-of-vocab characters) -> ours raise ValueError;
* transformers returns an id outside vocab.json (its unk id, past the embedding) -> ours raise
  ValueError, and with unknown="unk" ours are identical to transformers'.
"""

from __future__ import annotations

import os
import json
import random
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from transformers import VitsTokenizer
from transformers.models.vits import tokenization_vits

from vits_jax.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
MMS_ENG = FIXTURES / "mms-tts-eng"
VITS_IPA = FIXTURES / "tokenizers" / "vits-ipa"

# ---------------------------------------------------------------------------------------------
# corpus

HANDPICKED = [
    "Hello world",
    "Hello, World! How are you today?",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
    "the quick brown fox jumps over the lazy dog",
    "It's 3:45 p.m. on 12/31/1999 -- party time!",
    "Call 555-0123 or 1-800-FLOWERS.",
    "I have 2 apples, 10 pears and 0.5 melons.",
    "Dash – en dash — em dash - hyphen",
    "a–b",
    "word    with     many      spaces",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nmixed",
    "under_score and 'quotes' and \"double quotes\"",
    "Café déjà vu, naïve façade, Ångström, Øresund, straße",
    "İstanbul ΣΟΦΙΑ ß ẞ ﬁ",
    "Привет, мир! Как дела?",
    "Γειά σου κόσμε",
    "नमस्ते दुनिया",
    "你好，世界",
    "こんにちは世界",
    "안녕하세요",
    "مرحبا بالعالم",
    "emoji 😀 in 👍🏽 text 🇫🇷",
    "k",
    "K",
    "kk",
    "KkK kK",
    "make a kick",
    "<unk>",
    "x<unk>y <UNK> <pad>",
    "_ _a_ __",
    "mixed English and русский and 中文 text",
    "a",
    "A.",
    "?a?",
    "1234567890",
    "e.g. i.e. etc. Mr. Dr. St.",
    "(parentheses) [brackets] {braces}",
    "Don't stop believin'",
    "x" * 300,
]

# Texts that tokenize to nothing with the MMS-eng vocabulary.
EMPTY_FOR_MMS = ["", " ", "   \t\n", "!!!", "?!.,;:", "😀", "你好", "ΣΑΣ", "()[]{}"]

_POOLS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " .,;:!?'\"()-_–—…",
    "     ",
    "\t\n",
    "éèêëàâäçñöüÿíóúÉÀÇÑÖÜßåøæœ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙ",
    "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΣΩ",
    "你好世界中文字",
    "नमस्तेदुनिया",
    "😀🎉👍🏽❤️",
    "kK<>",
]


def make_corpus(seed: int = 0, n_random: int = 200) -> list[str]:
    """Handpicked + random strings + long texts (deterministic)."""
    rng = random.Random(seed)
    corpus = list(HANDPICKED) + list(EMPTY_FOR_MMS)
    for _ in range(n_random):
        pools = rng.sample(_POOLS, rng.randint(1, 4))
        n = rng.randint(1, 60)
        s = "".join(rng.choice(rng.choice(pools)) for _ in range(n))
        if rng.random() < 0.1:
            s = s.replace(" ", " <unk> ", 1)
        corpus.append(s)
    sentence = "The quick brown fox, aged 7 – or maybe 8 – jumps over the LAZY dog! Ça, Да. "
    corpus.append(sentence * 60)  # ~4.9k chars
    corpus.append(" ".join(rng.choice(HANDPICKED) for _ in range(60)))
    return corpus


CORPUS = make_corpus()


def test_corpus_is_large_and_deterministic():
    assert len(CORPUS) >= 200
    assert CORPUS == make_corpus()
    assert max(len(s) for s in CORPUS) > 4000


# ---------------------------------------------------------------------------------------------
# helpers


def _write_variant(src: Path, dst: Path, vocab_extra: dict | None = None, **config_changes) -> Path:
    """Copy a tokenizer folder and edit its tokenizer_config.json / vocab.json."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    config = json.loads((dst / "tokenizer_config.json").read_text())
    config.update(config_changes)
    (dst / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    if vocab_extra:
        vocab = json.loads((dst / "vocab.json").read_text(encoding="utf-8"))
        vocab.update(vocab_extra)
        (dst / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return dst


def _check_corpus(folder: Path, corpus: list[str], **overrides) -> dict[str, int]:
    """Compare with transformers on every string; returns counts of each outcome."""
    ref = VitsTokenizer.from_pretrained(str(folder), **overrides)
    # transformers drops characters outside the vocabulary silently: so do these (no warning)
    ours = Tokenizer.load(folder, on_unknown="ignore", **overrides)
    compat = Tokenizer.load(folder, unknown="unk", on_unknown="ignore", **overrides)
    vocab_ids = set(json.loads((folder / "vocab.json").read_text(encoding="utf-8")).values())
    counts = {"equal": 0, "empty": 0, "unknown": 0}
    for text in corpus:
        expected = ref(text).input_ids
        if not expected:
            with pytest.raises(ValueError, match="tokenizes to no ids"):
                ours.encode(text)
            with pytest.raises(ValueError):
                compat.encode(text)
            counts["empty"] += 1
        elif not set(expected) <= vocab_ids:
            with pytest.raises(ValueError, match="is not in the vocabulary"):
                ours.encode(text)
            assert compat.encode(text) == expected, text
            counts["unknown"] += 1
        else:
            assert ours.encode(text) == expected, text
            assert compat.encode(text) == expected, text
            counts["equal"] += 1
    return counts


@pytest.fixture
def shared_uroman(monkeypatch):
    """transformers builds a fresh `uroman.Uroman()` (~3 s) on every call; hand it one instance.

    Romanization is a pure function of the text, so this only changes the speed.
    """
    import uroman
    from vits_jax.tokenizer import romanize

    instance = romanize._uroman()
    assert isinstance(instance, uroman.Uroman)
    monkeypatch.setattr(tokenization_vits, "ur", types.SimpleNamespace(Uroman=lambda: instance))
    return instance


# ---------------------------------------------------------------------------------------------
# MMS-eng (normalize, add_blank, pad token "k" with id 0, "<unk>" outside the vocabulary)


def test_mms_eng_matches_transformers():
    counts = _check_corpus(MMS_ENG, CORPUS)
    assert counts["unknown"] == 0  # normalize drops every out-of-vocab character
    assert counts["empty"] >= len(EMPTY_FOR_MMS)
    assert counts["equal"] >= 150
    assert sum(counts.values()) == len(CORPUS)


def test_mms_eng_load_matches_transformers_attributes():
    ref = VitsTokenizer.from_pretrained(str(MMS_ENG))
    tok = Tokenizer.load(MMS_ENG)
    flags = (tok.add_blank, tok.normalize, tok.phonemize, tok.is_uroman)
    assert flags == (True, True, False, False)
    described = tok.describe()
    assert (described["add_blank"], described["normalize"], described["phonemize"], described["is_uroman"]) == flags
    assert tok.language == "eng"
    assert tok.vocab_size == ref.vocab_size == 38
    assert tok.pad_token == ref.pad_token == "k"
    assert tok.pad_token_id == ref.pad_token_id == 0
    assert tok.unk_token_id == ref.unk_token_id == 38
    assert tok.blank_id == 0


@pytest.mark.parametrize("text", EMPTY_FOR_MMS)
def test_text_normalizing_to_nothing_raises(text):
    ref = VitsTokenizer.from_pretrained(str(MMS_ENG))
    assert ref(text).input_ids == []  # transformers: silently no ids
    with pytest.raises(ValueError, match="tokenizes to no ids"):
        Tokenizer.load(MMS_ENG, on_unknown="ignore").encode(text)


def test_pad_token_splits_like_transformers():
    # "k" is both a letter and the pad/blank token; transformers splits on it as an added token,
    # so it gets no blanks of its own: "k" -> [0] and not [0, 0, 0].
    tok = Tokenizer.load(MMS_ENG)
    assert tok.encode("k") == [0]
    assert tok.encode("kk") == [0, 0]
    assert tok.encode("ka") == [0, 0, 26, 0]
    assert tok.encode("a") == [0, 26, 0]


def test_language_ron_preprocessing(tmp_path):
    folder = _write_variant(MMS_ENG, tmp_path / "ron", {"ţ": 38, "ă": 39}, language="ron")
    corpus = ["Bună ziua, țară!", "ŢARA ȚARA ţara țara", "ț", "Ț"] + CORPUS[:50]
    counts = _check_corpus(folder, corpus)
    assert counts["equal"] >= 30
    tok = Tokenizer.load(folder)
    assert tok.encode("ț") == tok.encode("ţ") == [0, 38, 0]


# ---------------------------------------------------------------------------------------------
# other configs


def test_add_blank_false(tmp_path):
    folder = _write_variant(MMS_ENG, tmp_path / "noblank", add_blank=False)
    counts = _check_corpus(folder, CORPUS)
    assert counts["equal"] >= 150
    tok = Tokenizer.load(folder)
    assert tok.encode("Hi there") == [6, 18, 19, 33, 6, 7, 25, 7]


def test_normalize_false(tmp_path):
    folder = _write_variant(MMS_ENG, tmp_path / "nonorm", normalize=False)
    counts = _check_corpus(folder, CORPUS)
    assert counts["equal"] > 0 and counts["unknown"] > 100
    assert counts["empty"] == 1  # only ""
    tok = Tokenizer.load(folder)
    assert tok.encode("hello world") == Tokenizer.load(MMS_ENG).encode("hello world")
    with pytest.raises(ValueError, match=r"token 'H' \(U\+0048\)"):
        tok.encode("Hello")
    with pytest.raises(ValueError, match=r"token '!' \(U\+0021\)"):
        tok.encode("hello!")
    # transformers emits the unk id 38, one past the 38-entry embedding table
    assert VitsTokenizer.from_pretrained(str(folder))("Hello").input_ids[1] == 38
    assert Tokenizer.load(folder, unknown="unk").encode("Hello")[1] == 38


def test_normalize_override_at_load():
    counts = _check_corpus(MMS_ENG, CORPUS[:60], normalize=False)
    assert counts["unknown"] > 0


def test_added_tokens_and_special_tokens_map(tmp_path):
    folder = _write_variant(MMS_ENG, tmp_path / "added", normalize=False)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    # as transformers saves it: the missing "<unk>" got id 38, then user-added tokens follow
    config["added_tokens_decoder"] = {
        "0": {"content": "k", "lstrip": False, "rstrip": False, "normalized": False,
              "single_word": False, "special": True},
        "38": {"content": "<unk>", "lstrip": False, "rstrip": False, "normalized": False,
               "single_word": False, "special": True},
        "39": {"content": "<sep>", "lstrip": True, "rstrip": True, "normalized": False,
               "single_word": False, "special": True},
        "40": {"content": "ab", "lstrip": False, "rstrip": False, "normalized": True,
               "single_word": True, "special": False},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    corpus = ["a <sep> b", "x<sep>y", "  <sep>  ", "ab cab abc", "k<sep>k", "<unk><sep>"]
    corpus += CORPUS[:80]
    counts = _check_corpus(folder, corpus)
    assert counts["equal"] > 0 and counts["unknown"] > 0
    ref = VitsTokenizer.from_pretrained(str(folder))
    tok = Tokenizer.load(folder)
    assert tok.vocabulary.added_encoder == ref.added_tokens_encoder
    assert tok.unk_token_id == ref.unk_token_id
    # lstrip/rstrip swallow the spaces around "<sep>"; its id 39 is outside vocab.json
    assert ref("a <sep> b").input_ids == [0, 26, 0, 39, 0, 24, 0]
    assert Tokenizer.load(folder, unknown="unk").encode("a <sep> b") == [0, 26, 0, 39, 0, 24, 0]
    with pytest.raises(ValueError, match="'<sep>'"):
        tok.encode("a <sep> b")

    # without "<unk>" in added_tokens_decoder, transformers gives it the next free id by count,
    # 39, which is "<sep>"'s: "<sep>" silently disappears from its added tokens
    del config["added_tokens_decoder"]["38"], config["added_tokens_decoder"]["40"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert "<sep>" not in VitsTokenizer.from_pretrained(str(folder)).added_tokens_encoder
    with pytest.raises(ValueError, match="would get id 39, already used by added token '<sep>'"):
        Tokenizer.load(folder)

    # special_tokens_map.json overrides tokenizer_config.json when there is no added_tokens_decoder
    folder2 = _write_variant(MMS_ENG, tmp_path / "stm", pad_token="_", bos_token="<s>")
    special_map = {"pad_token": "a", "unk_token": "<u>"}
    (folder2 / "special_tokens_map.json").write_text(json.dumps(special_map))
    ref2 = VitsTokenizer.from_pretrained(str(folder2))
    tok2 = Tokenizer.load(folder2)
    assert tok2.pad_token == ref2.pad_token == "a"
    assert tok2.unk_token_id == ref2.unk_token_id
    assert tok2.vocabulary.added_encoder == ref2.added_tokens_encoder
    _check_corpus(folder2, CORPUS[:80])


# ---------------------------------------------------------------------------------------------
# uroman


def test_uroman_matches_transformers(tmp_path, shared_uroman):
    folder = _write_variant(MMS_ENG, tmp_path / "uroman", is_uroman=True)
    non_latin = [
        "Привет, мир!",
        "Москва — столица России.",
        "Γειά σου κόσμε",
        "ΣΟΦΙΑ και σοφία",
        "नमस्ते दुनिया",
        "हिन्दी भाषा",
        "你好世界",
        "こんにちは",
        "안녕하세요",
        "مرحبا بالعالم",
        "שלום עולם",
        "Ελληνικά 123 English",
        "Ђорђе Њиво Љиљана",
    ]
    counts = _check_corpus(folder, non_latin + CORPUS)
    assert counts["equal"] >= 200
    tok = Tokenizer.load(folder)
    assert tok.decode(tok.encode("Привет")) == "privet"
    # without romanization these are all dropped (and reported)
    with pytest.raises(ValueError, match="tokenizes to no ids"), pytest.warns(UserWarning, match="dropped 6"):
        Tokenizer.load(MMS_ENG).encode("Привет")


def test_uroman_per_call_instance_matches(tmp_path):
    """One string through transformers' real code path (a fresh Uroman per call)."""
    import uroman  # noqa: F401  (a test dependency)
    folder = _write_variant(MMS_ENG, tmp_path / "uroman", is_uroman=True)
    text = "Привет Γειά नमस्ते 你好 hello"
    expected = VitsTokenizer.from_pretrained(str(folder))(text).input_ids
    assert Tokenizer.load(folder).encode(text) == expected


# ---------------------------------------------------------------------------------------------
# phonemizer


# espeak-ng switches voice on non-Latin scripts ("(hi)...(en-us)" flags in the output) and that
# leaves state behind: the same text can then phonemize differently depending on what the shared
# espeak instance read before. That is espeak's behaviour (transformers has it too), so the
# phonemizer comparison keeps to text that does not switch voice.
_VOICE_SWITCHING = re.compile(
    "[\u0370-\u03ff\u0400-\u04ff\u0590-\u06ff\u0900-\u097f\u3040-\u30ff\u4e00-\u9fff"
    "\uac00-\ud7af\uff00-\uffef]"
)
PHONEMIZE_CORPUS = [
    s for s in dict.fromkeys(CORPUS + make_corpus(seed=1)) if not _VOICE_SWITCHING.search(s)
]


@pytest.fixture
def fresh_espeak():
    """Drop phonemizer's cached espeak backends (phonemizer >= 3.4) so earlier tests' voice
    switches cannot leak into this one."""
    import phonemizer  # noqa: F401  (a test dependency)
    cache = getattr(sys.modules.get("phonemizer.phonemize"), "_BACKENDS_CACHE", None)
    if cache is not None:
        cache.clear()


def test_phonemize_matches_transformers(fresh_espeak):
    assert len(PHONEMIZE_CORPUS) >= 200
    counts = _check_corpus(VITS_IPA, PHONEMIZE_CORPUS)
    assert counts["equal"] >= 150
    tok = Tokenizer.load(VITS_IPA)
    assert tok.phonemize and tok.phonemizer_language == "en-us"
    assert tok.prepare_text("Hello world") == "həlˈoʊ wˈɜːld"
    assert tok.decode(tok.encode("Hello world")) == "həlˈoʊ wˈɜːld"


def test_phonemize_unknown_symbol_raises(tmp_path, fresh_espeak):
    symbols = json.loads((VITS_IPA / "vocab.json").read_text(encoding="utf-8"))
    vocab = {s: i for i, s in enumerate(s for s in symbols if s != "ˈ")}  # no primary stress
    folder = tmp_path / "ipa-no-stress"
    shutil.copytree(VITS_IPA, folder)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match=r"token 'ˈ' \(U\+02C8\) of the phonemized text"):
        Tokenizer.load(folder).encode("hello")
    expected = VitsTokenizer.from_pretrained(str(folder))("hello").input_ids
    assert Tokenizer.load(folder, unknown="unk").encode("hello") == expected


# ---------------------------------------------------------------------------------------------
# batch call


def test_batch_shapes_padding_and_mask():
    tok = Tokenizer.load(MMS_ENG)
    texts = ["Hello world", "a", "This is a longer sentence."]
    ids, mask = tok(texts)
    singles = [tok.encode(t) for t in texts]
    max_len = max(map(len, singles))
    assert ids.shape == mask.shape == (3, max_len)
    assert ids.dtype == mask.dtype == np.int32
    for row, single in enumerate(singles):
        assert ids[row, : len(single)].tolist() == single
        assert (ids[row, len(single):] == tok.pad_token_id).all()
        assert mask[row].tolist() == [1] * len(single) + [0] * (max_len - len(single))

    ref = VitsTokenizer.from_pretrained(str(MMS_ENG))(texts, padding=True, return_tensors="np")
    np.testing.assert_array_equal(ids, ref["input_ids"])
    np.testing.assert_array_equal(mask, ref["attention_mask"])

    ids8, mask8 = tok(texts, pad_to_multiple_of=8)
    assert ids8.shape == (3, -(-max_len // 8) * 8) and ids8.shape[1] % 8 == 0
    np.testing.assert_array_equal(ids8[:, :max_len], ids)
    assert mask8[:, max_len:].sum() == 0

    one_ids, one_mask = tok("Hello world")
    assert one_ids.shape == (1, len(singles[0])) and one_mask.all()
    tuple_ids, _ = tok(tuple(texts))
    np.testing.assert_array_equal(tuple_ids, ids)


def test_batch_errors():
    tok = Tokenizer.load(MMS_ENG)
    with pytest.raises(ValueError, match="empty batch"):
        tok([])
    with pytest.raises(ValueError, match="tokenizes to no ids"):
        tok(["hello", "!!!"])
    with pytest.raises(TypeError):
        tok(["hello", 3])
    with pytest.raises(ValueError):
        tok(["hello"], pad_to_multiple_of=0)


# ---------------------------------------------------------------------------------------------
# constructor, decode, isolation


def test_constructor_from_vocab_dict():
    vocab = json.loads((MMS_ENG / "vocab.json").read_text(encoding="utf-8"))
    tok = Tokenizer(vocab, pad_token="k", phonemize=False, on_unknown="ignore")   # same ids, no reports
    ref = Tokenizer.load(MMS_ENG, on_unknown="ignore")
    for text in CORPUS[:60]:
        try:
            expected = ref.encode(text)
        except ValueError:
            continue
        assert tok.encode(text) == expected
    with pytest.raises(ValueError, match="id 0"):
        Tokenizer({"a": 1, "b": 2}, phonemize=False)
    with pytest.raises(ValueError, match="unknown must be"):
        Tokenizer(vocab, unknown="drop")


def test_decode_round_trip():
    tok = Tokenizer.load(MMS_ENG)
    for text in ["hello world", "Hello, World!", "it's 2 – 3"]:
        ids = tok.encode(text)
        assert tok.decode(ids) == tok.prepare_text(text)
        assert tok.decode(np.asarray(ids)) == tok.prepare_text(text)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([0, 999, 0])


def test_module_does_not_import_torch_or_transformers():
    # a fresh interpreter: importing the tokenizer package (and the vits_jax package around it)
    # must pull in neither torch nor transformers
    import subprocess

    root = Path(__file__).parents[1]
    code = (
        "import sys\n"
        "from vits_jax.tokenizer import Tokenizer\n"
        "assert Tokenizer.load(sys.argv[1]).encode('hi') == [0, 6, 0, 18, 0]\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-c", code, str(MMS_ENG)], check=True, env=env, cwd=root, timeout=300)


# ---------------------------------------------------------------- issue 12 item 2: nothing silent
def test_dropped_characters_are_reported():
    import warnings

    from vits_jax.tokenizer import UnknownCharactersError

    text = "Привет мир, hello."
    ref = VitsTokenizer.from_pretrained(str(MMS_ENG))(text).input_ids
    with pytest.warns(UserWarning, match="'п'.*'р'") as record:
        ids = Tokenizer.load(MMS_ENG).encode(text)
    assert ids == ref  # same ids as transformers, but not silently
    assert "','" not in str(record[0].message)  # punctuation is not speech: not reported
    with pytest.raises(UnknownCharactersError, match="'п'"):
        Tokenizer.load(MMS_ENG, on_unknown="error").encode(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Tokenizer.load(MMS_ENG, on_unknown="ignore").encode(text) == ref
        assert Tokenizer.load(MMS_ENG).encode("hello, world.") == Tokenizer.load(MMS_ENG).encode("hello world")
    with pytest.raises(ValueError, match="on_unknown"):
        Tokenizer.load(MMS_ENG, on_unknown="loud")


def test_fold_diacritics():
    tok = Tokenizer.load(MMS_ENG, fold_diacritics=True)
    with pytest.warns(UserWarning, match="replaced 'é' by 'e'"):
        assert tok.prepare_text("Café") == "cafe"
    assert Tokenizer.load(MMS_ENG, on_unknown="ignore").prepare_text("Café") == "caf"  # transformers


def test_expand_numbers():
    from num2words import num2words

    tok = Tokenizer.load(MMS_ENG, expand_numbers=True)
    text = "In 1997 at 8:45 I paid $3.50 for the 21st item, 1,234 times."
    prepared = tok.prepare_text(text)
    for words in (num2words(1997, to="year"), "eight forty-five", num2words(21, to="ordinal"),
                  num2words(1234), "three dollars"):
        assert words.replace(",", "") in prepared, (words, prepared)
    assert not any(c.isdigit() for c in prepared)
    assert Tokenizer.load(MMS_ENG, on_unknown="ignore").prepare_text("in 1997") == "in 1"  # off by default: only the 1 is in the vocabulary
    deu = Tokenizer(dict(Tokenizer.load(MMS_ENG).vocab), language="deu", phonemize=False,
                    expand_numbers=True, on_unknown="ignore")
    assert deu.number_language == "de"
    assert "neunzehnhundert" in deu.prepare_text("1997")


def test_encode_words_characters():
    tok = Tokenizer.load(MMS_ENG)
    text = "Hello  big, world"
    ids, spans = tok.encode_words(text)
    assert ids == tok.encode(text)
    assert [w for w, _, _ in spans] == ["Hello", "big,", "world"]
    for word, first, end in spans:
        letters = word.lower().strip(",")
        assert tok.decode([0] + ids[first:end] + [0]) == letters  # blanks interleaved inside
        assert (end - first) == 2 * len(letters) - 1
    assert spans[0][1] == 1 and spans[-1][2] == len(ids) - 1
