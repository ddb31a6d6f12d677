"""Through files: save_pretrained -> python -m convert -> vits_jax.load, and the converter's errors."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from conftest import hf_model, realistic_rate, small_config, state_dict_numpy

import vits_jax
from convert import ConversionError, load_state_dict, to_flax
from vits_jax import VitsConfig, VitsParams
from vits_jax.model import VitsModel

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mms-tts-eng")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A random transformers model saved with save_pretrained (safetensors), tokenizer files beside."""
    hf = hf_model(11, **small_config(vocab_size=38, num_speakers=2, speaker_embedding_size=4))
    folder = tmp_path_factory.mktemp("hf")
    hf.save_pretrained(folder)
    for name in ("vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(FIXTURES, name), folder)
    return hf, str(folder)


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
    np.testing.assert_allclose(np.asarray(out[0]), ref.waveform.numpy(), atol=1e-4)


def test_saved_folder_has_weight_norm_parametrizations(hf_folder):
    _, folder = hf_folder
    keys = load_state_dict(folder).keys()
    assert any(".parametrizations.weight.original0" in k for k in keys)


def test_convert_command_then_load(hf_folder, tmp_path):
    hf, folder = hf_folder
    dst = tmp_path / "converted"
    proc = subprocess.run([sys.executable, "-m", "convert", folder, str(dst)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "parameters" in proc.stdout
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


def test_load_transformers_folder_without_torch(hf_folder):
    _, folder = hf_folder
    code = ("import sys, vits_jax; p = vits_jax.load(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(p.num_parameters())")
    proc = subprocess.run([sys.executable, "-c", code, folder], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == vits_jax.load(folder).num_parameters()


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
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "error:" in proc.stderr and "model.safetensors" in proc.stderr
    assert not (tmp_path / "dst").exists()
