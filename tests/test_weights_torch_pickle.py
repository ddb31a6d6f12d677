"""torch.save files read without torch (vits_jax.voice.torch_pickle / files) against torch.load,
and the files it must refuse: code in the pickle, non-tensor payloads, garbage, truncation."""

import collections
import os
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest
import torch

from vits_jax.voice.files import read_weights
from vits_jax.voice.torch_pickle import UnsafeFileError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tensors():
    torch.manual_seed(0)
    base = torch.randn(6, 8)
    return collections.OrderedDict(
        w=torch.randn(3, 4), half=torch.randn(5).half(), bf16=torch.randn(4).bfloat16(),
        double=torch.randn(2).double(), transposed=base.t(), rows=base[2:4], column=base[:, 3],
        ints=torch.arange(5), flags=torch.tensor([True, False]), scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3), param=torch.nn.Parameter(torch.randn(2, 2)))


def _expected(t):
    t = t.detach()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _assert_equal_to_torch(ours, path):
    ref = torch.load(path, weights_only=True)
    ref = ref.get("model", ref.get("state_dict", ref)) if isinstance(ref, dict) else ref
    assert set(ours) == set(ref)
    for k, t in ref.items():
        expected = _expected(t)
        assert ours[k].dtype == expected.dtype and ours[k].shape == expected.shape, k
        assert np.array_equal(ours[k], expected), k


@pytest.mark.parametrize("legacy", [False, True])
def test_state_dicts_equal_torch_load(tmp_path, legacy):
    path = tmp_path / "state.pth"
    torch.save(_tensors(), path, _use_new_zipfile_serialization=not legacy)
    _assert_equal_to_torch(read_weights(str(path)), path)


def test_views_of_one_storage_are_read_once_and_stay_independent(tmp_path):
    base = torch.arange(12.0)
    torch.save({"a": base[:6].view(2, 3), "b": base[6:], "c": base.view(3, 4).t()}, tmp_path / "s.pt")
    ours = read_weights(str(tmp_path / "s.pt"))
    _assert_equal_to_torch(ours, tmp_path / "s.pt")
    ours["a"][0, 0] = 100.0      # copies, not views of a shared buffer
    assert ours["c"][0, 0] == 0.0


def test_vits_training_checkpoint_unwraps_model(tmp_path):
    sd = _tensors()
    torch.save({"model": sd, "iteration": 100, "learning_rate": 2e-4,
                "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 1e-3}]}},
               tmp_path / "G_100.pth")
    _assert_equal_to_torch(read_weights(str(tmp_path / "G_100.pth")), tmp_path / "G_100.pth")


class HyperParameterObject:
    """Stands for the objects Lightning keeps among hyper-parameters (datasets, paths, ...)."""

    def __init__(self, value):
        self.value = value


def test_lightning_checkpoint_with_hyper_parameter_objects(tmp_path, monkeypatch):
    # Lightning pickles its hyper-parameters as lightning.fabric.utilities.data.AttributeDict; the
    # module is made up here so that the test needs no Lightning.
    module = types.ModuleType("lightning.fabric.utilities.data")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__, AttributeDict.__qualname__ = module.__name__, "AttributeDict"
    module.AttributeDict = AttributeDict
    for name in ("lightning", "lightning.fabric", "lightning.fabric.utilities"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    sd = _tensors()
    ckpt = {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
            "state_dict": {**{f"model_g.{k}": v for k, v in sd.items()}, "model_d.x.bias": torch.ones(3)},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(4)}}}],
            "hyper_parameters": AttributeDict(sample_rate=22050, upsample_rates=(8, 8, 4),
                                              dataset=HyperParameterObject(7))}
    torch.save(ckpt, tmp_path / "epoch=3.ckpt")
    ours = read_weights(str(tmp_path / "epoch=3.ckpt"))
    ref = torch.load(tmp_path / "epoch=3.ckpt", weights_only=False)["state_dict"]
    assert set(ours) == set(ref)
    for k in ref:
        assert np.array_equal(ours[k], _expected(ref[k])), k
    h = ours.hyper_parameters
    assert isinstance(h, dict) and h["sample_rate"] == 22050 and h["upsample_rates"] == (8, 8, 4)
    assert "HyperParameterObject" in repr(h["dataset"])      # an inert placeholder, not the object


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["inside", "top"])
def test_code_in_the_pickle_is_refused_and_never_run(tmp_path, layout):
    marker = tmp_path / "ran"
    payload = {"w": torch.zeros(2), "x": Evil(marker)} if layout == "inside" else Evil(marker)
    torch.save(payload, tmp_path / "evil.bin")
    with pytest.raises(UnsafeFileError) as err:
        read_weights(str(tmp_path / "evil.bin"))
    msg = str(err.value)
    assert "evil.bin holds non-tensor objects" in msg and "system" in msg and "not loaded for safety" in msg
    assert "weights_only" not in msg
    assert not marker.exists()


@pytest.mark.parametrize("content, expected", [
    ("hello", "does not hold a state dict"), (7, "does not hold a state dict"),
    ({"a": 1}, "holds no tensors"), ({"a": torch.ones(1), "b": "text"}, "entry 'b' is a str"),
])
def test_non_tensor_payloads_are_named(tmp_path, content, expected):
    torch.save(content, tmp_path / "x.bin")
    with pytest.raises(ValueError, match=expected):
        read_weights(str(tmp_path / "x.bin"))


def test_garbage_empty_and_truncated_files(tmp_path):
    (tmp_path / "garbage.bin").write_bytes(np.random.default_rng(0).bytes(300))
    (tmp_path / "empty.pth").write_bytes(b"")
    torch.save({"w": torch.randn(64, 64)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    for name in ("garbage.bin", "empty.pth", "cut.pth"):
        with pytest.raises(ValueError, match=rf"{name} is not a readable PyTorch weights file"):
            read_weights(str(tmp_path / name))
    # a zip whose storage entry lost its bytes
    with zipfile.ZipFile(tmp_path / "full.pth") as src, zipfile.ZipFile(tmp_path / "short.pth", "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info, body[:16] if "/data/" in info.filename else body)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_weights(str(tmp_path / "short.pth"))


def test_reading_needs_no_torch(tmp_path):
    torch.save(_tensors(), tmp_path / "s.pth")
    code = ("import sys; from vits_jax.voice.files import read_weights; "
            "sd = read_weights(sys.argv[1]); assert 'torch' not in sys.modules; print(len(sd))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.pth")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(_tensors())
