"""`vits-jax train` (cli.py + training/loop.py) on a tiny random transformers model and a few
espeak-ng clips (sine tones where espeak-ng is missing): output files, losses.csv, resuming, and
that the trained model folder loads and speaks."""

import csv
import os
import wave

import numpy as np
import pytest
from conftest import TRAIN_TINY, hf_model, save_model_folder, speech_clip

import vits_jax
from vits_jax.app import main as cli

TEXTS = ["hello there", "a short test", "good morning"]
FAST = ["--fast-compile", "--discriminator-scale", "16", "--segment-frames", "16", "--n-mels", "40",
        "--batch-size", "3", "--no-cache"]  # one batch: one shape to compile


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    model = root / "tiny"
    save_model_folder(hf_model(5, **TRAIN_TINY), model)
    (root / "clips").mkdir()
    with open(root / "train.csv", "w") as f:
        f.write("audio,text\n")
        for i, text in enumerate(TEXTS):
            speech_clip(root / "clips" / f"{i}.wav", text, i)
            f.write(f"clips/{i}.wav,{text}\n")
        f.write("clips/missing.wav,not there\n")
    return root, str(model)


def _tensorboard_scalars(folder) -> dict:
    """{tag: {step: value}} from the TFRecord event files in `folder` (each record: uint64 length,
    uint32 crc, the Event proto, uint32 crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict = {}
    files = [f for f in os.listdir(folder) if f.startswith("events.out.tfevents")]
    assert files, os.listdir(folder)
    for name in files:
        data = open(os.path.join(folder, name), "rb").read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_a_model_that_speaks(setup, capsys):
    root, model = setup
    out = root / "run"
    argv = ["train", "--model", model, "--data", str(root / "train.csv"), "--out", str(out),
            "--steps", "3", "--save-every", "2", "--sample-every", "2", "--lr", "1e-3", *FAST]
    with pytest.warns(UserWarning, match="skipped 1 of 4 rows"):    # the missing clip of `setup`
        assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "3 clips" in err and "1 rows skipped" in err and "steps/s" in err
    rows = _rows(out / "losses.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert {"mel", "kl", "duration", "generator", "discriminator"} <= set(rows[0])
    assert all(np.isfinite(float(r["mel"])) for r in rows)
    assert _rows(out / "skipped.csv")[0]["row"] == "4"
    assert sorted(os.listdir(out / "samples")) == ["step_0000002.wav", "step_0000003.wav"]
    assert sorted(os.listdir(out / "checkpoints")) == ["2", "3"]
    assert (out / "losses.png").is_file()
    # TensorBoard scalars (tensorboardX is a test dependency): one value per step and metric
    scalars = _tensorboard_scalars(out / "tensorboard")
    assert sorted(scalars["train/mel"]) == [1, 2, 3]
    assert scalars["train/mel"][2] == pytest.approx(float(rows[1]["mel"]), rel=1e-5)

    # the model folder: a vits-jax checkpoint with the tokenizer files; trained weights differ
    trained, start = vits_jax.load(out / "model"), vits_jax.load(model)
    assert trained.config == start.config
    assert (out / "model" / "vocab.json").is_file()
    assert not np.array_equal(np.asarray(trained["decoder"]["conv_pre"]["kernel"]),
                              np.asarray(start["decoder"]["conv_pre"]["kernel"]))
    wav = root / "said.wav"
    assert cli.main(["say", "hello", "-m", str(out / "model"), "-o", str(wav), "--no-cache"]) == 0
    with wave.open(str(wav)) as w:
        assert w.getframerate() == trained.config.sampling_rate and w.getnframes() > 0

    # the same --out again with more steps resumes from the newest checkpoint (step 3)
    with pytest.warns(UserWarning, match="skipped 1 of 4 rows"):
        assert cli.main([*argv[:7], "--steps", "4", *argv[9:]]) == 0
    assert "resuming" in capsys.readouterr().err
    assert [int(r["step"]) for r in _rows(out / "losses.csv")] == [1, 2, 3, 4]
    assert sorted(os.listdir(out / "checkpoints")) == ["2", "3", "4"]


def test_train_errors(setup, capsys, tmp_path):
    root, model = setup
    bad = tmp_path / "bad.csv"
    bad.write_text("audio,text\nnowhere.wav,hello\n")
    with pytest.warns(UserWarning, match="skipped 1 of 1 rows"):
        assert cli.main(["train", "--model", model, "--data", str(bad), "--out", str(tmp_path / "o"), *FAST]) == 1
    assert "no usable rows" in capsys.readouterr().err
    assert cli.main(["train", "--model", model, "--data", str(tmp_path / "none.csv"),
                     "--out", str(tmp_path / "o"), *FAST]) == 1
    assert "not found" in capsys.readouterr().err
    assert cli.main(["train", "--model", model, "--data", str(bad), "--out", str(tmp_path / "o"),
                     "--steps", "0", *FAST]) == 1
    assert "--steps must be >= 1" in capsys.readouterr().err


def test_train_starts_from_given_discriminator_weights(setup, capsys, tmp_path):
    import jax
    import torch
    from test_training_discriminators import original_discriminator

    from vits_jax.training import DiscriminatorConfig, TrainConfig, TrainState, load_discriminator
    from vits_jax.training.discriminators import init_discriminator
    from vits_jax.training.checkpoints import TrainCheckpoints

    root, model = setup
    weights = tmp_path / "D_0.pth"
    # VITS' own discriminator narrowed 16x (the widths of DiscriminatorConfig().scaled(16)), as D_*.pth holds it
    torch.save({"model": original_discriminator(16).state_dict(), "iteration": 0}, weights)
    out = tmp_path / "run"
    # the learning rate of test_train_writes_a_model_that_speaks: the same compiled step serves
    argv = ["train", "--model", model, "--data", str(root / "train.csv"), "--out", str(out), "--steps", "1",
            "--lr", "1e-3", "--discriminator", str(weights), *FAST]
    with pytest.warns(UserWarning, match="skipped 1 of 4 rows"):
        assert cli.main(argv) == 0
    assert f"discriminator: {weights}" in capsys.readouterr().err
    # one AdamW step moves each weight by about the learning rate (|m / sqrt(v)| = 1 at step 1), so
    # the trained discriminator lies within ~1e-3 of the loaded one, and far from a fresh one
    config = DiscriminatorConfig().scaled(16)
    loaded = load_discriminator(str(weights), config)
    like = TrainState.create(vits_jax.load(model).tree, loaded, TrainConfig())
    with TrainCheckpoints(str(out / "checkpoints")) as ckpt:
        saved = ckpt.restore(1, like, jax.random.key(0)).state.discriminator
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), saved, loaded)))
    fresh = init_discriminator(config, jax.random.key(0))
    apart = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), fresh, loaded)))
    assert 0 < moved <= 1.5e-3 and apart > 0.05, (moved, apart)
    with pytest.warns(UserWarning, match="skipped 1 of 4 rows"):
        assert cli.main([*argv[:-len(FAST)], "--discriminator", str(tmp_path / "none.pth"), *FAST]) == 1


def test_train_device_count_errors(setup, capsys, tmp_path):
    root, model = setup
    data, out = str(root / "train.csv"), str(tmp_path / "o")
    assert cli.main(["train", "--model", model, "--data", data, "--out", out, *FAST, "--devices", "0"]) == 1
    assert "devices must be between 1 and the 1 local device(s), got 0" in capsys.readouterr().err
    assert cli.main(["train", "--model", model, "--data", data, "--out", out, *FAST, "--devices", "2"]) == 1
    assert "got 2" in capsys.readouterr().err
