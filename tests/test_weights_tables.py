"""The name tables row by row: original VITS names (Flip-shifted flow indices, ResBlock1 and
ResBlock2 decoders, both duration predictors) and the mapper's report of training-only groups."""

import numpy as np
import pytest

from vits_jax.voice import ORIGINAL_VITS, TRANSFORMERS, ConversionError, map_weights


@pytest.mark.parametrize("source, flax", [
    ("enc_p.emb.weight", "text_encoder/embed_tokens/embedding"),
    ("enc_p.encoder.attn_layers.1.conv_q.weight", "text_encoder/encoder/layers_1/attention/q_proj/kernel"),
    ("enc_p.encoder.attn_layers.0.conv_o.bias", "text_encoder/encoder/layers_0/attention/out_proj/bias"),
    ("enc_p.encoder.attn_layers.0.emb_rel_k", "text_encoder/encoder/layers_0/attention/emb_rel_k"),
    ("enc_p.encoder.norm_layers_2.1.gamma", "text_encoder/encoder/layers_1/final_layer_norm/scale"),
    ("flow.flows.6.enc.in_layers.2.weight", "flow/flows_3/wavenet/in_layers_2/kernel"),
    ("flow.flows.2.post.bias", "flow/flows_1/conv_post/bias"),
    ("dp.flows.0.logs", "duration_predictor/flows_0/log_scale"),
    ("dp.flows.7.convs.convs_sep.2.weight", "duration_predictor/flows_4/conv_dds/convs_dilated_2/kernel"),
    ("dp.post_flows.3.proj.bias", "duration_predictor/post_flows_2/conv_proj/bias"),
    ("dp.post_convs.norms_1.0.beta", "duration_predictor/post_conv_dds/norms_1_0/bias"),
    ("dp.convs.convs_1x1.1.weight", "duration_predictor/conv_dds/convs_pointwise_1/kernel"),
    ("dec.ups.2.weight", "decoder/upsampler_2/kernel"),
    ("dec.resblocks.4.convs1.2.weight", "decoder/resblocks_4/convs1_2/kernel"),
    ("dec.resblocks.4.convs.1.weight", "decoder/resblocks_4/convs_1/kernel"),     # ResBlock2
    ("enc_q.enc.res_skip_layers.15.bias", "posterior_encoder/wavenet/res_skip_layers_15/bias"),
    ("emb_g.weight", "embed_speaker/embedding"),
])
def test_original_vits_rows(source, flax):
    paths, _ = ORIGINAL_VITS.candidates(source)
    assert "/".join(paths[0]) == flax


@pytest.mark.parametrize("source", ["flow.flows.1.pre.weight",       # a Flip: holds no weights
                                    "dp.flows.2.pre.weight", "dec.resblocks.0.convs3.0.weight",
                                    "enc_p.encoder.attn_layers.0.conv_q.gamma"])
def test_original_vits_rejects(source):
    found = ORIGINAL_VITS.candidates(source)
    assert found is None or not found[0]


def test_layouts():
    w = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)        # Conv1d (out, in, k)
    _, conv = TRANSFORMERS.candidates("decoder.conv_pre.weight")
    assert conv(w).shape == (4, 3, 2) and conv(w)[1, 2, 0] == w[0, 2, 1]
    _, qkv = ORIGINAL_VITS.candidates("enc_p.encoder.attn_layers.0.conv_v.weight")
    x = np.arange(6, dtype=np.float32).reshape(3, 2, 1)               # 1x1 conv (out, in, 1)
    assert np.array_equal(qkv(x), x[:, :, 0].T)
    paths, _ = ORIGINAL_VITS.candidates("dp.proj.weight")             # stochastic or deterministic
    assert ["/".join(p) for p in paths] == ["duration_predictor/conv_proj/kernel", "duration_predictor/proj/kernel"]


def test_training_only_groups_absent_as_a_whole_or_reported():
    expected = {"posterior_encoder": {"conv_pre": {"bias": np.zeros(2)}},
                "duration_predictor": {"flows_0": {"translate": np.zeros(2), "log_scale": np.zeros(2)},
                                       "flows_1": {"conv_pre": {"bias": np.zeros(3)}},
                                       "post_conv_pre": {"bias": np.zeros(3)}}}
    state = {"dp.flows.0.m": np.ones((2, 1)), "dp.flows.0.logs": np.ones((2, 1))}
    mapped = map_weights(state, ORIGINAL_VITS, expected)
    assert mapped.absent == ("posterior encoder", "duration posterior", "unused duration flow")
    assert set(mapped.tree["duration_predictor"]) == {"flows_0"}
    with pytest.raises(ConversionError, match=r"missing \(1\):\n\s+duration_predictor/flows_0/log_scale"):
        map_weights({"dp.flows.0.m": np.ones((2, 1))}, ORIGINAL_VITS, expected)
