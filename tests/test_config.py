"""VitsConfig: every field's type and range checked when built; bad JSON named by its file."""

import dataclasses

import pytest

from vits_jax import VitsConfig


def test_transformers_config_round_trips(tmp_path):
    from transformers import VitsConfig as HFConfig

    cfg = VitsConfig.from_dict(HFConfig().to_dict())
    assert cfg == VitsConfig()
    cfg.to_json(tmp_path / "config.json")
    assert VitsConfig.from_json(tmp_path) == cfg
    assert VitsConfig(resblock="2").to_dict()["resblock"] == "2"


@pytest.mark.parametrize("field, value, message", [
    ("hidden_size", "192", r"hidden_size must be an integer, got '192' \(str\)"),
    ("hidden_size", True, "hidden_size must be an integer"),
    ("hidden_size", 19.5, "hidden_size must be an integer"),
    ("hidden_size", 0, "hidden_size must be > 0"),
    ("num_speakers", -1, "num_speakers must be > 0"),
    ("speaker_embedding_size", -4, "speaker_embedding_size must be >= 0"),
    ("noise_scale", float("nan"), "noise_scale must be finite"),
    ("noise_scale", -0.1, "noise_scale must be >= 0"),
    ("speaking_rate", 0, "speaking_rate must be > 0"),
    ("layerdrop", 1.5, r"layerdrop must be in \[0, 1\]"),
    ("use_stochastic_duration_prediction", "yes", "must be true or false"),
    ("hidden_act", 3, "hidden_act must be a non-empty string"),
    ("upsample_rates", [], "upsample_rates must be a non-empty list"),
    ("upsample_rates", "8,8", "upsample_rates must be a non-empty list"),
    ("upsample_rates", [8, -2], "upsample_rates must be > 0"),
    ("resblock_dilation_sizes", [[1, 3], "5"], "resblock_dilation_sizes must be a non-empty list"),
    ("window_size", 0, "window_size must be > 0"),
    ("pad_token_id", -1, "pad_token_id must be >= 0"),
])
def test_bad_field_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        VitsConfig.from_dict({field: value})


def test_valid_edge_values_are_kept():
    cfg = VitsConfig.from_dict({"window_size": None, "pad_token_id": 0, "noise_scale": 0, "hidden_size": 192.0})
    assert cfg.window_size is None and cfg.pad_token_id == 0 and cfg.noise_scale == 0.0
    assert isinstance(cfg.hidden_size, int) and hash(cfg) == hash(VitsConfig(window_size=None, pad_token_id=0, noise_scale=0.0))
    assert dataclasses.replace(cfg, noise_scale=0.5).noise_scale == 0.5


@pytest.mark.parametrize("content, message", [
    ("[]", "config.json: a config must be a JSON object of fields, got list"),
    ('{"hidden_size": "192"', "config.json is not valid JSON"),
    ('{"hidden_size": "192"}', "config.json: config field hidden_size must be an integer"),
    ("\xff\xfe", "config.json is not valid JSON"),
])
def test_bad_config_json_names_the_file(tmp_path, content, message):
    (tmp_path / "config.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError, match=message):
        VitsConfig.from_json(tmp_path / "config.json")
