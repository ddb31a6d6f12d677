"""Duration predictors and their parts against transformers, both flow directions."""

import copy

import numpy as np
import pytest
import torch
from conftest import assert_close, hf_model, ncw, nwc, small_config, state_dict_numpy

from convert import to_flax
from vits_jax import VitsConfig
from vits_jax.nn.duration import (VitsConvFlow, VitsDilatedDepthSeparableConv, VitsDurationPredictor,
                               VitsElementwiseAffine, VitsStochasticDurationPredictor)


def _setup(seed=3, **overrides):
    hf = hf_model(seed, **small_config(**overrides))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = to_flax(state_dict_numpy(hf), cfg)["duration_predictor"]
    rng = np.random.default_rng(seed)
    mask = np.ones((2, 9, 1), np.float32)
    mask[1, 6:] = 0
    x = rng.normal(size=(2, 9, cfg.hidden_size)).astype(np.float32)
    return hf, cfg, params, rng, mask, x


@pytest.fixture(scope="module")
def sdp():
    return _setup(num_speakers=3, speaker_embedding_size=5)


def test_dds_conv(sdp):
    hf, cfg, params, rng, mask, x = sdp
    g = rng.normal(size=(2, 9, cfg.hidden_size)).astype(np.float32)
    with torch.no_grad():
        ref = hf.duration_predictor.flows[1].conv_dds(ncw(x), ncw(mask), ncw(g))
    dds = VitsDilatedDepthSeparableConv(cfg.hidden_size, cfg.duration_predictor_kernel_size,
                                        cfg.depth_separable_num_layers)
    ours = dds.apply({"params": params["flows_1"]["conv_dds"]}, x, mask, g)
    assert_close(ours, nwc(ref), what="dds conv")


@pytest.mark.parametrize("reverse", [False, True])
def test_conv_flow_and_affine(sdp, reverse):
    hf, cfg, params, rng, mask, x = sdp
    z = (3 * rng.normal(size=(2, 9, 2))).astype(np.float32)   # some values beyond the tail bound
    flow = VitsConvFlow(cfg.hidden_size, cfg.depth_separable_channels, cfg.duration_predictor_kernel_size,
                        cfg.depth_separable_num_layers, cfg.duration_predictor_flow_bins,
                        cfg.duration_predictor_tail_bound)
    with torch.no_grad():
        ref, ref_ld = hf.duration_predictor.flows[2](ncw(z), ncw(mask), ncw(x), reverse=reverse)
        aref, aref_ld = hf.duration_predictor.flows[0](ncw(z), ncw(mask), reverse=reverse)
    ours, ld = flow.apply({"params": params["flows_2"]}, z, mask, x, reverse=reverse)
    assert_close(ours, nwc(ref), what="conv flow")
    aff, ald = VitsElementwiseAffine(2).apply({"params": params["flows_0"]}, z, mask, reverse=reverse)
    assert_close(aff, nwc(aref), what="elementwise affine")
    if not reverse:
        assert_close(ld, ref_ld.numpy(), what="conv flow log-det")
        assert_close(ald, aref_ld.numpy(), what="affine log-det")


def test_stochastic_reverse_with_noise(sdp):
    hf, cfg, params, rng, mask, x = sdp
    noise = rng.normal(size=(2, 9, 2)).astype(np.float32)
    g = rng.normal(size=(2, 1, cfg.speaker_embedding_size)).astype(np.float32)
    real_randn = torch.randn
    torch.randn = lambda *a, **k: ncw(noise)
    try:
        with torch.no_grad():
            ref = hf.duration_predictor(ncw(x), ncw(mask), ncw(g), reverse=True, noise_scale=0.8)
    finally:
        torch.randn = real_randn
    ours = VitsStochasticDurationPredictor(cfg).apply({"params": params}, x, mask, g, noise=noise,
                                                      noise_scale=0.8, reverse=True)
    assert_close(np.asarray(ours) * mask, nwc(ref) * mask, what="log durations")


class _FlippedAffine(torch.nn.Module):
    """Flow 0 (the elementwise affine) followed by a channel flip. transformers' training loop
    flips after every flow; the original VITS code flips only after each conv flow. Flipping once
    more after flow 0 cancels transformers' extra flip, giving the original order with the same
    modules and weights."""

    def __init__(self, affine):
        super().__init__()
        self.affine = affine

    def forward(self, latents, padding_mask, global_conditioning=None, reverse=False):
        latents, log_det = self.affine(latents, padding_mask, reverse=reverse)
        return torch.flip(latents, [1]), log_det


def test_stochastic_forward_likelihood(sdp):
    """The training bound in the original VITS flow order (see _FlippedAffine), which is the
    order the inference direction inverts."""
    hf, cfg, params, rng, mask, x = sdp
    noise = rng.normal(size=(2, 9, 2)).astype(np.float32)
    durations = (rng.integers(1, 9, size=(2, 9, 1)) * mask).astype(np.float32)
    predictor = copy.deepcopy(hf.duration_predictor)
    predictor.flows[0] = _FlippedAffine(predictor.flows[0])
    predictor.post_flows[0] = _FlippedAffine(predictor.post_flows[0])
    real_randn = torch.randn
    torch.randn = lambda *a, **k: ncw(noise)
    try:
        with torch.no_grad():
            ref = predictor(ncw(x), ncw(mask), None, durations=ncw(durations), reverse=False)
            transformers_order = hf.duration_predictor(ncw(x), ncw(mask), None, durations=ncw(durations),
                                                       reverse=False)
    finally:
        torch.randn = real_randn
    ours = VitsStochasticDurationPredictor(cfg).apply({"params": params}, x, mask, None, noise=noise,
                                                      durations=durations, reverse=False)
    assert_close(ours, ref.numpy(), what="duration nll")
    # The two orders give different bounds, so the comparison above can tell them apart.
    assert np.max(np.abs(ref.numpy() - transformers_order.numpy())) > 1e-3 * np.max(np.abs(ref.numpy()))


def test_deterministic_predictor():
    hf, cfg, params, rng, mask, x = _setup(4, use_stochastic_duration_prediction=False,
                                           num_speakers=2, speaker_embedding_size=3)
    g = rng.normal(size=(2, 1, 3)).astype(np.float32)
    with torch.no_grad():
        ref = hf.duration_predictor(ncw(x), ncw(mask), ncw(g))
    ours = VitsDurationPredictor(cfg).apply({"params": params}, x, mask, g)
    assert_close(ours, nwc(ref), what="deterministic log durations")


def test_one_interface_for_both_predictors(sdp):
    """log_durations / nll on either predictor: the stochastic one's are its reverse / forward
    directions (transformers' default direction is forward, reverse=False); the deterministic
    one's nll is the per-item squared error of log durations, against torch's MSE here."""
    hf, cfg, params, rng, mask, x = sdp
    noise = rng.normal(size=(2, 9, 2)).astype(np.float32)
    durations = (rng.integers(1, 9, size=(2, 9, 1)) * mask).astype(np.float32)
    sdp_module = VitsStochasticDurationPredictor(cfg)
    apply = lambda method, **kw: sdp_module.apply({"params": params}, x, mask, None, method=method, **kw)
    np.testing.assert_array_equal(apply(sdp_module.log_durations, noise=noise, noise_scale=0.8),
                                  apply(None, noise=noise, noise_scale=0.8, reverse=True))
    np.testing.assert_array_equal(apply(sdp_module.nll, noise=noise, durations=durations),
                                  apply(None, noise=noise, durations=durations))

    hf2, cfg2, params2, _, _, _ = _setup(4, use_stochastic_duration_prediction=False)
    dp = VitsDurationPredictor(cfg2)
    logw = dp.apply({"params": params2}, x, mask, method=dp.log_durations, noise=noise, noise_scale=0.8)
    with torch.no_grad():
        ref_logw = nwc(hf2.duration_predictor(ncw(x), ncw(mask)))
    assert_close(logw, ref_logw, what="deterministic log durations via the interface")
    nll = dp.apply({"params": params2}, x, mask, method=dp.nll, durations=durations)
    target = torch.log(torch.as_tensor(durations) + 1e-6) * torch.as_tensor(mask)
    ref = ((torch.as_tensor(ref_logw) - target) ** 2).sum(dim=(1, 2)).numpy()
    assert nll.shape == (2,)
    assert_close(nll, ref, what="deterministic per-item nll")
