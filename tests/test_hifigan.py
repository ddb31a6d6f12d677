"""Conv layers, HiFi-GAN residual blocks and decoder against torch / transformers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, assert_waveform_close, hf_model, ncw, nwc, small_config, state_dict_numpy

from convert import to_flax
from vits_jax import VitsConfig
from vits_jax.nn.hifigan import HifiGanResidualBlock, HifiGanResidualBlock2, VitsHifiGan, output_length
from vits_jax.nn.layers import ConvTranspose1d, conv1d
from vits_jax.nn.model import param_shapes
from vits_jax.voice import ORIGINAL_VITS, map_weights
from vits_jax.voice.mapper import KINDS


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


# Latents at about the scale the flow hands the decoder end to end (|z| up to ~5), where
# hf_model's waveforms peak at 0.2-0.5 (conftest.OUTPUT_PEAK).
LATENT_STD = 2.5


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
    z = LATENT_STD * rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    with torch.no_grad():
        ref = hf.decoder(ncw(z), None if g is None else ncw(g))[:, 0].numpy()
    ours = VitsHifiGan(cfg).apply({"params": params}, z, g)
    assert_waveform_close(ours, ref, what="decoder")


def test_decoder_masking_equals_unpadded(setup):
    """With lengths, a padded item's valid samples equal the item decoded alone."""
    hf, cfg, params, rng, g = setup
    z = LATENT_STD * rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    z[1, 7:] = 0.0
    with torch.no_grad():
        alone = hf.decoder(ncw(z[1:, :7]), None if g is None else ncw(g[1:]))[0, 0].numpy()
    ours = VitsHifiGan(cfg).apply({"params": params}, z, g, lengths=jnp.array([12, 7]))
    hop = cfg.hop_length
    assert_waveform_close(ours[1, :7 * hop], alone, what="masked decoder")
    assert np.all(np.asarray(ours[1, 7 * hop:]) == 0)


# --- HiFi-GAN V2/V3 residual block (config.resblock "2"), against Piper's original VITS code ---

def _piper_generator(seed, cfg):
    """Piper's VITS Generator (the original VITS / HiFi-GAN decoder) for `cfg`, weight norm removed."""
    from piper.train.vits.models import Generator

    torch.manual_seed(seed)
    gen = Generator(cfg.flow_size, cfg.resblock, cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes,
                    cfg.upsample_rates, cfg.upsample_initial_channel, cfg.upsample_kernel_sizes,
                    gin_channels=cfg.speaker_embedding_size).eval()
    gen.remove_weight_norm()
    with torch.no_grad():   # init_weights leaves biases at torch's default; give every tensor a value
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return gen


def _generator_params(gen, cfg):
    """The Generator's weights (original VITS names under `dec.`) through the original-VITS table."""
    state = {f"dec.{k}": v.detach().numpy() for k, v in gen.state_dict().items()}
    expected = {"decoder": param_shapes(cfg)["decoder"]}
    return map_weights(state, ORIGINAL_VITS, expected).tree["decoder"]


RESBLOCK2 = small_config(resblock_kernel_sizes=[3, 5, 7], resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]])


@pytest.mark.parametrize("speakers", [False, True], ids=["one-speaker", "speakers"])
def test_resblock2_decoder_matches_original_vits(speakers):
    extra = dict(num_speakers=3, speaker_embedding_size=4) if speakers else {}
    cfg = VitsConfig.from_dict({**RESBLOCK2, **extra, "resblock": "2"})
    gen = _piper_generator(3, cfg)
    params = _generator_params(gen, cfg)
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    g = rng.normal(size=(2, 1, 4)).astype(np.float32) if speakers else None

    # The block alone, against the original ResBlock2 (no mask, as the Generator calls it).
    x = rng.normal(size=(2, 30, cfg.upsample_initial_channel // 2)).astype(np.float32)
    with torch.no_grad():
        ref_block = gen.resblocks[2](ncw(x))
    block = HifiGanResidualBlock2(x.shape[-1], cfg.resblock_kernel_sizes[2], cfg.resblock_dilation_sizes[2],
                                  cfg.leaky_relu_slope)
    assert_close(block.apply({"params": params["resblocks_2"]}, x), nwc(ref_block), what="resblock2")

    with torch.no_grad():
        ref = gen(ncw(z), None if g is None else ncw(g))[:, 0].numpy()
    ours = VitsHifiGan(cfg).apply({"params": params}, z, g)
    assert_waveform_close(ours, ref, what="resblock2 decoder")

    # Masking: a padded item's valid samples equal the item decoded alone; zeros past them.
    z[1, 7:] = 0.0
    with torch.no_grad():
        alone = gen(ncw(z[1:, :7]), None if g is None else ncw(g[1:]))[0, 0].numpy()
    padded = VitsHifiGan(cfg).apply({"params": params}, z, g, lengths=jnp.array([12, 7]))
    hop = cfg.hop_length
    assert_waveform_close(padded[1, :7 * hop], alone, what="masked resblock2 decoder")
    assert np.all(np.asarray(padded[1, 7 * hop:]) == 0)


def test_resblock_type_round_trips_and_is_validated(tmp_path):
    cfg = VitsConfig.from_dict({**RESBLOCK2, "resblock": "2"})
    cfg.to_json(tmp_path / "config.json")
    assert VitsConfig.from_json(tmp_path) == cfg
    assert VitsConfig.from_json(tmp_path).resblock == "2"
    assert VitsConfig().resblock == "1"   # transformers' block by default
    with pytest.raises(ValueError, match="resblock"):
        VitsConfig(resblock="3")
    with pytest.raises(ValueError, match="resblock"):
        VitsConfig(resblock=2)


# --- (kernel - rate) odd: transformers' transposed convs give one extra sample per such stage ---

ODD = small_config(upsample_rates=[5, 4, 3], upsample_kernel_sizes=[10, 8, 6], upsample_initial_channel=16)


def test_decoder_odd_kernel_minus_rate_matches_transformers():
    hf = hf_model(7, **ODD)
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = to_flax(state_dict_numpy(hf), cfg)["decoder"]
    rng = np.random.default_rng(7)
    z = LATENT_STD * rng.normal(size=(2, 12, cfg.flow_size)).astype(np.float32)
    with torch.no_grad():
        ref = hf.decoder(ncw(z))[:, 0].numpy()
    assert ref.shape[1] == output_length(cfg, 12) == ((12 * 5 + 1) * 4) * 3 + 1 != 12 * cfg.hop_length
    ours = VitsHifiGan(cfg).apply({"params": params}, z)
    assert_waveform_close(ours, ref, what="odd-kernel decoder")

    z[1, 7:] = 0.0
    with torch.no_grad():
        alone = hf.decoder(ncw(z[1:, :7]))[0, 0].numpy()
    padded = VitsHifiGan(cfg).apply({"params": params}, z, lengths=jnp.array([12, 7]))
    n = output_length(cfg, 7)
    assert alone.shape == (n,)
    assert_waveform_close(padded[1, :n], alone, what="masked odd-kernel decoder")
    assert np.all(np.asarray(padded[1, n:]) == 0)


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
