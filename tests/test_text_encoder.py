"""Feed-forward, encoder layer and text encoder (with prior projection) against transformers."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, hf_model, small_config, state_dict_numpy, to_torch

from convert import to_flax
from vits_jax import VitsConfig
from vits_jax.nn.text_encoder import VitsEncoderLayer, VitsFeedForward, VitsTextEncoder


@pytest.fixture(scope="module")
def setup():
    hf = hf_model(2, **small_config(ffn_kernel_size=4))   # even kernel: asymmetric padding
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = to_flax(state_dict_numpy(hf), cfg)["text_encoder"]
    rng = np.random.default_rng(0)
    mask = np.ones((2, 10, 1), np.float32)
    mask[1, 7:] = 0
    return hf, cfg, params, rng, mask


def test_feed_forward(setup):
    hf, cfg, params, rng, mask = setup
    x = rng.normal(size=(2, 10, cfg.hidden_size)).astype(np.float32)
    with torch.no_grad():
        ref = hf.text_encoder.encoder.layers[0].feed_forward(to_torch(x), to_torch(mask))
    ff = VitsFeedForward(cfg.hidden_size, cfg.ffn_dim, cfg.ffn_kernel_size, cfg.hidden_act)
    ours = ff.apply({"params": params["encoder"]["layers_0"]["feed_forward"]}, x, mask)
    assert_close(ours, ref.numpy(), what="feed-forward")


def test_encoder_layer(setup):
    hf, cfg, params, rng, mask = setup
    x = rng.normal(size=(2, 10, cfg.hidden_size)).astype(np.float32)
    additive = np.where(mask[:, None, None, :, 0] > 0, 0, np.finfo(np.float32).min).astype(np.float32)
    with torch.no_grad():
        ref = hf.text_encoder.encoder.layers[1](to_torch(x), to_torch(mask),
                                                attention_mask=to_torch(np.broadcast_to(additive, (2, 1, 10, 10)).copy()))[0]
    layer = VitsEncoderLayer(cfg)
    ours = layer.apply({"params": params["encoder"]["layers_1"]}, x, mask, mask[..., 0] > 0)
    # Padded rows differ in transformers only by what padding does there; compare valid rows.
    assert_close(np.asarray(ours) * mask, ref.numpy() * mask, what="encoder layer")


def test_text_encoder(setup):
    hf, cfg, params, rng, mask = setup
    ids = rng.integers(0, cfg.vocab_size, size=(2, 10))
    with torch.no_grad():
        ref = hf.text_encoder(input_ids=to_torch(ids), padding_mask=to_torch(mask),
                              attention_mask=to_torch(mask[..., 0].astype(np.int64)))
    hidden, means, logv = VitsTextEncoder(cfg).apply({"params": params}, jnp.asarray(ids), mask)
    assert_close(hidden, ref.last_hidden_state.numpy(), what="hidden")
    assert_close(means, ref.prior_means.numpy(), what="prior means")
    assert_close(logv, ref.prior_log_variances.numpy(), what="prior log variances")
