"""`vits-jax export VOICE DIR`: a converted folder plus serialized programs; `Voice.load(DIR)` and
`say -m DIR` run them (not the traced stage functions) for the shapes they cover, the same audio as
the source folder's, and fall back to the jitted programs elsewhere. Lowering for cuda and tpu
needs no such device, so the folder is exported for all three here."""

import json
import os
import shutil
import warnings

import jax
import numpy as np
import pytest
from conftest import assert_waveform_close, small_config

import vits_jax
from vits_jax.app import main as cli
from vits_jax.synth import exported, synthesis
from vits_jax.voice.sources import CONVERTED, EXPORTED, describe_source

# test_readme's model (the same folder: model_folder shares it): one layer or flow per block
TINY = small_config(vocab_size=38, num_hidden_layers=1, prior_encoder_num_flows=1,
                    duration_predictor_num_flows=1, resblock_kernel_sizes=[3],
                    resblock_dilation_sizes=[[1]], upsample_rates=[8], upsample_kernel_sizes=[16])
TEXT = "Hi. Bye."          # two sentences of 7 and 9 tokens: token bucket 16, a batch of 2
PLATFORMS = ["cpu", "cuda", "tpu"]


@pytest.fixture(scope="module")
def source(model_folder):
    return model_folder(7, **TINY)


@pytest.fixture(scope="module")
def folder(source, tmp_path_factory):
    """The source exported for cpu, cuda and tpu, token bucket 16 only (25 programs)."""
    dst = tmp_path_factory.mktemp("exported") / "voice"
    assert cli.main(["export", source, str(dst), "--platforms", ",".join(PLATFORMS), "--buckets", "16"]) == 0
    return str(dst)


@pytest.fixture(scope="module")
def voices(folder, source):
    """(the exported folder's Voice, the source folder's Voice), shared: their programs compile once."""
    return vits_jax.Voice.load(folder), vits_jax.Voice.load(source)


def _manifest(folder):
    with open(os.path.join(folder, "programs", "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


class _Counted:
    """A jitted stage program that counts its calls (synthesize looks it up at each call)."""

    def __init__(self, program):
        self.program, self.calls = program, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.program(*args, **kwargs)


@pytest.fixture
def jitted(monkeypatch):
    counted = {name: _Counted(getattr(synthesis, f"{name}_program")) for name in ("encode", "render")}
    for name, wrapper in counted.items():
        monkeypatch.setattr(synthesis, f"{name}_program", wrapper)
    return counted


def test_folder_manifest_and_files(folder):
    manifest = _manifest(folder)
    assert manifest["format"] == "vits-jax exported programs" and manifest["version"] == 1
    assert manifest["jax"] == jax.__version__ and manifest["platforms"] == PLATFORMS
    assert (jax.export.minimum_supported_calling_convention_version <= manifest["calling_convention_version"]
            <= jax.export.maximum_supported_calling_convention_version)
    assert manifest["token_buckets"] == [16] and manifest["batch_sizes"] == list(range(1, 9))
    programs = manifest["programs"]
    encode = [(p["batch"], p["tokens"]) for p in programs if p["stage"] == "encode"]
    render = [(p["batch"], p["tokens"], p["frames"]) for p in programs if p["stage"] == "render"]
    assert encode == [(b, 16) for b in range(1, 9)]                 # say's rows: 1 .. --batch-size
    frames = [f for _, _, f in render]                              # one to eight frames per token
    assert frames == sorted(set(frames)) and frames[0] == 32 and frames[-1] == 128
    assert all(synthesis.frame_bucket(f) == f for f in frames) and {b for b, _, _ in render} == {1}
    assert len(programs) == 8 + 17 and not any(p["speaker"] for p in programs)   # a single speaker
    files = sorted(os.listdir(os.path.join(folder, "programs")))
    assert files == sorted([p["file"] for p in programs] + ["manifest.json"])
    # a converted folder as `convert` writes it, plus the programs; nothing left beside it
    assert {"params", "config.json", "vocab.json", "programs"} <= set(os.listdir(folder))
    assert os.listdir(os.path.dirname(folder)) == ["voice"]
    info = describe_source(folder)
    assert info.kind == EXPORTED and "exported programs" in info.format
    with open(os.path.join(folder, "programs", programs[0]["file"]), "rb") as f:
        program = jax.export.deserialize(bytearray(f.read()))
    assert program.platforms == tuple(PLATFORMS)


def test_exported_programs_speak_as_the_source(voices, jitted):
    voice, source = voices
    assert voice.kind == EXPORTED and voice.programs is not None
    calls = dict(voice.programs.calls)
    said = voice.speak(TEXT, seed=0)
    # the exported programs ran: read, called, and the jitted stage programs never were
    assert voice.programs.calls["encode"] == calls.get("encode", 0) + 1     # one batch of 2
    assert voice.programs.calls["render"] == calls.get("render", 0) + 2     # each item alone (CPU)
    assert voice.programs.deserialized >= 2
    assert jitted["encode"].calls == jitted["render"].calls == 0
    reference = source.speak(TEXT, seed=0)
    assert jitted["encode"].calls == 1 and jitted["render"].calls == 2   # the counters see the jitted path
    assert said.pieces == reference.pieces == ["Hi.", "Bye."]
    for ours, theirs in zip(said.durations, reference.durations):
        np.testing.assert_array_equal(ours, theirs)
    assert_waveform_close(said.waveform, reference.waveform, tol=1e-6, what="exported vs jitted")
    # another seed, rate and noise: traced arguments of the same programs
    options = dict(seed=3, speaking_rate=1.2, noise_scale=0.3)
    again = voice.speak(TEXT, **options)
    assert voice.programs.calls["encode"] == calls.get("encode", 0) + 2 and jitted["encode"].calls == 1
    assert_waveform_close(again.waveform, source.speak(TEXT, **options).waveform, tol=1e-6,
                          what="exported vs jitted, other options")


def test_shapes_not_exported_run_the_jitted_programs(voices, jitted):
    voice, source = voices
    calls = dict(voice.programs.calls)
    slow = dict(seed=1, speaking_rate=0.03)          # ~30x the frames: past the 128 frames exported
    said = voice.speak(TEXT, **slow)
    assert voice.programs.calls["encode"] == calls.get("encode", 0) + 1    # stage 1 still exported
    assert voice.programs.calls["render"] == calls.get("render", 0)        # stage 2 jitted
    assert jitted["encode"].calls == 0 and jitted["render"].calls == 2
    assert sum(said.lengths) > 128 * source.config.hop_length
    assert_waveform_close(said.waveform, source.speak(TEXT, **slow).waveform, tol=1e-6,
                          what="exported stage 1, jitted stage 2")


@pytest.mark.parametrize("field, value, named", [
    ("jax", "0.0.1", "exported with jax 0.0.1"),
    ("platforms", ["tpu"], "exported for tpu, not cpu"),
    ("matmul_precision", None, "jax_default_matmul_precision=None"),
])
def test_incompatible_programs_warn_once_and_fall_back(folder, source, tmp_path, field, value, named,
                                                      jitted, capsys):
    copy = shutil.copytree(folder, tmp_path / "voice")
    manifest = _manifest(copy)
    manifest[field] = value
    with open(copy / "programs" / "manifest.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    with pytest.warns(UserWarning) as caught:
        voice = vits_jax.Voice.load(str(copy))
    assert len(caught) == 1 and named in str(caught[0].message) and "jitted programs" in str(caught[0].message)
    assert voice.kind == EXPORTED and voice.programs is None
    out = tmp_path / "out.wav"
    assert cli.main(["say", TEXT, "-m", str(copy), "-o", str(out), "--no-cache"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and named in lines[0]                   # one warning line, then it speaks
    assert jitted["encode"].calls == 1 and os.path.getsize(out) > 44


def test_say_runs_the_exported_folder(folder, source, tmp_path, jitted, capsys):
    ours, theirs = tmp_path / "exported.wav", tmp_path / "source.wav"
    assert cli.main(["say", TEXT, "-m", folder, "-o", str(ours), "--no-cache"]) == 0
    assert jitted["encode"].calls == jitted["render"].calls == 0
    assert "warning" not in capsys.readouterr().err
    assert cli.main(["say", TEXT, "-m", source, "-o", str(theirs), "--no-cache"]) == 0
    assert ours.read_bytes() == theirs.read_bytes()
    assert cli.main(["info", folder]) == 0
    assert "exported programs" in capsys.readouterr().out


def test_multi_speaker_programs_take_speaker_ids(model_folder, tmp_path, monkeypatch):
    """A multi-speaker voice's programs come with and without speaker ids (two pytrees); here the
    encode programs only, to keep the test small."""
    assert [s.speaker for s in exported.plan([16], [1], True) if s.stage == "encode"] == [False, True]
    source = model_folder(5, **dict(TINY, num_speakers=3, speaker_embedding_size=4))
    monkeypatch.setattr(exported, "plan", lambda buckets, sizes, speakers: [
        exported.ProgramShape("encode", 1, 16, speaker=s) for s in ((False, True) if speakers else (False,))])
    assert cli.main(["export", source, str(tmp_path / "voice"), "--platforms", "cpu"]) == 0
    voice = vits_jax.Voice.load(str(tmp_path / "voice"))
    said = voice.speak("Hi.", seed=2, speaker_id=1)
    assert voice.programs.calls == {"encode": 1}
    reference = vits_jax.Voice.load(source).speak("Hi.", seed=2, speaker_id=1)
    assert_waveform_close(said.waveform, reference.waveform, tol=1e-6, what="speaker 1")


# ------------------------------------------------------------------ the folder: refusals, replacement
def _listing(root):
    return sorted((os.path.relpath(os.path.join(d, n), root), open(os.path.join(d, n), "rb").read())
                  for d, _, names in os.walk(root) for n in names)


def _export_error(capsys, *argv) -> str:
    assert cli.main(["export", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_existing_folder_is_refused_and_left_untouched(source, tmp_path, capsys):
    dst = tmp_path / "mine"
    dst.mkdir()
    (dst / "notes.txt").write_text("my notes")
    before = _listing(tmp_path)
    assert "--overwrite" in _export_error(capsys, source, str(dst))
    assert "not a vits-jax voice folder" in _export_error(capsys, source, str(dst), "--overwrite")
    assert _listing(tmp_path) == before                         # nothing written, nothing left


def test_option_errors_name_the_option(source, tmp_path, capsys):
    dst = tmp_path / "out"
    error = _export_error(capsys, source, str(dst), "--platforms", "cpu,gpu")
    assert "--platforms" in error and "gpu" in error and "cuda" in error
    error = _export_error(capsys, source, str(dst), "--buckets", "16,20")
    assert "--buckets" in error and "[20]" in error and "24" in error
    with pytest.raises(SystemExit) as exit:                     # argparse's: usage, then the error line
        cli.main(["export", source, str(dst), "--buckets", "16,x"])
    assert exit.value.code == 1
    assert "error: argument --buckets: invalid list '16,x'" in capsys.readouterr().err
    assert "inside the source" in _export_error(capsys, source, os.path.join(source, "sub"))
    assert not dst.exists()


@pytest.fixture
def one_program(monkeypatch):
    """Export a single small program: these tests are about the folder, not the programs."""
    monkeypatch.setattr(exported, "plan", lambda *args: [exported.ProgramShape("encode", 1, 16)])


def test_empty_folder_is_used_and_overwrite_replaces_a_voice_folder(source, tmp_path, one_program, capsys):
    dst = tmp_path / "out"
    dst.mkdir()                                                       # empty: no --overwrite needed
    assert cli.main(["export", source, str(dst), "--platforms", "cpu"]) == 0
    assert describe_source(str(dst)).kind == EXPORTED and len(_manifest(dst)["programs"]) == 1
    assert cli.main(["export", source, str(dst), "--platforms", "cpu"]) == 1    # now not empty
    assert "--overwrite" in capsys.readouterr().err
    converted = tmp_path / "converted"
    vits_jax.convert_weights(source, converted)
    assert describe_source(str(converted)).kind == CONVERTED
    assert cli.main(["export", source, str(converted), "--platforms", "cpu", "--overwrite"]) == 0
    assert describe_source(str(converted)).kind == EXPORTED
    assert sorted(os.listdir(tmp_path)) == ["converted", "out"]        # no temporary folder left


def test_a_failed_export_leaves_the_destination_as_it_was(source, tmp_path, one_program, monkeypatch, capsys):
    dst = tmp_path / "out"
    assert cli.main(["export", source, str(dst), "--platforms", "cpu"]) == 0
    capsys.readouterr()
    before = _listing(tmp_path)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(exported, "export_programs", fail)
    assert "No space left" in _export_error(capsys, source, str(dst), "--overwrite")
    assert _listing(tmp_path) == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # the folder still loads, with its programs
        assert vits_jax.Voice.load(str(dst)).programs is not None
