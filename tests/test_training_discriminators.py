"""Discriminators: parity with the original VITS MultiPeriodDiscriminator (Piper's copy of the
original training code, piper.train.vits.models) at full size through the state-dict loader, the
loader's spellings and errors, files, shapes and init."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import state_dict_numpy
from torch.nn.utils import weight_norm

from vits_jax.training.discriminators import (DiscriminatorConfig, MultiPeriodDiscriminator,
                                              discriminator_shapes, from_torch_state_dict,
                                              init_discriminator, load_discriminator)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from piper.train.vits import models as vits_models

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")

SMALL = DiscriminatorConfig().scaled(16)
FAST = dict(compiler_options={"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})


def original_discriminator(divisor: int = 1, seed: int = 0, num_discriminators: int = 6):
    """The original MultiPeriodDiscriminator (scale + periods 2, 3, 5, 7, 11), random weights, with
    weight_g != ||weight_v|| so a test sees g and v apart. `divisor` > 1 narrows it for quick
    tests: every conv is rebuilt with its own kernel, stride, padding and groups read from the
    original module and its widths (and groups) divided, the original forward code unchanged.
    `num_discriminators` keeps the first n (the scale discriminator, then periods 2, 3, ...)."""
    def narrow(conv):
        width = lambda c: c if c == 1 else c // divisor
        return weight_norm(type(conv)(width(conv.in_channels), width(conv.out_channels), conv.kernel_size,
                                      conv.stride, padding=conv.padding, groups=max(1, conv.groups // divisor)))

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # torch's old weight_norm, as the original uses
        model = vits_models.MultiPeriodDiscriminator()
        model.discriminators = model.discriminators[:num_discriminators]
        if divisor > 1:
            for d in model.discriminators:
                d.convs = torch.nn.ModuleList([narrow(c) for c in d.convs])
                d.conv_post = narrow(d.conv_post)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(1 + 0.5 * torch.rand_like(p))
    return model


def channels_last(fmap: torch.Tensor) -> np.ndarray:
    """torch feature map (B, C, S) or (B, C, H, P) -> (B, S, C) or (B, H, P, C)."""
    x = fmap.detach().numpy()
    return x.transpose(0, 2, 1) if x.ndim == 3 else x.transpose(0, 2, 3, 1)


def assert_relative(ours, reference, tol, what):
    """max |ours - reference| <= tol * max |reference| (the reference's own scale)."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    scale = float(np.max(np.abs(reference)))
    err = float(np.max(np.abs(ours - reference)))
    assert scale > 0 and err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:.0e} x {scale:.3g}"


def test_full_size_matches_the_original():
    # The original at its own widths (46.7M parameters), its state dict through the mapper. 997
    # samples: no period divides it (every period discriminator reflect-pads) and the scale
    # discriminator's strides meet an odd length.
    model = original_discriminator().eval()
    params = from_torch_state_dict(state_dict_numpy(model))
    rng = np.random.default_rng(0)
    y, y_hat = (0.3 * rng.normal(size=(2, 1, 997))).astype(np.float32)
    with torch.no_grad():
        real_logits, generated_logits, real_fmaps, generated_fmaps = model(torch.from_numpy(y[:, None]),
                                                                          torch.from_numpy(y_hat[:, None]))
    logits, fmaps = jax.jit(MultiPeriodDiscriminator().apply, **FAST)({"params": params}, np.concatenate([y, y_hat]))
    assert len(logits) == len(fmaps) == 6
    for i in range(6):
        for half, ref_logits, ref_fmaps in ((slice(0, 1), real_logits, real_fmaps),
                                            (slice(1, 2), generated_logits, generated_fmaps)):
            # float32 through up to 7 convs of up to 5k terms: ~1e-6 of each output's own scale
            ref = ref_logits[i].numpy()
            assert np.max(np.abs(ref)) > 1e-3, "logits too small for a relative bound"
            assert_relative(logits[i][half], ref, 1e-5, f"logits of discriminator {i}")
            assert len(fmaps[i]) == len(ref_fmaps[i])
            for j, (ours, ref) in enumerate(zip(fmaps[i], ref_fmaps[i])):
                assert_relative(ours[half], channels_last(ref), 1e-5, f"feature map {j} of discriminator {i}")


def test_narrowed_original_matches_the_scaled_config():
    # The quick tests' torch model is the original narrowed 16x: its state dict fills exactly the
    # tree of DiscriminatorConfig().scaled(16) (the mapper is strict), and the two agree.
    model = original_discriminator(16).eval()
    params = from_torch_state_dict(state_dict_numpy(model), SMALL)
    y = np.random.default_rng(1).normal(scale=0.3, size=(2, 1024)).astype(np.float32)
    logits, fmaps = jax.jit(MultiPeriodDiscriminator(SMALL).apply, **FAST)({"params": params}, y)
    with torch.no_grad():
        for i, d in enumerate(model.discriminators):
            ref_logits, ref_fmaps = d(torch.from_numpy(y)[:, None])
            assert_relative(logits[i], ref_logits.numpy(), 1e-5, f"logits {i}")
            for ours, ref in zip(fmaps[i], ref_fmaps):
                assert_relative(ours, channels_last(ref), 1e-5, f"feature map of {i}")


def test_loader_accepts_parametrizations_and_reports_mismatches():
    sd = {k: v for k, v in original_discriminator(16).state_dict().items()}
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

    sd = original_discriminator(16).state_dict()
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
    logits, _ = jax.jit(MultiPeriodDiscriminator(SMALL).apply, **FAST)({"params": params}, jnp.zeros((1, 300)))
    assert all(np.all(np.isfinite(x)) for x in logits)
