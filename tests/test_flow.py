"""WaveNet, residual coupling flow and posterior encoder against transformers."""

import numpy as np
import pytest
import torch
from conftest import assert_close, hf_model, ncw, nwc, small_config, state_dict_numpy

from convert import to_flax
from vits_jax import VitsConfig
from vits_jax.nn.flow import VitsResidualCouplingBlock, VitsResidualCouplingLayer
from vits_jax.nn.posterior import VitsPosteriorEncoder
from vits_jax.nn.wavenet import VitsWaveNet


@pytest.fixture(scope="module", params=[False, True], ids=["one-speaker", "speakers"])
def setup(request):
    extra = dict(num_speakers=4, speaker_embedding_size=6) if request.param else {}
    hf = hf_model(5, **small_config(wavenet_dilation_rate=2, **extra))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = to_flax(state_dict_numpy(hf), cfg)
    rng = np.random.default_rng(1)
    mask = np.ones((2, 13, 1), np.float32)
    mask[0, 10:] = 0
    g = rng.normal(size=(2, 1, 6)).astype(np.float32) if request.param else None
    return hf, cfg, params, rng, mask, g


def _t(g):
    return None if g is None else ncw(g)


def test_wavenet(setup):
    hf, cfg, params, rng, mask, g = setup
    x = rng.normal(size=(2, 13, cfg.hidden_size)).astype(np.float32) * mask
    with torch.no_grad():
        ref = hf.posterior_encoder.wavenet(ncw(x), ncw(mask), _t(g))
    net = VitsWaveNet(cfg.hidden_size, cfg.posterior_encoder_num_wavenet_layers, cfg.wavenet_kernel_size,
                      cfg.wavenet_dilation_rate, cfg.speaker_embedding_size)
    ours = net.apply({"params": params["posterior_encoder"]["wavenet"]}, x, mask, g)
    assert_close(ours, nwc(ref), what="wavenet")


@pytest.mark.parametrize("reverse", [False, True])
def test_coupling_layer_and_block(setup, reverse):
    hf, cfg, params, rng, mask, g = setup
    z = rng.normal(size=(2, 13, cfg.flow_size)).astype(np.float32)
    with torch.no_grad():
        ref_layer, _ = hf.flow.flows[1](ncw(z), ncw(mask), _t(g), reverse=reverse)
        ref_block = hf.flow(ncw(z), ncw(mask), _t(g), reverse=reverse)
    layer = VitsResidualCouplingLayer(cfg).apply({"params": params["flow"]["flows_1"]}, z, mask, g,
                                                 reverse=reverse)
    block = VitsResidualCouplingBlock(cfg).apply({"params": params["flow"]}, z, mask, g, reverse=reverse)
    assert_close(layer, nwc(ref_layer), what="coupling layer")
    assert_close(block, nwc(ref_block), what="coupling block")


def test_flow_inverse(setup):
    _, cfg, params, rng, mask, g = setup
    z = rng.normal(size=(2, 13, cfg.flow_size)).astype(np.float32) * mask
    block = VitsResidualCouplingBlock(cfg)
    y = block.apply({"params": params["flow"]}, z, mask, g)
    np.testing.assert_allclose(block.apply({"params": params["flow"]}, y, mask, g, reverse=True), z, atol=1e-5)


def test_posterior_encoder(setup, monkeypatch):
    hf, cfg, params, rng, mask, g = setup
    spec = rng.normal(size=(2, 13, cfg.spectrogram_bins)).astype(np.float32)
    noise = rng.normal(size=(2, 13, cfg.flow_size)).astype(np.float32)
    monkeypatch.setattr(torch, "randn_like", lambda t, **k: ncw(noise))
    with torch.no_grad():
        ref = hf.posterior_encoder(ncw(spec), ncw(mask), _t(g))
    ours = VitsPosteriorEncoder(cfg).apply({"params": params["posterior_encoder"]}, spec, mask, g, noise=noise)
    for name, a, b in zip(["sampled", "mean", "log_stddev"], ours, ref):
        assert_close(a, nwc(b), what=f"posterior {name}")
