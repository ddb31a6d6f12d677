"""Discriminators: shapes, jit, and parity with the original VITS PyTorch discriminator through
the state-dict loader."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import weight_norm

from vits_jax.training.discriminators import (DiscriminatorConfig, MultiPeriodDiscriminator,
                                              discriminator_shapes, from_torch_state_dict,
                                              init_discriminator, load_discriminator)

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")

SMALL = DiscriminatorConfig().scaled(16)


# The original VITS discriminator (models.py), with its widths taken from a DiscriminatorConfig.
class TorchP(nn.Module):
    def __init__(self, period, c):
        super().__init__()
        self.period = period
        chans = (1,) + c.period_channels
        k, s = c.period_kernel_size, c.period_stride
        n = len(c.period_channels)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (k, 1), (s if i < n - 1 else 1, 1),
                                  padding=((k - 1) // 2, 0)))
            for i in range(n)])
        self.conv_post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        fmap = []
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        for layer in self.convs:
            x = F.leaky_relu(layer(x), 0.1)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class TorchS(nn.Module):
    def __init__(self, c):
        super().__init__()
        chans = (1,) + c.scale_channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv1d(chans[i], chans[i + 1], k, s, groups=g, padding=(k - 1) // 2))
            for i, (k, s, g) in enumerate(zip(c.scale_kernel_sizes, c.scale_strides, c.scale_groups))])
        self.conv_post = weight_norm(nn.Conv1d(chans[-1], 1, 3, 1, padding=1))

    def forward(self, x):
        fmap = []
        for layer in self.convs:
            x = F.leaky_relu(layer(x), 0.1)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class TorchMPD(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.discriminators = nn.ModuleList([TorchS(c)] + [TorchP(p, c) for p in c.periods])


def torch_model(c, seed=0):
    torch.manual_seed(seed)
    model = TorchMPD(c)
    with torch.no_grad():  # weight_g != ||v|| so the test sees g and v separately
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(1 + 0.5 * torch.rand_like(p))
    return model


@pytest.mark.parametrize("samples", [1024, 1000])
def test_matches_original_vits(samples):
    model = torch_model(SMALL)
    params = from_torch_state_dict(model.state_dict(), SMALL)
    y = np.random.default_rng(0).normal(scale=0.3, size=(2, samples)).astype(np.float32)
    logits, fmaps = jax.jit(MultiPeriodDiscriminator(SMALL).apply)({"params": params}, y)
    assert len(logits) == len(fmaps) == 1 + len(SMALL.periods)
    with torch.no_grad():
        for i, d in enumerate(model.discriminators):
            ref_logits, ref_fmaps = d(torch.from_numpy(y)[:, None])
            assert_close(logits[i], ref_logits.numpy(), tol=1e-5, what=f"logits {i}")
            assert len(fmaps[i]) == len(ref_fmaps)
            for ours, ref in zip(fmaps[i], ref_fmaps):
                ref = ref.numpy()
                ref = ref.transpose(0, 2, 1) if ref.ndim == 3 else ref.transpose(0, 2, 3, 1)
                assert_close(ours, ref, tol=1e-5, what=f"feature map of {i}")


def test_loader_accepts_parametrizations_and_reports_mismatches():
    sd = {k: v for k, v in torch_model(SMALL).state_dict().items()}
    renamed = {("module." + k).replace("weight_g", "parametrizations.weight.original0")
               .replace("weight_v", "parametrizations.weight.original1"): v for k, v in sd.items()}
    a = from_torch_state_dict(sd, SMALL)
    b = from_torch_state_dict(renamed, SMALL)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    broken = dict(sd)
    del broken["discriminators.1.conv_post.bias"]
    broken["discriminators.0.extra.weight"] = torch.zeros(1)
    broken["discriminators.2.convs.0.weight_v"] = torch.zeros(3, 1, 5, 1)
    with pytest.raises(ValueError) as err:
        from_torch_state_dict(broken, SMALL)
    msg = str(err.value)
    assert "discriminators_1/conv_post/bias" in msg and "discriminators.0.extra.weight" in msg
    assert "discriminators.2.convs.0.weight_v" in msg


def test_load_discriminator_files(tmp_path):
    from safetensors.torch import save_file

    sd = torch_model(SMALL).state_dict()
    expected = from_torch_state_dict(sd, SMALL)
    files = {"D_100.pth": {"model": sd, "iteration": 100, "learning_rate": 2e-4},   # VITS' checkpoint
             "state.bin": sd,
             "whole.pt": {**{f"discriminator.{k}": v for k, v in sd.items()},
                          "text_encoder.embed_tokens.weight": torch.zeros(3, 2)},
             # Piper's Lightning checkpoint: generator and discriminator under model_g. / model_d.
             "piper.ckpt": {"state_dict": {**{f"model_d.{k}": v for k, v in sd.items()},
                                           "model_g.enc_p.emb.weight": torch.zeros(3, 2)},
                            "hyper_parameters": {"sample_rate": 22050}, "epoch": 2}}
    for name, content in files.items():
        torch.save(content, tmp_path / name)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "state.safetensors"))
    for name in [*files, "state.safetensors"]:
        jax.tree.map(np.testing.assert_array_equal, load_discriminator(str(tmp_path / name), SMALL), expected)
    # weights of another width: the error names the file and the mis-shaped keys
    with pytest.raises(ValueError, match=r"(?s)state\.bin: .*discriminators\.0\.convs\.0\.weight_v"):
        load_discriminator(str(tmp_path / "state.bin"), DiscriminatorConfig().scaled(8))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_discriminator(str(tmp_path / "list.pth"), SMALL)
    bad = {k: v.clone() for k, v in sd.items()}
    bad["discriminators.3.conv_post.bias"][0] = float("nan")
    torch.save(bad, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"non-finite \(1\):\n\s+discriminators\.3\.conv_post\.bias"):
        load_discriminator(str(tmp_path / "nan.pth"), SMALL)


def test_full_size_shapes():
    # Full VITS widths, via eval_shape (nothing allocated): parameter count as the original's 46.7M.
    params = discriminator_shapes(DiscriminatorConfig())
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    assert 46_000_000 < n < 47_500_000
    out = jax.eval_shape(lambda p, y: MultiPeriodDiscriminator().apply({"params": p}, y), params,
                         jax.ShapeDtypeStruct((2, 8192), jnp.float32))
    logits, fmaps = out
    assert logits[0].shape == (2, 32)                     # 8192 / 4^4
    assert fmaps[1][0].shape == (2, 1366, 2, 32)          # ceil(4096 / 3), period 2, 32 channels
    assert [len(f) for f in fmaps] == [7, 6, 6, 6, 6, 6]


def test_scaled_config_validates_groups():
    with pytest.raises(ValueError):
        DiscriminatorConfig(scale_channels=(16, 6, 256, 1024, 1024, 1024))


def test_init_matches_the_module_tree_and_initialisers():
    params = init_discriminator(SMALL, jax.random.key(0))
    shapes = discriminator_shapes(SMALL)
    assert jax.tree.structure(params) == jax.tree.structure(shapes)
    jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape), params, shapes)
    conv = params["discriminators_3"]["convs_2"]                  # (k, 1, in, out) period conv
    fan_in = np.prod(conv["weight_v"].shape[:-1])
    assert np.max(np.abs(conv["weight_v"])) <= 1 / np.sqrt(fan_in)
    assert np.std(conv["weight_v"]) > 0.5 / np.sqrt(3 * fan_in)    # uniform: std = bound / sqrt(3)
    v = conv["weight_v"].reshape(-1, conv["weight_v"].shape[-1])
    np.testing.assert_allclose(conv["weight_g"], np.linalg.norm(v, axis=0), rtol=1e-6)
    # Different keys, different draws; the module applies to the tree.
    other = init_discriminator(SMALL, jax.random.key(1))
    assert not np.array_equal(other["discriminators_0"]["convs_0"]["weight_v"], conv["weight_v"])
    logits, _ = MultiPeriodDiscriminator(SMALL).apply({"params": params}, jnp.zeros((1, 300)))
    assert all(np.all(np.isfinite(x)) for x in logits)
