"""The `vits-jax` command (cli.py), sentence splitting (text.py) and WAV writing (audio.py).

A few runs go through a real subprocess (console script, stdin/stdout, exit codes, the
compilation cache, no traceback on user errors); the rest call `main(argv)` in this process with
`--no-cache`, so JAX starts once. Models are small random transformers models with the real
MMS-eng tokenizer files (38 symbols) beside them.
"""

import io
import os
import shutil
import stat
import subprocess
import sys
import time
import wave

import jax
import numpy as np
import pytest
from conftest import hf_model, small_config

from vits_jax import audio, cli, text
from vits_jax.synthesis import synthesize
from vits_jax.tokenizer import Tokenizer

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mms-tts-eng")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "special_tokens_map.json")
# Three sentences of 39 to 47 token ids: one token bucket, so few programs to compile.
THREE = "The brown fox jumps. Over the lazy dog, twice! And then what happened?"


def _save(model, folder):
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(FIXTURES, name), folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{"single": folder, "multi": folder (3 speakers)}: transformers folders with tokenizer files."""
    root = tmp_path_factory.mktemp("models")
    single = hf_model(3, **small_config(vocab_size=38))
    multi = hf_model(4, **small_config(vocab_size=38, num_speakers=3, speaker_embedding_size=4))
    return {"single": _save(single, root / "single"), "multi": _save(multi, root / "multi")}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One compilation cache for this module's subprocesses (never the home folder)."""
    return str(tmp_path_factory.mktemp("jax-cache"))


def _env(cache_dir, **extra):
    env = dict(os.environ, VITS_JAX_CACHE_DIR=cache_dir, HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu")
    env.pop("VITS_JAX_DEBUG", None)
    env.update(extra)
    return env


def _run(args, cache_dir, *, stdin=None, env=None, script=False):
    exe = [os.path.join(os.path.dirname(sys.executable), "vits-jax")] if script else \
        [sys.executable, "-m", "vits_jax.cli"]
    return subprocess.run(exe + list(args), input=stdin, capture_output=True, cwd=ROOT,
                          env=env or _env(cache_dir), timeout=120)


def _say(argv):
    """main(["say", ...]) in this process, without touching the compilation cache. Batches of 2,
    as in test_speak..., so the programs compiled there serve every in-process run."""
    return cli.main(["say", *argv, "--no-cache", "--batch-size", "2"])


def _wav(path):
    with wave.open(path if hasattr(path, "read") else str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getcomptype() == "NONE"
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _assert_clean_error(proc, *needles):
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------------ text.py
def test_split_sentences():
    got = text.split_sentences('Hello Mr. Smith. How are you?  I am fine!!! Pi is 3.14, e.g. this.'
                               ' "Quoted." Wait… Last one')
    assert got == ["Hello Mr. Smith.", "How are you?", "I am fine!!!", "Pi is 3.14, e.g. this.",
                   '"Quoted."', "Wait…", "Last one"]
    # a single newline is a space, a blank line ends a paragraph (and a sentence)
    assert text.split_sentences("One line\nwrapped here.\n\n  Next paragraph") == [
        "One line wrapped here.", "Next paragraph"]
    assert text.split_sentences("你好。世界！ ok") == ["你好。", "世界！", "ok"]
    assert text.split_sentences("So am I. J. R. R. Tolkien wrote; we read. No. Fine") == [
        "So am I.", "J. R. R. Tolkien wrote; we read.", "No.", "Fine"]
    assert text.split_sentences("") == [] and text.split_sentences(" \n\n ") == []


def test_split_long_respects_the_limit_and_keeps_every_word():
    tok = Tokenizer.load(FIXTURES)
    count = lambda s: len(tok.encode(s))  # noqa: E731
    sentence = ("it was the best of times, it was the worst of times, it was the age of wisdom, "
                "it was the age of foolishness and of everything else that happened then")
    pieces = text.split_long(sentence, max_tokens=61, count=count)
    assert len(pieces) > 2 and all(count(p) <= 61 for p in pieces)
    assert " ".join(pieces) == sentence                     # nothing lost, nothing reordered
    assert pieces[0] == "it was the best of times,"          # clause boundaries come first
    # a sentence within the limit stays whole; a word longer than the limit is cut
    assert text.split_long("short one", 61, count) == ["short one"]
    cut = text.split_long("a" * 50, max_tokens=41)           # default count: 2 * chars + 1
    assert "".join(cut) == "a" * 50 and all(2 * len(p) + 1 <= 41 for p in cut)
    both = text.split_text("Short! " + sentence, max_tokens=61, count=count)
    assert both[0] == "Short!" and both[1:] == pieces


def test_prepare_pieces_drops_silent_pieces_and_rejects_empty_text():
    tok = Tokenizer.load(FIXTURES)
    pieces, ids = cli.prepare_pieces(tok, "Hello there. ... !!! How are you?")
    assert pieces == ["Hello there.", "How are you?"]
    assert ids == [tok.encode(p) for p in pieces]
    for bad, message in (("", "empty text"), ("  \n", "empty text"), ("?!... ;", "nothing this model")):
        with pytest.raises(cli.CliError, match=message):
            cli.prepare_pieces(tok, bad)


# ------------------------------------------------------------------ audio.py
def test_wav_round_trip_clipping_and_format(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -7.0, 1e-6], np.float32)
    path = tmp_path / "a.wav"
    audio.write_wav(path, x, 22050)
    rate, pcm = _wav(path)
    assert rate == 22050
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, -32767, 32767, -32767, 0])
    y, rate = audio.read_wav(path)
    assert rate == 22050 and y.dtype == np.float32 and np.max(np.abs(y - np.clip(x, -1, 1))) < 1e-4
    assert audio.wav_bytes(x, 22050) == path.read_bytes()
    assert oct(stat.S_IMODE(os.stat(path).st_mode)) == oct(0o666 & ~_umask())
    with pytest.raises(ValueError, match="mono"):
        audio.to_pcm16(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        audio.to_pcm16(np.array([0.0, np.nan]))
    with pytest.raises(IsADirectoryError):
        audio.write_wav(tmp_path, x, 16000)
    np.testing.assert_array_equal(audio.concatenate([np.ones(2), np.ones(3)], 2), [1, 1, 0, 0, 1, 1, 1])


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_wav_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.wav"
    path.write_bytes(b"previous contents")
    os.chmod(path, 0o640)

    def broken(f, pcm, rate):
        f.write(b"RIFF half a header")
        raise OSError("disk full")

    monkeypatch.setattr(audio, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        audio.write_wav(path, np.zeros(100), 16000)
    assert path.read_bytes() == b"previous contents"
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]      # the temporary file is gone
    monkeypatch.undo()
    audio.write_wav(path, np.zeros(100), 16000)             # replaced; permission bits kept
    assert _wav(path)[1].shape == (100,) and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("VITS_JAX_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.default_cache_dir() == os.path.join(str(tmp_path), ".cache", "vits-jax", "jax")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert cli.default_cache_dir() == "/xdg/vits-jax/jax"
    monkeypatch.setenv("VITS_JAX_CACHE_DIR", "/elsewhere")
    assert cli.default_cache_dir() == "/elsewhere"


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class Stderr(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Stderr())
    bar = cli._progress(5, enabled=True)
    assert type(bar).__name__ == "tqdm"
    bar.update(5)
    bar.close()
    assert "0/5" in sys.stderr.getvalue()
    for total, enabled in ((5, False), (1, True)):          # off, or a single sentence
        assert type(cli._progress(total, enabled)).__name__ == "_Null"
    monkeypatch.setattr(sys, "stderr", io.StringIO())        # not a terminal
    assert type(cli._progress(5, enabled=True)).__name__ == "_Null"


# ------------------------------------------------------------------ speak(): text -> waveform
def test_speak_joins_sentences_in_order_independent_of_batching(models):
    params, tok = cli.load_model(models["single"])
    speech = cli.speak(params, tok, THREE, seed=5, batch_size=2, pause=0.25)
    assert speech.pieces == ["The brown fox jumps.", "Over the lazy dog, twice!", "And then what happened?"]
    assert speech.pause_samples == 4000 and speech.sampling_rate == 16000
    assert len(speech.waveform) == sum(speech.lengths) + 2 * 4000
    # each piece, in reading order, is what synthesize makes of it alone with the key
    # fold_in(key(seed), index); so sorting, batching and the padding row change nothing
    start = 0
    for i, piece in enumerate(speech.pieces):
        ids, mask = tok(piece)
        alone = synthesize(params, ids, attention_mask=mask,
                           key=jax.random.fold_in(jax.random.key(5), i)[None])
        n = int(alone.lengths[0])
        assert speech.lengths[i] == n > 0
        np.testing.assert_allclose(speech.waveform[start:start + n], alone.waveform[0, :n], atol=1e-6)
        start += n
        if i < 2:
            assert not np.any(speech.waveform[start:start + 4000])   # the pause is silence
            start += 4000


# ------------------------------------------------------------------ the command, in process
def test_say_seeds_rate_and_format(models, tmp_path):
    out = {name: tmp_path / f"{name}.wav" for name in ("a", "a2", "seed1", "slow")}
    assert _say([THREE, "-m", models["single"], "-o", str(out["a"])]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(out["a2"]), "--seed", "0"]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(out["seed1"]), "--seed", "1"]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(out["slow"]), "--rate", "0.5"]) == 0
    rate, a = _wav(out["a"])
    assert rate == 16000 and a.size > 2 * 4000                   # 3 sentences, 2 pauses
    assert out["a"].read_bytes() == out["a2"].read_bytes()      # same seed (0 is the default)
    assert out["a"].read_bytes() != out["seed1"].read_bytes()   # different seed
    assert _wav(out["slow"])[1].size > a.size                    # half the rate: longer
    params, tok = cli.load_model(models["single"])
    speech = cli.speak(params, tok, THREE, seed=0, batch_size=2)
    assert out["a"].read_bytes() == audio.wav_bytes(speech.waveform, 16000)


def test_say_speakers(models, tmp_path):
    paths = [tmp_path / f"s{i}.wav" for i in range(3)]
    for i, p in enumerate(paths):
        assert _say(["The brown fox jumps.", "-m", models["multi"], "-o", str(p), "--speaker", str(i)]) == 0
    sounds = [p.read_bytes() for p in paths]
    assert len(set(sounds)) == 3


def test_say_errors_in_process(models, tmp_path, capsys):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    cases = [
        (["Hi.", "-m", models["multi"], "--speaker", "3"], "out of range: model"),
        (["Hi.", "-m", models["single"], "--speaker", "1"], "single speaker"),
        (["", "-m", models["single"]], "empty text"),
        (["...", "-m", models["single"]], "nothing this model can pronounce"),
        (["Hi.", "-m", str(tmp_path / "missing")], "neither a folder nor a hub id"),
        (["Hi.", "-m", str(tmp_path)], "no config.json"),
        (["Hi.", "-m", models["single"], "--rate", "0"], "--rate must be a positive number"),
        (["Hi.", "-m", models["single"], "--noise-scale", "-1"], "--noise-scale must be"),
        (["Hi.", "-m", models["single"], "--max-tokens", "4"], "--max-tokens must be"),
    ]
    for argv, message in cases:
        assert _say([*argv, "-o", str(out)]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (argv, err)
        assert out.read_bytes() == b"keep me"
    assert _say(["Hi.", "-m", models["single"], "-o", str(tmp_path / "no" / "x.wav")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]
    with pytest.raises(SystemExit):                          # argparse: exclusive options
        cli.main(["say", "Hi.", "-o", str(out), "--no-cache", "--cache-dir", str(tmp_path)])
    with pytest.raises(cli.CliError, match="batch size must be >= 1"):
        cli.speak(None, Tokenizer.load(FIXTURES), "Hi.", batch_size=0)
    no_vocab = tmp_path / "no_vocab"
    shutil.copytree(models["single"], no_vocab)
    os.remove(no_vocab / "vocab.json")
    assert _say(["Hi.", "-m", str(no_vocab), "-o", str(out)]) == 1
    assert "no vocab.json" in capsys.readouterr().err


def test_convert_then_say_gives_the_same_wav(models, tmp_path, capsys):
    dst = tmp_path / "converted"
    assert cli.main(["convert", models["single"], str(dst)]) == 0
    assert "converted" in capsys.readouterr().out
    assert os.path.isdir(dst / "params") and os.path.isfile(dst / "vocab.json")
    a, b = tmp_path / "from_hf.wav", tmp_path / "from_converted.wav"
    assert _say([THREE, "-m", models["single"], "-o", str(a)]) == 0
    assert _say([THREE, "-m", str(dst), "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    # a converted checkpoint may be replaced; any other existing folder is refused
    assert cli.main(["convert", models["single"], str(dst)]) == 0
    assert cli.main(["convert", models["single"], models["multi"]]) == 1
    assert "not a vits-jax checkpoint" in capsys.readouterr().err
    assert cli.main(["convert", models["single"], models["single"]]) == 1
    assert "same folder" in capsys.readouterr().err


def test_info(models, capsys):
    assert cli.main(["info", models["multi"]]) == 0
    out = capsys.readouterr().out
    params, tok = cli.load_model(models["multi"])
    assert f"{params.num_parameters():,}" in out
    for line in ("sampling rate: 16000 Hz", "speakers:      3", "vocab size:    38",
                 "format:        transformers (model.safetensors)"):
        assert line in out, out
    assert '"k", "\'", "z"' in out                           # symbols in id order
    assert cli.main(["info", models["single"], "--json"]) == 0
    import json
    d = json.loads(capsys.readouterr().out)
    assert d["num_speakers"] == 1 and d["vocab_size"] == 38 and len(d["symbols"]) == 38
    assert d["sampling_rate"] == 16000 and d["config"]["hidden_size"] == 16


# ------------------------------------------------------------------ the command, as a process
def test_console_script_writes_wav_and_fills_the_cache(models, cache_dir, tmp_path):
    out = tmp_path / "hello.wav"
    proc = _run(["say", THREE, "-m", models["single"], "-o", str(out), "--cache-dir", cache_dir],
                None, env=_env(str(tmp_path / "unused")), script=True)
    assert proc.returncode == 0, proc.stderr.decode()
    rate, pcm = _wav(out)
    assert rate == 16000 and pcm.size > 2 * 4000
    assert "wrote" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
    assert any(name.startswith("jit__") for name in os.listdir(cache_dir))  # programs written
    assert not os.path.exists(tmp_path / "unused")                         # --cache-dir beats the env
    assert sorted(os.listdir(tmp_path)) == ["hello.wav"]                   # no temporary left


def test_stdin_to_stdout_matches_in_process(models, cache_dir, tmp_path):
    proc = _run(["say", "-", "-m", models["single"], "-o", "-"], cache_dir, stdin=THREE.encode())
    assert proc.returncode == 0, proc.stderr.decode()
    assert os.listdir(cache_dir)                          # via $VITS_JAX_CACHE_DIR
    params, tok = cli.load_model(models["single"])
    speech = cli.speak(params, tok, THREE, seed=0, batch_size=2)      # any batch size: same audio
    assert proc.stdout == audio.wav_bytes(speech.waveform, 16000)
    rate, pcm = _wav(io.BytesIO(proc.stdout))
    assert rate == 16000 and pcm.size == sum(speech.lengths) + 2 * 4000


def test_process_errors_are_clean_and_leave_the_output_alone(models, cache_dir, tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    proc = _run(["say", "Hi.", "-m", models["multi"], "-o", str(out), "--speaker", "7"], cache_dir)
    _assert_clean_error(proc, "--speaker 7", "3 speakers")
    assert out.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["out.wav"]
    # the default model is a hub id: offline that fails at once, saying how to pass a folder
    start = time.perf_counter()
    proc = _run(["say", "Hi.", "-o", str(tmp_path / "hub.wav")], cache_dir,
                env=_env(cache_dir, HF_HOME=str(tmp_path / "hf")))
    _assert_clean_error(proc, "facebook/mms-tts-eng", "-m FOLDER")
    assert time.perf_counter() - start < 60
    assert not os.path.exists(tmp_path / "hub.wav")


def test_missing_relative_folder_is_named_as_such(tmp_path, monkeypatch):
    # "models/mine" reads as a hub id too; offline the message must still say it is no local folder.
    from vits_jax import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(hub.ModelNotFoundError) as info:
        hub.resolve("models/mine")
    message = str(info.value)
    assert "'models/mine' is not a local folder" in message and "pass a local model folder" in message
