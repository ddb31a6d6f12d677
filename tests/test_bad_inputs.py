"""Bad input through every surface, one parametrized case per class, each asserting the kind of
outcome: a ValueError (or a named subclass) whose message names the problem (API); `error: ...`
on stderr, exit status 1, no traceback and the output file unchanged (CLI; 130 for Ctrl-C);
nothing deleted or overwritten without --overwrite (convert / save).

Sections: synthesize's arguments; text (Tokenizer, speak, `say`); `say`'s options and outputs;
model files (load and `say -m`); convert / save destinations; standard input and Ctrl-C.

Cheap by design: one tiny random model folder (and a 3-speaker one) per module; the CLI runs
in-process (`cli.main`) except where a real process is the point (signals, exit status).
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from cli_stages import Staged

from vits_jax.app import main as cli
from vits_jax import core, load, save
from vits_jax.synth import speech
from vits_jax.synth import voice as voicemod
from vits_jax.voice.checkpoint import DestinationError, convert_weights
from vits_jax.synth.synthesis import MAX_TOKENS, predict_durations, synthesize
from vits_jax.tokenizer import Tokenizer, UnknownCharactersError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEP = b"keep me"


@pytest.fixture(scope="module")
def models(tmp_path_factory, eng_single, eng_multi):
    """{"single", "multi" (3 speakers), "converted"}: folders of tiny random models with the
    MMS-eng tokenizer (38 symbols); "params" / "multi_params" loaded, "tok" its tokenizer."""
    single, multi = eng_single, eng_multi
    converted = str(tmp_path_factory.mktemp("models") / "converted")
    convert_weights(single, converted)
    return {"single": single, "multi": multi, "converted": converted, "params": load(single),
            "multi_params": load(multi), "tok": Tokenizer.load(single)}


def _output(tmp_path):
    """An existing output file that every failing command must leave as it is."""
    out = tmp_path / "out.wav"
    out.write_bytes(KEEP)
    return out


def _assert_untouched(out):
    assert out.read_bytes() == KEEP
    assert sorted(os.listdir(out.parent)) == [out.name], os.listdir(out.parent)   # no temporaries


def _cli_error(argv, capsys, *needles, status=1):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == status, (argv, code, err)
    assert err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _say_error(argv, out, capsys, *needles):
    _cli_error(["say", *argv, "-o", str(out), "--no-cache"], capsys, *needles)
    _assert_untouched(out)


# =================================================================== synthesize's arguments
IDS = np.arange(1, 7)[None]          # (1, 6)
TWO = np.arange(1, 7).reshape(2, 3)  # (2, 3)

# (case, model, keyword arguments of synthesize, message fragment)
API_CASES = [
    ("ids-empty", "params", dict(ids=[]), "empty input"),
    ("ids-empty-batch", "params", dict(ids=np.zeros((0, 4), int)), "empty input"),
    ("ids-out-of-range", "params", dict(ids=[1, 38]), "ids must lie in [0, vocab_size=38)"),
    ("ids-negative", "params", dict(ids=[1, -1]), "ids must lie in [0, vocab_size=38); got [-1]"),
    ("ids-float", "params", dict(ids=[1.0, 2.5]), "ids must be integers"),
    ("ids-bool", "params", dict(ids=[True, False]), "ids must be integers"),
    ("ids-text", "params", dict(ids="hello"), "ids must be integers"),
    ("ids-none", "params", dict(ids=None), "ids must be integers"),
    ("ids-3d", "params", dict(ids=np.ones((1, 2, 3), int)), "ids must have shape (batch, tokens)"),
    ("ids-ragged", "params", dict(ids=[[1, 2], [3]]), "ids must be a rectangular array"),
    ("ids-too-long", "params", dict(ids=np.ones(MAX_TOKENS + 1, int)), "input too long"),
    ("mask-shape", "params", dict(attention_mask=np.ones((1, 5))), "does not match ids shape"),
    ("mask-fraction", "params", dict(attention_mask=np.full((1, 6), 0.5)), "only 0 and 1"),
    ("mask-nan", "params", dict(attention_mask=np.full((1, 6), np.nan)), "only 0 and 1"),
    ("mask-all-zero", "params", dict(ids=TWO, attention_mask=[[1, 1, 0], [0, 0, 0]]), "rows [1] are all zero"),
    ("mask-ragged", "params", dict(ids=TWO, attention_mask=[[1, 1], [1]]),
     "attention_mask must be a rectangular array"),
    ("speaker-single-speaker-model", "params", dict(speaker_id=0), "single-speaker model"),
    ("speaker-out-of-range", "multi_params", dict(speaker_id=3), "speaker_id must lie in [0, 3)"),
    ("speaker-negative", "multi_params", dict(speaker_id=-1), "speaker_id must lie in [0, 3)"),
    ("speaker-float", "multi_params", dict(speaker_id=1.5), "speaker_id must be integers"),
    ("speaker-bool", "multi_params", dict(speaker_id=True), "speaker_id must be integers"),
    ("speaker-per-item-shape", "multi_params", dict(speaker_id=[0, 1]), "one id per batch item (1,)"),
    ("rate-zero", "params", dict(speaking_rate=0.0), "speaking_rate must be > 0"),
    ("rate-negative", "params", dict(speaking_rate=-1.0), "speaking_rate must be > 0"),
    ("rate-nan", "params", dict(speaking_rate=float("nan")), "speaking_rate must be finite"),
    ("rate-inf", "params", dict(speaking_rate=float("inf")), "speaking_rate must be finite"),
    ("rate-text", "params", dict(speaking_rate="fast"), "speaking_rate must be a number"),
    ("rate-per-item-shape", "params", dict(speaking_rate=[1.0, 2.0]), "speaking_rate must be a number or one per"),
    ("rate-beyond-float32", "params", dict(speaking_rate=1e39), "speaking_rate must be finite in float32"),
    ("rate-underflows-float32", "params", dict(speaking_rate=1e-40), "speaking_rate too small for float32"),
    ("rate-durations-overflow", "params", dict(speaking_rate=1e-30), "speaking_rate=[1e-30] is too small"),
    ("noise-negative", "params", dict(noise_scale=-0.1), "noise_scale must be >= 0"),
    ("noise-nan", "params", dict(noise_scale=float("nan")), "noise_scale must be finite"),
    ("noise-beyond-float32", "params", dict(noise_scale=1e39), "noise_scale must be finite in float32"),
    ("noise-non-finite-samples", "params", dict(noise_scale=3e38), "noise_scale=[3e+38] is too large"),
    ("duration-noise-negative", "params", dict(noise_scale_duration=-1.0), "noise_scale_duration must be >= 0"),
    ("duration-noise-inf", "params", dict(noise_scale_duration=float("inf")),
     "noise_scale_duration must be finite"),
    ("duration-noise-overflow", "params", dict(noise_scale_duration=1e30),
     "noise_scale_duration=[1e+30] is too large"),
    ("duration-noise-overflow-max-frames", "params", dict(noise_scale_duration=1e30, max_frames=32),
     "noise_scale_duration=[1e+30] is too large"),
    ("max-frames-zero", "params", dict(max_frames=0), "max_frames must be a positive int"),
    ("max-frames-negative", "params", dict(max_frames=-5), "max_frames must be a positive int"),
    ("max-frames-float", "params", dict(max_frames=32.0), "max_frames must be a positive int"),
    ("max-frames-bool", "params", dict(max_frames=True), "max_frames must be a positive int"),
    ("max-frames-text", "params", dict(max_frames="64"), "max_frames must be a positive int"),
    ("key-int-array", "params", dict(key=np.array([1, 2, 3])), "key must be a jax.random.key"),
    ("key-float", "params", dict(key=1.5), "key must be a jax.random.key"),
    ("key-per-item-count", "params", dict(key=jax.random.split(jax.random.key(0), 3)),
     "one key or one per batch item (1,)"),
    ("dtype-int8", "params", dict(dtype="int8"), "dtype must be one of float32, bfloat16, float16"),
    ("dtype-int32", "params", dict(dtype=np.int32), "dtype must be one of float32, bfloat16, float16"),
    ("dtype-bool", "params", dict(dtype=bool), "dtype must be one of float32, bfloat16, float16"),
    ("dtype-float64", "params", dict(dtype="float64"), "dtype must be one of float32, bfloat16, float16"),
    ("dtype-unknown", "params", dict(dtype="half-ish"), "dtype must be one of float32, bfloat16, float16"),
    ("sdp-noise-shape", "params", dict(sdp_noise=np.zeros((1, 6, 3))), "sdp_noise must have shape (1, length, 2)"),
    ("sdp-noise-short", "params", dict(sdp_noise=np.zeros((1, 2, 2))), "sdp_noise covers 2 tokens"),
    ("prior-noise-nan", "params", dict(prior_noise=np.full((1, 64, 8), np.nan)), "prior_noise must be finite"),
    ("mesh-and-devices", "params", dict(mesh=jax.sharding.Mesh(jax.devices()[:1], ("batch",)),
                                        devices=jax.devices()[:1]), "not both"),
]


@pytest.mark.parametrize("model,kwargs,message", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_synthesize_refuses(models, model, kwargs, message):
    kwargs = dict(kwargs)
    ids = kwargs.pop("ids", IDS)
    with pytest.raises(ValueError) as info:
        synthesize(models[model], ids, **kwargs)
    assert message in str(info.value), str(info.value)


def test_duration_overflow_names_the_option_and_the_item(models):
    # a batch where only item 1's duration noise is huge: that item and that option are named,
    # predict_durations says the same, and a plain dict without its config is refused
    with pytest.raises(ValueError) as info:
        synthesize(models["params"], TWO, noise_scale_duration=[0.5, 1e30])
    message = str(info.value)
    assert "items [1]" in message and "noise_scale_duration=[1e+30]" in message
    assert "speaking_rate" not in message
    with pytest.raises(ValueError, match=r"speaking_rate=\[1e-30\] is too small"):
        predict_durations(models["params"], IDS, speaking_rate=1e-30)
    with pytest.raises(ValueError, match="config=VitsConfig"):
        synthesize(dict(models["params"].tree), IDS)


def test_only_float_compute_dtypes():
    assert [core.check_dtype(d).name for d in (None, "float32", "bfloat16", np.float16)] == [
        "float32", "float32", "bfloat16", "float16"]
    with pytest.raises(ValueError, match="dtype must be one of"):
        core.check_dtype("int8")


# =================================================================== text
SILENT_TEXTS = [("empty", ""), ("whitespace", " \n\t "), ("punctuation", "...!?"), ("emoji", "🙂🙂"),
                ("other-script", "Привет мир")]


@pytest.mark.parametrize("text", [t for _, t in SILENT_TEXTS], ids=[n for n, _ in SILENT_TEXTS])
def test_text_without_speech_is_refused_everywhere(models, text, tmp_path, capsys):
    with warnings.catch_warnings():    # dropped characters are reported (test_dropped_characters_...);
        warnings.simplefilter("ignore", UserWarning)     # here the refusal is what counts
        with pytest.raises(ValueError, match="tokenizes to no ids"):
            models["tok"].encode(text)
        with pytest.raises(speech.NothingToSayError):
            speech.speak(models["params"], models["tok"], text)
    out = _output(tmp_path)
    needle = "empty text" if not text.strip() else "nothing this model can pronounce"
    _say_error([text, "-m", models["single"]], out, capsys, needle)


# (case, text, tokenizer options, the characters the warning must name, decoded ids)
DROPPED = [
    ("other-script-mixed", "Привет мир, hello.", {}, ["'п' (U+043F)"], "hello"),
    ("nul-byte", "hi\0there", {}, ["U+0000"], "hithere"),
    ("digits", "In 1997", {}, ["'9' (U+0039)", "'7' (U+0037)"], "in 1"),
    ("diacritics", "Café", {}, ["'é' (U+00E9)"], "caf"),
    ("diacritics-folded", "Café", dict(fold_diacritics=True), ["replaced 'é' by 'e'"], "cafe"),
]


@pytest.mark.parametrize("text,options,named,decoded", [c[1:] for c in DROPPED], ids=[c[0] for c in DROPPED])
def test_dropped_characters_are_reported(models, text, options, named, decoded):
    tok = Tokenizer.load(models["single"], **options)
    with pytest.warns(UserWarning) as record:
        ids = tok.encode(text)
    message = " ".join(str(w.message) for w in record)
    assert all(n in message for n in named), message
    assert tok.decode(ids) == decoded
    strict = Tokenizer.load(models["single"], on_unknown="error", **options)
    if "replaced" in named[0]:
        with pytest.warns(UserWarning, match="replaced"):        # folding is reported, even strict
            assert strict.decode(strict.encode(text)) == decoded  # folding loses no letter
    else:
        with pytest.raises(UnknownCharactersError, match=r"on_unknown='warn' or 'ignore'"):
            strict.encode(text)


def test_numbers_are_spoken_with_expand_numbers(models):
    tok = Tokenizer.load(models["single"], expand_numbers=True)
    assert tok.decode(tok.encode("In 1997 at 8:45")) == "in nineteen ninety-seven at eight forty-five"
    quiet = Tokenizer.load(models["single"], on_unknown="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # on_unknown="ignore": silent
        assert quiet.decode(quiet.encode("In 1997")) == "in 1"   # transformers' ids, on request
    with pytest.raises(ValueError, match="on_unknown must be one of"):
        Tokenizer.load(models["single"], on_unknown="shout")


def test_a_very_long_word_is_split_within_the_limit(models):
    # one 20,000-letter "word": split between letters, nothing lost, each piece within max_tokens
    # (the splitter is linear: this took minutes when it was quadratic)
    from vits_jax.tokenizer.sentences import split_text

    word = "abcdefghij" * 2000
    count = lambda s: len(models["tok"].tokenize(s))   # noqa: E731
    pieces = split_text(word, 200, count=count)
    assert "".join(pieces) == word and all(count(p) <= 200 for p in pieces)


def test_speak_batch_size(models):
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        speech.speak(models["params"], models["tok"], "Hello.", batch_size=0)


# =================================================================== say: options and outputs
# (case, argv after the text and -m, message fragment); every one is refused before synthesis
OPTION_CASES = [
    ("rate-zero", ["--rate", "0"], "--rate must be a positive number"),
    ("rate-negative", ["--rate", "-2"], "--rate must be a positive number"),
    ("rate-nan", ["--rate", "nan"], "--rate must be a positive number, got nan"),
    ("rate-inf", ["--rate", "inf"], "--rate must be a positive number, got inf"),
    ("noise-negative", ["--noise-scale", "-1"], "--noise-scale must be a number >= 0"),
    ("noise-nan", ["--noise-scale", "nan"], "--noise-scale must be a number >= 0"),
    ("duration-noise-negative", ["--noise-scale-duration", "-0.5"], "--noise-scale-duration must be"),
    ("duration-noise-inf", ["--noise-scale-duration", "inf"], "--noise-scale-duration must be"),
    ("pause-negative", ["--pause", "-1"], "--pause must be a number >= 0"),
    ("pause-nan", ["--pause", "nan"], "--pause must be a number >= 0"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("batch-size-negative", ["--batch-size", "-3"], "--batch-size must be >= 1"),
    ("max-tokens-small", ["--max-tokens", "4"], "--max-tokens must be in [8, 2048]"),
    ("max-tokens-large", ["--max-tokens", "5000"], "--max-tokens must be in [8, 2048]"),
    ("seed-negative", ["--seed", "-1"], "--seed must be in [0, 2**32)"),
    ("seed-too-large", ["--seed", str(2 ** 32)], "--seed must be in [0, 2**32)"),
    ("speaker-on-single-speaker", ["--speaker", "1"], "has a single speaker"),
    ("speaker-out-of-range", ["--speaker", "3", "-m", "multi"], "--speaker 3 is out of range"),
    ("speaker-negative", ["--speaker", "-1", "-m", "multi"], "--speaker -1 is out of range"),
]


@pytest.mark.parametrize("argv,message", [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES])
def test_say_refuses_option(models, tmp_path, capsys, argv, message):
    argv = [models.get(a, a) if argv[i - 1:i] == ["-m"] else a for i, a in enumerate(argv)]
    model = [] if "-m" in argv else ["-m", models["single"]]
    _say_error(["Hello.", *model, *argv], _output(tmp_path), capsys, message)


@pytest.mark.parametrize("argv", [["--speaker", "1.5"], ["--rate", "fast"], ["--seed", "x"]],
                         ids=["speaker-float", "rate-text", "seed-text"])
def test_say_usage_errors_exit_1(models, tmp_path, capsys, argv):
    # option values argparse cannot parse: an `error:` line naming the value, status 1, as every user error
    out = _output(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["say", "Hello.", "-m", models["single"], "-o", str(out), *argv])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and "invalid" in err and "Traceback" not in err
    _assert_untouched(out)


@pytest.mark.parametrize("option,value,message", [
    ("--noise-scale-duration", "1e30", "noise_scale_duration=[1e+30] is too large"),
    ("--rate", "1e-30", "speaking_rate=[1e-30] is too small"),
], ids=["duration-noise-overflow", "rate-overflow"])
def test_say_names_the_option_that_overflows(models, tmp_path, capsys, option, value, message):
    _say_error(["Hello.", "-m", models["single"], option, value], _output(tmp_path), capsys, message)


@pytest.mark.parametrize("make,message", [
    (lambda d: "", "output file name is empty"),
    (lambda d: "   ", "output file name is empty"),
    (lambda d: str(d), "is a folder"),
    (lambda d: str(d / "missing" / "x.wav"), "does not exist"),
    (lambda d: str(d / "out.wav" / "x.wav"), "does not exist"),
    (lambda d: "/proc/vits-jax-test.wav", "cannot write /proc/vits-jax-test.wav"),
    (lambda d: str(d / ("n" * 250 + ".wav")), "File name too long"),
    (lambda d: str(d / "a\0b.wav"), "NUL"),
    (lambda d: str(d / "out.txt"), "cannot write .txt files; the supported extensions are .wav, .flac, .ogg"),
    (lambda d: str(d / "out"), "cannot write a file name without an extension; the supported extensions are .wav"),
], ids=["empty", "blank", "a-folder", "missing-folder", "under-a-file", "unwritable", "name-too-long", "nul",
        "other-extension", "no-extension"])
def test_say_refuses_unusable_outputs_before_any_work(models, tmp_path, capsys, monkeypatch, make, message):
    def no_work(*args, **kwargs):
        raise AssertionError("the model was opened before the output path was checked")

    monkeypatch.setattr(voicemod, "locate", no_work)
    out = _output(tmp_path)
    _cli_error(["say", "Hello.", "-m", models["single"], "-o", make(tmp_path), "--no-cache"], capsys, message)
    _assert_untouched(out)


# =================================================================== model files
def _bin(obj):
    def write(folder):
        import torch

        os.remove(folder / "model.safetensors")
        if isinstance(obj, bytes):
            (folder / "pytorch_model.bin").write_bytes(obj)
        else:
            torch.save(obj, folder / "pytorch_model.bin")
    return write


def _tensors(change):
    def write(folder):
        from safetensors.numpy import load_file, save_file

        state = load_file(folder / "model.safetensors")
        change(state)
        save_file(state, folder / "model.safetensors")
    return write


def _set(name, value):
    def change(state):
        state[name] = state[name].copy()
        state[name].flat[1] = value
    return change


class _Exploit:
    """A pickle that would run a shell command when unpickled by an unsafe reader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _config(change):
    def write(folder):
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(change(data)))
    return write


# (case, how the copy of the tiny model is spoilt, error type of load(), message fragment)
FILE_CASES = [
    ("no-weights", lambda d: os.remove(d / "model.safetensors"), FileNotFoundError,
     "no model.safetensors or pytorch_model.bin"),
    ("safetensors-empty", lambda d: (d / "model.safetensors").write_bytes(b""), ValueError, "is empty"),
    ("safetensors-truncated", lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:5000]), ValueError, "not a readable safetensors file"),
    ("safetensors-garbage", lambda d: (d / "model.safetensors").write_bytes(os.urandom(3000)), ValueError,
     "not a readable safetensors file"),
    ("config-not-json", lambda d: (d / "config.json").write_text("{hidden_size: 16"), ValueError,
     "config.json is not valid JSON"),
    ("config-a-list", lambda d: (d / "config.json").write_text("[]"), ValueError,
     "config must be a JSON object of fields, got list"),
    ("config-string-field", _config(lambda c: {**c, "hidden_size": "192"}), ValueError,
     "config field hidden_size must be an integer, got '192' (str)"),
    ("config-negative-field", _config(lambda c: {**c, "num_hidden_layers": -2}), ValueError,
     "config field num_hidden_layers must be > 0"),
    ("config-mismatches-weights", _config(lambda c: {**c, "hidden_size": 32}), ValueError, "mis-shaped"),
    ("weights-missing-tensor", _tensors(lambda s: s.pop("decoder.conv_pre.bias")), ValueError, "missing (1)"),
    ("weights-unexpected-tensor", _tensors(lambda s: s.update(extra=np.zeros(3, np.float32))), ValueError,
     "unexpected (1)"),
    ("weights-nan", _tensors(_set("decoder.conv_pre.bias", np.nan)), ValueError,
     "non-finite (1):\n    decoder.conv_pre.bias: 1 of"),
    ("weights-inf", _tensors(_set("text_encoder.project.bias", np.inf)), ValueError,
     "text_encoder.project.bias: 1 of"),
    ("bin-holds-a-string", _bin("hello"), ValueError, "does not hold a state dict (got str)"),
    ("bin-holds-an-int", _bin(7), ValueError, "does not hold a state dict (got int)"),
    ("bin-garbage", _bin(b"\x80\x02garbage" * 50), ValueError, "not a readable PyTorch weights file"),
]


@pytest.mark.parametrize("spoil,error,message", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_model_files(models, tmp_path, capsys, spoil, error, message):
    folder = tmp_path / "model"
    shutil.copytree(models["single"], folder)
    spoil(folder)
    with pytest.raises(error) as info:
        load(str(folder))
    assert message in str(info.value) and str(folder) in str(info.value), str(info.value)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _say_error(["Hello.", "-m", str(folder)], _output(out_dir), capsys, message.split("\n")[0])
    assert not (tmp_path / "converted").exists()
    assert _convert_main([str(folder), str(tmp_path / "converted")], capsys) == 1
    assert not (tmp_path / "converted").exists()                  # a failed conversion leaves nothing


def test_malicious_pickle_is_refused_and_never_run(models, tmp_path, capsys):
    marker = tmp_path / "pwned"
    folder = tmp_path / "model"
    shutil.copytree(models["single"], folder)
    _bin({"decoder.conv_pre.bias": _Exploit(marker)})(folder)
    with pytest.raises(ValueError) as info:
        load(str(folder))
    message = str(info.value)
    assert "holds non-tensor objects" in message and "not loaded for safety" in message, message
    assert "weights_only" not in message
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _say_error(["Hello.", "-m", str(folder)], _output(out_dir), capsys, "not loaded for safety")
    assert not marker.exists()


@pytest.mark.parametrize("spoil,message", [
    (lambda d: os.remove(d / "vocab.json"), "no vocab.json"),
    (lambda d: (d / "vocab.json").write_text('{"a": 1,'), "vocab.json is not valid JSON"),
    (lambda d: (d / "vocab.json").write_bytes(b'{"\xff": 1}'), "vocab.json is not UTF-8 text"),
], ids=["vocab-missing", "vocab-not-json", "vocab-not-utf8"])
def test_bad_tokenizer_files(models, tmp_path, capsys, spoil, message):
    folder = tmp_path / "model"
    shutil.copytree(models["single"], folder)
    spoil(folder)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _say_error(["Hello.", "-m", str(folder)], _output(out_dir), capsys, message)


def test_missing_models_are_named(tmp_path, capsys, monkeypatch):
    from vits_jax.voice import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "_hub_reachable", lambda *a, **k: False)
    (tmp_path / "empty").mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = _output(out_dir)
    for model, message in [("./nowhere", "is neither a folder nor a hub id"),
                           ("models/mine", "'models/mine' is not a local folder (no such file or folder "
                                           "exists here"),
                           ("empty", "no config.json: not a VITS model folder")]:
        with pytest.raises(hub.ModelNotFoundError, match=message.split("(")[0]):
            load(model)
        _say_error(["Hello.", "-m", model], out, capsys, message)


# =================================================================== convert / save destinations
def _convert_main(argv, capsys):
    from convert.__main__ import main

    return main(argv)


def _snapshot(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}


@pytest.mark.parametrize("where", ["unrelated-folder", "current-folder", "source-itself", "inside-source",
                                   "holds-source", "checkpoint-without-overwrite"])
def test_convert_never_replaces_what_it_did_not_write(models, tmp_path, capsys, monkeypatch, where):
    src = tmp_path / "src"
    shutil.copytree(models["single"], src)
    other = tmp_path / "other"
    other.mkdir()
    (other / "important.txt").write_text("mine")
    dst = {"unrelated-folder": other, "current-folder": ".", "source-itself": src,
           "inside-source": src / "sub", "holds-source": tmp_path,
           "checkpoint-without-overwrite": tmp_path / "ckpt"}[where]
    if where == "checkpoint-without-overwrite":
        shutil.copytree(models["converted"], dst)
    monkeypatch.chdir(other)
    before = _snapshot(tmp_path)
    message = {"unrelated-folder": "exists", "current-folder": "exists",
               "checkpoint-without-overwrite": "exists; pass overwrite=True (--overwrite)"}.get(
        where, "is, contains or lies inside the source")
    assert _convert_main([str(src), str(dst)], capsys) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    if where in ("unrelated-folder", "current-folder"):          # even --overwrite: not a checkpoint
        assert _convert_main([str(src), str(dst), "--overwrite"], capsys) == 1
        assert "not a vits-jax checkpoint" in capsys.readouterr().err
    with pytest.raises(DestinationError):
        convert_weights(str(src), str(dst))
    assert _snapshot(tmp_path) == before                        # nothing deleted, written or left
    if where in ("unrelated-folder", "source-itself", "checkpoint-without-overwrite"):   # so does vits-jax
        _cli_error(["convert", str(src), str(dst)], capsys)
        assert _snapshot(tmp_path) == before


def test_overwrite_replaces_only_a_checkpoint_and_an_interrupt_keeps_the_old_one(models, tmp_path, capsys,
                                                                                 monkeypatch):
    dst = tmp_path / "ckpt"
    shutil.copytree(models["converted"], dst)
    (dst / "marker").write_text("old")
    from vits_jax import config as config_module

    def interrupted(self, path):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(config_module.VitsConfig, "to_json", interrupted)
        assert _convert_main([models["single"], str(dst), "--overwrite"], capsys) == 130
        assert "the destination was not changed" in capsys.readouterr().err
    assert (dst / "marker").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["ckpt"]
    with pytest.raises(DestinationError, match="pass overwrite=True"):
        save(models["params"], dst)
    other = tmp_path / "other"
    other.mkdir()
    (other / "important.txt").write_text("mine")
    with pytest.raises(DestinationError, match="not a vits-jax checkpoint"):
        save(models["params"], other, overwrite=True)
    assert (other / "important.txt").read_text() == "mine"
    assert _convert_main([models["single"], str(dst), "--overwrite"], capsys) == 0
    assert not (dst / "marker").exists() and (dst / "params").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "other"]     # no partial folders left
    assert _convert_main([models["single"], "/proc/vits-jax-ckpt"], capsys) == 1
    assert capsys.readouterr().err.startswith("error: ")


# =================================================================== standard input and Ctrl-C
@pytest.mark.parametrize("data,message", [(b"\xff\xfehello", "standard input is not UTF-8"),
                                          (b"", "empty text"), (b" \n\n\t", "empty text")],
                         ids=["invalid-utf8", "empty", "whitespace"])
def test_say_reads_standard_input_safely(models, tmp_path, capsys, monkeypatch, data, message):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    _say_error(["-", "-m", models["single"]], _output(tmp_path), capsys, message)


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("VITS_JAX_DEBUG", None)
    return env


def test_process_exit_status_and_ctrl_c(models, tmp_path):
    """As a real process: invalid UTF-8 bytes on standard input exit 1 with one `error:` line;
    Ctrl-C while it waits on standard input exits 130; the output is untouched by both."""
    out = _output(tmp_path)
    exe = [sys.executable, "-m", "vits_jax", "say", "-", "-m", models["single"], "-o", str(out), "--no-cache"]
    proc = subprocess.run(exe, input=b"caf\xe9 \x00\xff", capture_output=True, cwd=ROOT, env=_env(), timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.startswith("error: standard input is not UTF-8") and "Traceback" not in err
    _assert_untouched(out)
    # the same command, which says when it starts reading standard input (tests/cli_stages.py)
    run = Staged(exe[3:], stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_env())
    proc = run.proc
    try:
        run.wait_for("stdin", timeout=300)
        run.blocked()                                     # in the read itself, where /proc shows it
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        run.close()
        proc.stdin.close()
    err = proc.stderr.read().decode()                     # ended: read to its end at once
    proc.stderr.close()
    # 130; or, rarely under load, main's "interrupted" and then an end by SIGINT itself, which a
    # shell reports as 130 too (a redelivered SIGINT after main returned; see common.Interrupt)
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err)
    assert "interrupted" in err and "Traceback" not in err, (proc.returncode, err)
    _assert_untouched(out)
