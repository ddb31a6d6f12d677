"""Relative-position attention: the pure helpers and the module against transformers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, hf_model, small_config, state_dict_numpy, to_torch

from convert import to_flax
from vits_jax import VitsConfig
from vits_jax.nn.attention import (VitsAttention, absolute_to_relative, relative_embeddings,
                                relative_to_absolute)


@pytest.fixture(scope="module")
def hf_attention():
    hf = hf_model(0, **small_config(window_size=2))
    return hf, hf.text_encoder.encoder.layers[0].attention


@pytest.mark.parametrize("length", [1, 2, 3, 7, 12])
def test_reshape_helpers_match_transformers(hf_attention, length):
    _, att = hf_attention
    rng = np.random.default_rng(length)
    rel = rng.normal(size=(6, length, 2 * length - 1)).astype(np.float32)
    ab = rng.normal(size=(6, length, length)).astype(np.float32)
    np.testing.assert_array_equal(relative_to_absolute(jnp.asarray(rel)),
                                  att._relative_position_to_absolute_position(to_torch(rel)).numpy())
    np.testing.assert_array_equal(absolute_to_relative(jnp.asarray(ab)),
                                  att._absolute_position_to_relative_position(to_torch(ab)).numpy())
    emb = rng.normal(size=(1, 2 * att.window_size + 1, 8)).astype(np.float32)
    np.testing.assert_array_equal(relative_embeddings(jnp.asarray(emb[0]), length, att.window_size),
                                  att._get_relative_embeddings(to_torch(emb), length)[0].numpy())


def test_helpers_under_jit_and_vmap():
    x = jax.random.normal(jax.random.key(0), (4, 3, 5, 9))
    eager = relative_to_absolute(x)
    np.testing.assert_array_equal(jax.jit(relative_to_absolute)(x), eager)
    np.testing.assert_array_equal(jax.vmap(relative_to_absolute)(x), eager)
    y = jax.random.normal(jax.random.key(1), (4, 3, 5, 5))
    np.testing.assert_array_equal(jax.vmap(jax.jit(absolute_to_relative))(y), absolute_to_relative(y))
    # abs -> rel -> abs is the identity
    np.testing.assert_allclose(relative_to_absolute(absolute_to_relative(y)), y)


@pytest.mark.parametrize("window_size", [2, 12])  # window below and above the length
def test_attention_module_matches_transformers(window_size):
    hf = hf_model(1, **small_config(window_size=window_size))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = to_flax(state_dict_numpy(hf), cfg)["text_encoder"]["encoder"]["layers_0"]["attention"]
    att = hf.text_encoder.encoder.layers[0].attention
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, cfg.hidden_size)).astype(np.float32)
    valid = np.ones((2, 9), bool)
    valid[1, 6:] = False
    additive = np.where(valid, 0.0, np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
    additive = np.broadcast_to(additive, (2, 1, 9, 9)).copy()
    with torch.no_grad():
        ref, _ = att(to_torch(x), attention_mask=to_torch(additive))
    module = VitsAttention(cfg.hidden_size, cfg.num_attention_heads, cfg.window_size, cfg.use_bias)
    ours = module.apply({"params": params}, jnp.asarray(x), jnp.asarray(valid))
    assert_close(ours, ref.numpy(), what="attention")
    vmapped = jax.vmap(lambda xi, mi: module.apply({"params": params}, xi[None], mi[None])[0])(
        jnp.asarray(x), jnp.asarray(valid))
    assert_close(vmapped, ref.numpy(), what="vmap attention")
