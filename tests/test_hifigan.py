"""Conv layers, HiFi-GAN residual blocks and decoder against torch / transformers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, hf_model, ncw, nwc, small_config, state_dict_numpy

from convert import to_flax
from convert.table import KINDS
from vits_jax import VitsConfig
from vits_jax.hifigan import HifiGanResidualBlock, VitsHifiGan
from vits_jax.layers import ConvTranspose1d, conv1d


@pytest.mark.parametrize("k,stride,pad", [(16, 8, 4), (4, 2, 1), (5, 3, 0), (3, 1, 1), (7, 2, 3)])
def test_conv_transpose_matches_torch(k, stride, pad):
    torch.manual_seed(k)
    layer = torch.nn.ConvTranspose1d(6, 5, k, stride=stride, padding=pad)
    x = np.random.default_rng(k).normal(size=(2, 11, 6)).astype(np.float32)
    with torch.no_grad():
        ref = nwc(layer(ncw(x)))
    kernel = KINDS["conv_transpose"]["weight"][1](layer.weight.detach().numpy())
    ours = ConvTranspose1d(5, k, stride, pad).apply(
        {"params": {"kernel": kernel, "bias": layer.bias.detach().numpy()}}, x)
    assert_close(ours, ref, tol=1e-6, what="conv transpose")


@pytest.mark.parametrize("k,dilation,pad,groups", [(5, 1, 2, 1), (3, 3, 3, 1), (3, 9, 9, 6), (4, 1, 0, 2)])
def test_conv_matches_torch(k, dilation, pad, groups):
    torch.manual_seed(k)
    layer = torch.nn.Conv1d(6, 4 if groups < 6 else 6, k, dilation=dilation, padding=pad, groups=groups)
    x = np.random.default_rng(k).normal(size=(2, 23, 6)).astype(np.float32)
    with torch.no_grad():
        ref = nwc(layer(ncw(x)))
    kernel = KINDS["conv"]["weight"][1](layer.weight.detach().numpy())
    ours = conv1d(layer.out_channels, k, dilation, pad, groups).apply(
        {"params": {"kernel": kernel, "bias": layer.bias.detach().numpy()}}, x)
    assert_close(ours, ref, tol=1e-6, what="conv")


@pytest.fixture(scope="module", params=[False, True], ids=["one-speaker", "speakers"])
def setup(request):
    extra = dict(num_speakers=3, speaker_embedding_size=4) if request.param else {}
    hf = hf_model(6, **small_config(**extra))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = to_flax(state_dict_numpy(hf), cfg)["decoder"]
    rng = np.random.default_rng(2)
    g = rng.normal(size=(2, 1, 4)).astype(np.float32) if request.param else None
    return hf, cfg, params, rng, g


def test_residual_block(setup):
    hf, cfg, params, rng, _ = setup
    x = rng.normal(size=(2, 30, cfg.upsample_initial_channel // 2)).astype(np.float32)
    with torch.no_grad():
        ref = hf.decoder.resblocks[1](ncw(x))
    block = HifiGanResidualBlock(x.shape[-1], cfg.resblock_kernel_sizes[1], cfg.resblock_dilation_sizes[1],
                                 cfg.leaky_relu_slope)
    assert_close(block.apply({"params": params["resblocks_1"]}, x), nwc(ref), what="resblock")


def test_decoder(setup):
    hf, cfg, params, rng, g = setup
    z = rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    with torch.no_grad():
        ref = hf.decoder(ncw(z), None if g is None else ncw(g))[:, 0].numpy()
    ours = VitsHifiGan(cfg).apply({"params": params}, z, g)
    assert_close(ours, ref, what="decoder")


def test_decoder_masking_equals_unpadded(setup):
    """With lengths, a padded item's valid samples equal the item decoded alone."""
    hf, cfg, params, rng, g = setup
    z = rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    z[1, 7:] = 0.0
    with torch.no_grad():
        alone = hf.decoder(ncw(z[1:, :7]), None if g is None else ncw(g[1:]))[0, 0].numpy()
    ours = VitsHifiGan(cfg).apply({"params": params}, z, g, lengths=jnp.array([12, 7]))
    hop = cfg.hop_length
    assert_close(ours[1, :7 * hop], alone, what="masked decoder")
    assert np.all(np.asarray(ours[1, 7 * hop:]) == 0)


def test_decoder_compute_dtype_field(setup):
    """dtype=bfloat16: every conv computes in bf16 on the float32 params (cast inside, none
    stored), and the waveform comes back float32 and close to the float32 decoder's."""
    _, cfg, params, rng, g = setup
    z = rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    low = VitsHifiGan(cfg, dtype=jnp.bfloat16)
    jaxpr = jax.make_jaxpr(lambda p: low.apply({"params": p}, z, g))(params)
    convs = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
    assert convs and all(v.aval.dtype == jnp.bfloat16 for e in convs for v in e.invars), "a conv ran in float32"
    out = low.apply({"params": params}, z, g)
    ref = VitsHifiGan(cfg).apply({"params": params}, z, g)
    assert out.dtype == jnp.float32 and all(x.dtype == np.float32 for x in jax.tree.leaves(params))
    # bfloat16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%) through ~20 convs: a few percent
    # of the waveform's scale, and far from float32's agreement (checked not to be it).
    err = float(np.max(np.abs(np.asarray(out) - np.asarray(ref))))
    scale = float(np.max(np.abs(np.asarray(ref))))
    assert 0 < err <= 0.05 * scale, (err, scale)
