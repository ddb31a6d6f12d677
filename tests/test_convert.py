"""Through files: save_pretrained -> python -m convert -> vits_jax.load, and the converter's errors."""

import json
import os
import shutil
import stat
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from conftest import assert_waveform_close, hf_model, realistic_rate, save_model_folder, small_config, state_dict_numpy

import vits_jax
from convert import ConversionError, load_state_dict, to_flax
from vits_jax import VitsConfig, VitsParams
from vits_jax.voice.checkpoint import is_converted
from vits_jax.nn.model import VitsModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300     # seconds for each child Python: a hang fails its test instead of stalling the run


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A random transformers model saved with save_pretrained (safetensors), tokenizer files beside."""
    hf = hf_model(11, **small_config(vocab_size=38, num_speakers=2, speaker_embedding_size=4))
    return hf, save_model_folder(hf, tmp_path_factory.mktemp("hf"))


def _compare(hf, params, ids):
    """Waveform through the loaded params vs transformers in memory (noise off, speaker 1)."""
    cfg = params.config
    rate = realistic_rate(params.tree, cfg, ids, 1, np.zeros(ids.shape + (2,), np.float32), 0.0)
    hf.noise_scale = hf.noise_scale_duration = 0.0
    with torch.no_grad():
        ref = hf(torch.as_tensor(ids), speaker_id=1, speaking_rate=rate)
    frames = int(ref.sequence_lengths[0]) // cfg.hop_length
    out = VitsModel(cfg).apply({"params": params.tree}, ids, np.ones(ids.shape + (1,), np.float32),
                               np.array([1]), sdp_noise=np.zeros(ids.shape + (2,), np.float32),
                               prior_noise=np.zeros((1, frames, cfg.flow_size), np.float32), noise_scale=0.0,
                               noise_scale_duration=0.0, length_scale=1 / rate, num_frames=frames)
    assert int(out[1][0]) == frames
    assert_waveform_close(np.asarray(out[0]), ref.waveform.numpy(), what="loaded params vs transformers")


def test_saved_folder_has_weight_norm_parametrizations(hf_folder):
    _, folder = hf_folder
    keys = load_state_dict(folder).keys()
    assert any(".parametrizations.weight.original0" in k for k in keys)


def test_convert_command_then_load(hf_folder, tmp_path):
    hf, folder = hf_folder
    dst = tmp_path / "converted"
    proc = subprocess.run([sys.executable, "-m", "convert", folder, str(dst)], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "parameters" in proc.stdout
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o777 & ~umask   # a normal folder, not mkdtemp's 0700
    for name in ("config.json", "vocab.json", "tokenizer_config.json"):
        assert (dst / name).is_file()
    params = vits_jax.load(dst)
    assert isinstance(params, VitsParams) and params.config == VitsConfig.from_json(os.path.join(folder, "config.json"))
    direct = to_flax(state_dict_numpy(hf), params.config)
    # bit-exact through orbax
    for a, b in zip(jax.tree.leaves(params.tree), jax.tree.leaves(direct)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    ids = np.random.default_rng(0).integers(0, 38, size=(1, 9))
    _compare(hf, params, ids)


def test_load_transformers_folder_without_torch(hf_folder, tmp_path):
    # ... and vits_jax never imports the convert package (it depends on vits_jax, not back)
    _, folder = hf_folder
    code = ("import sys, vits_jax; p = vits_jax.load(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(p.num_parameters()); "
            "vits_jax.convert_weights(sys.argv[1], sys.argv[2]); "
            "bad = [m for m in ('convert', 'torch') if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code, folder, str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == vits_jax.load(folder).num_parameters()
    assert (tmp_path / "out" / "vocab.json").is_file()


def test_bin_with_old_weight_norm_names(hf_folder, tmp_path):
    hf, folder = hf_folder
    old = {}
    for k, v in hf.state_dict().items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g")
        k = k.replace(".parametrizations.weight.original1", ".weight_v")
        old[k] = v.clone()
    assert any(k.endswith(".weight_g") for k in old)
    src = tmp_path / "bin"
    src.mkdir()
    torch.save(old, src / "pytorch_model.bin")
    shutil.copy(os.path.join(folder, "config.json"), src)
    vits_jax.save(vits_jax.load(src), tmp_path / "out", tokenizer_dir=folder)
    params = vits_jax.load(tmp_path / "out")
    ids = np.random.default_rng(1).integers(0, 38, size=(1, 7))
    _compare(hf, params, ids)


def test_params_pytree_carries_config(hf_folder):
    _, folder = hf_folder
    params = vits_jax.load(folder)
    doubled = jax.tree.map(lambda x: x * 2, params)
    assert isinstance(doubled, VitsParams) and doubled.config == params.config
    jitted = jax.jit(lambda p: p)(params)
    assert jitted.config == params.config
    assert set(params) == {"text_encoder", "flow", "decoder", "duration_predictor", "embed_speaker",
                           "posterior_encoder"}


@pytest.fixture(scope="module")
def small_state():
    hf = hf_model(12, **small_config())
    return state_dict_numpy(hf), VitsConfig.from_dict(hf.config.to_dict())


def test_missing_key(small_state):
    state, cfg = small_state
    state = dict(state)
    del state["decoder.conv_post.weight"]
    with pytest.raises(ConversionError, match=r"missing \(1\):\n\s+decoder/conv_post/kernel"):
        to_flax(state, cfg)


def test_extra_key(small_state):
    state, cfg = small_state
    with pytest.raises(ConversionError, match=r"unexpected \(1\):\n\s+decoder\.extra\.weight"):
        to_flax({**state, "decoder.extra.weight": np.zeros(3, np.float32)}, cfg)


def test_wrong_shape(small_state):
    state, cfg = small_state
    bad = {**state, "text_encoder.project.bias": np.zeros(5, np.float32)}
    with pytest.raises(ConversionError, match=r"mis-shaped \(1\):\n\s+text_encoder\.project\.bias"):
        to_flax(bad, cfg)


def test_unpaired_weight_norm_half(small_state):
    state, cfg = small_state
    state = dict(state)
    key = next(k for k in state if k.endswith("parametrizations.weight.original1"))
    del state[key]
    with pytest.raises(ConversionError, match="(?s)missing.*unexpected"):  # both sides reported at once
        to_flax(state, cfg)


def test_config_disagreeing_with_weights(small_state):
    state, cfg = small_state
    wrong = VitsConfig.from_dict({**cfg.to_dict(), "hidden_size": 32, "prior_encoder_num_flows": 1})
    with pytest.raises(ConversionError) as err:
        to_flax(state, wrong)
    msg = str(err.value)
    assert "mis-shaped" in msg and "unexpected" in msg and "flow.flows.1" in msg


def test_convert_command_reports_errors(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text(json.dumps({"model_type": "vits"}))
    proc = subprocess.run([sys.executable, "-m", "convert", str(tmp_path / "src"), str(tmp_path / "dst")],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 1 and "error:" in proc.stderr and "model.safetensors" in proc.stderr
    assert not (tmp_path / "dst").exists()


# --- nothing lost: destinations, sources, overwrite ------------------------------------------------

def _tree_of(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _convert(*argv):
    from convert.__main__ import main
    return main([str(a) for a in argv])


def test_convert_refuses_to_touch_what_it_did_not_write(hf_folder, tmp_path, monkeypatch, capsys):
    _, folder = hf_folder
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    before = _tree_of(src)
    other = tmp_path / "existing"
    other.mkdir()
    (other / "important.txt").write_text("keep me")
    monkeypatch.chdir(other)
    cases = [(src, "."), (src, other), (src, src), (src, src / "inside"), (src, tmp_path),
             (src, other, "--overwrite")]            # --overwrite never replaces a non-checkpoint
    for case in cases:
        assert _convert(*case) == 1, case
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
    assert _tree_of(other) == {"important.txt": b"keep me"}
    assert _tree_of(src) == before and not (src / "inside").exists()


def test_overwrite_replaces_only_a_checkpoint_and_a_failure_keeps_the_old_one(hf_folder, tmp_path, capsys):
    _, folder = hf_folder
    dst = tmp_path / "dst"
    assert _convert(folder, dst) == 0
    first = _tree_of(dst)
    assert _convert(folder, dst) == 1 and "overwrite" in capsys.readouterr().err   # exists: refused
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(os.path.join(folder, "config.json"), broken)
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")   # truncated
    assert _convert(broken, dst, "--overwrite") == 1
    err = capsys.readouterr().err
    assert "model.safetensors is not a readable safetensors file" in err and "Traceback" not in err
    assert _tree_of(dst) == first                                  # the old checkpoint is intact
    assert _convert(folder, dst, "--overwrite") == 0
    assert _tree_of(dst) != first and is_converted(str(dst))          # replaced (orbax names differ)
    assert {k for k in _tree_of(dst) if not k.startswith("params/")} == \
        {k for k in first if not k.startswith("params/")}
    assert sorted(os.listdir(tmp_path)) == ["broken", "dst"]        # no temporary folders left


def test_save_refuses_existing_paths(hf_folder, tmp_path):
    from vits_jax.voice.checkpoint import DestinationError

    _, folder = hf_folder
    params = vits_jax.load(folder)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(DestinationError, match="exists; pass overwrite=True"):
        vits_jax.save(params, tmp_path / "notes")
    with pytest.raises(DestinationError, match="not a vits-jax checkpoint"):
        vits_jax.save(params, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "a.txt").read_text() == "x"
    vits_jax.save(params, tmp_path / "ckpt")
    vits_jax.save(params, tmp_path / "ckpt", overwrite=True)
    assert vits_jax.load(tmp_path / "ckpt").num_parameters() == params.num_parameters()


# --- bad files: errors that name the file and the problem ----------------------------------------

def _broken_copy(folder, tmp_path, name, content):
    dst = tmp_path / f"bad-{name.replace('/', '_')}"
    shutil.copytree(folder, dst)
    if isinstance(content, str):
        content = content.encode()
    (dst / name).write_bytes(content)
    return dst


@pytest.mark.parametrize("name, content, message", [
    ("model.safetensors", b"", "model.safetensors is empty"),
    ("config.json", "{not json", "config.json is not valid JSON"),
    ("config.json", "[]", "config.json: a config must be a JSON object"),
    ("config.json", '{"hidden_size": "192"}', "config field hidden_size must be an integer"),
])
def test_bad_files_are_named(hf_folder, tmp_path, name, content, message):
    _, folder = hf_folder
    with pytest.raises(ValueError, match=message):
        vits_jax.load(_broken_copy(folder, tmp_path, name, content))


def test_truncated_safetensors_and_bad_bins(hf_folder, tmp_path):
    _, folder = hf_folder
    data = open(os.path.join(folder, "model.safetensors"), "rb").read()
    with pytest.raises(ValueError, match="truncated or corrupt"):
        vits_jax.load(_broken_copy(folder, tmp_path, "model.safetensors", data[: len(data) // 2]))
    src = tmp_path / "bin"
    src.mkdir()
    shutil.copy(os.path.join(folder, "config.json"), src)
    for content, message in (("a string", "does not hold a state dict"), (3, "does not hold a state dict")):
        torch.save(content, src / "pytorch_model.bin")
        with pytest.raises(ValueError, match=message):
            vits_jax.load(src)
    (src / "pytorch_model.bin").write_bytes(b"\x80\x04garbage" * 10)
    with pytest.raises(ValueError, match="pytorch_model.bin is not a readable PyTorch weights file"):
        vits_jax.load(src)


def test_non_finite_weights_are_named(small_state):
    state, cfg = small_state
    bad = dict(state)
    bad["decoder.conv_pre.bias"] = np.array(bad["decoder.conv_pre.bias"])
    bad["decoder.conv_pre.bias"][1] = np.inf
    bad["text_encoder.embed_tokens.weight"] = np.full_like(bad["text_encoder.embed_tokens.weight"], np.nan)
    with pytest.raises(ConversionError) as err:
        to_flax(bad, cfg)
    msg = str(err.value)
    assert "non-finite (2):" in msg and "decoder.conv_pre.bias: 1 of" in msg
    assert "text_encoder.embed_tokens.weight" in msg


def test_offline_names(tmp_path, monkeypatch):
    from vits_jax.voice import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(hub.ModelNotFoundError) as info:
        hub.resolve("models/mine")
    assert f"no such file or folder exists here ({tmp_path})" in str(info.value)
    assert "cannot be downloaded" in str(info.value)
    with pytest.raises(hub.ModelNotFoundError) as info:
        hub.resolve("en_US-lessac-medium")
    assert "Piper voice" in str(info.value) and "vits_jax.load(FOLDER)" in str(info.value)
    assert "-m FOLDER" not in str(info.value)    # the library names no command's options
    assert hub.piper_voice_files("en_US-lessac-medium") == [
        "en/en_US/lessac/medium/en_US-lessac-medium.onnx", "en/en_US/lessac/medium/en_US-lessac-medium.onnx.json"]


@pytest.mark.parametrize("argv,hint", [
    (["convert", "en_US-lessac-medium", "out"], "`vits-jax convert FOLDER DST`"),
    (["info", "en_US-lessac-medium"], "`vits-jax info FOLDER`"),
    (["say", "Hi.", "-m", "en_US-lessac-medium", "-o", "out.wav"], "-m FOLDER"),
], ids=["convert", "info", "say"])
def test_a_voice_not_found_hints_at_the_commands_own_option(tmp_path, monkeypatch, capsys, argv, hint):
    from vits_jax.app import main as cli
    from vits_jax.voice import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "_hub_reachable", lambda *a, **k: False)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and hint in err, err
    if argv[0] != "say":
        assert "-m FOLDER" not in err     # convert and info take the voice as an argument
    assert os.listdir(tmp_path) == []
