"""The notebooks in notebooks/ run headless from top to bottom (nbclient), on CPU, against small
random models: the quickstart on a transformers folder made here (with the MMS-eng tokenizer files),
split over two host devices so that its sharding cell runs too; the parity notebook on its own
default random model; the fine-tuning notebook on test_training_cli's tiny model and four
espeak-ng clips (sine tones where espeak-ng is missing), for a few steps. Any cell error fails the
test. Run offline with the default hub id, the quickstart stops with the library's message saying
to pass a local folder.

Kernels start with this interpreter (a kernel spec written to a temporary JUPYTER_PATH), so the
test needs only what `pip install -e .[test]` installs.
"""

import csv
import json
import os
import re
import sys

import nbformat
import numpy as np
import pytest
from conftest import TRAIN_TINY, hf_model, save_model_folder, small_config, speech_clip
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import vits_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = {name: os.path.join(ROOT, "notebooks", f"{name}.ipynb")
             for name in ("quickstart", "parity", "finetune")}
KERNEL = "vits-jax-tests"
# XLA:CPU without its expensive LLVM passes compiles about twice as fast; these models are tiny.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# Smaller than conftest's SMALL (one layer or flow per block, one upsampling stage), with speakers.
TINY = small_config(vocab_size=38, num_speakers=2, speaker_embedding_size=4, num_hidden_layers=1,
                    prior_encoder_num_flows=1, duration_predictor_num_flows=1,
                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], upsample_rates=[8],
                    upsample_kernel_sizes=[16])


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    """A JUPYTER_PATH whose only kernel runs this interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL, "language": "python"}))
    return str(root)


@pytest.fixture(scope="module")
def model_dir(model_folder):
    """A transformers folder (2 speakers) with the MMS-eng tokenizer files beside it."""
    return model_folder(5, **TINY)


def _run(name, tmp_path, jupyter_path, monkeypatch, parameters="", devices=1):
    """Executes a notebook, with `parameters` in a cell after its `parameters` cell (as papermill
    does), and returns it with its outputs. Raises CellExecutionError on a cell error."""
    nb = nbformat.read(NOTEBOOKS[name], as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(
        parameters, metadata={"tags": ["injected-parameters"]}))
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    cache = tmp_path / "hf-cache"  # empty: no cached copy of a hub model
    env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1", HF_HOME=str(cache),
               HF_HUB_CACHE=str(cache / "hub"), XLA_PYTHON_CLIENT_PREALLOCATE="false",
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE} "
                         f"--xla_force_host_platform_device_count={devices}".strip())
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    client = NotebookClient(nb, timeout=300, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    return nb


def _outputs(nb):
    """(printed text and HTML of all cells, the MIME types of all rich outputs)."""
    text, mimes = [], set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text.append(out.text)
            mimes.update(out.get("data", {}))
            text.append(out.get("data", {}).get("text/html", ""))
    return "".join(text), mimes


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS[name], as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), \
        f"{name}.ipynb stores outputs: clear them before committing"
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"


def test_quickstart_runs_on_a_local_model_over_two_devices(model_dir, tmp_path, jupyter_path, monkeypatch):
    nb = _run("quickstart", tmp_path, jupyter_path, monkeypatch, f"MODEL = {model_dir!r}", devices=2)
    text, mimes = _outputs(nb)
    # every Audio shown: sentence, batch, variants, speakers, SSML, voice conversion
    assert "image/png" in mimes and text.count("<audio") == 1 + 3 + 5 + 2 + 1 + 1
    assert "2 speaker(s)" in text and "speaker 1:" in text
    assert re.search(r"SSML: \d+\.\d\d s in 2 pieces", text), text
    assert re.search(r"converted speaker 0 -> 1: \d+\.\d\d s", text), text
    assert "real-time factor" in text
    assert "8 items:" in text and "on 2 (" in text
    difference = re.search(r"largest difference between the two: (\S+)", text)
    assert difference and float(difference.group(1)) < 1e-5, text


def test_parity_notebook_matches_transformers(tmp_path, jupyter_path, monkeypatch):
    nb = _run("parity", tmp_path, jupyter_path, monkeypatch)
    text, mimes = _outputs(nb)
    assert "image/png" in mimes
    assert "all stages within 0.0001; durations identical" in text
    for stage in ("text encoder hidden states", "log durations", "spectrogram (flow output)",
                  "waveform (synthesize)"):
        assert stage in text


def test_quickstart_offline_with_the_default_hub_id_fails_with_a_clear_message(
        tmp_path, jupyter_path, monkeypatch):
    with pytest.raises(CellExecutionError) as info:
        _run("quickstart", tmp_path, jupyter_path, monkeypatch)
    message = str(info.value)
    assert "ModelNotFoundError" in message
    assert "'facebook/mms-tts-eng'" in message and "the hub is not reachable" in message
    assert "pass a local model folder instead" in message


# The fine-tuning notebook runs on conftest's TRAIN_TINY model (hop 64 keeps the step small).
CLIP_TEXTS = ["hello there", "a short test", "good morning", "the birch canoe"]
FINETUNE_STEPS = 40
# One batch of all four clips (one shape to compile), a small discriminator, short windows; lr 10x
# the default so that a few steps show the mel loss falling.
FINETUNE = dict(STEPS=FINETUNE_STEPS, BATCH_SIZE=4, LEARNING_RATE=2e-3, FAST_COMPILE=True,
                DISCRIMINATOR_SCALE=16, SEGMENT_FRAMES=16, N_MELS=40, SAVE_EVERY=1000,
                SAMPLE_TEXT="hello there")


@pytest.fixture(scope="module")
def finetune_setup(tmp_path_factory):
    """(a tiny single-speaker transformers folder, a folder of NAME.wav + NAME.txt clips)."""
    root = tmp_path_factory.mktemp("finetune")
    model = root / "tiny"
    save_model_folder(hf_model(5, **TRAIN_TINY), model)
    clips = root / "clips"
    clips.mkdir()
    for i, text in enumerate(CLIP_TEXTS):
        speech_clip(clips / f"{i:02d}.wav", text, i)
        (clips / f"{i:02d}.txt").write_text(text.capitalize() + ".\n")
    return str(model), str(clips)


def test_finetune_trains_a_voice_and_plays_it_before_and_after(
        finetune_setup, tmp_path, jupyter_path, monkeypatch):
    model, clips = finetune_setup
    out = tmp_path / "run"
    parameters = "\n".join(f"{k} = {v!r}" for k, v in
                           dict(MODEL=model, CLIPS=clips, OUT=str(out), **FINETUNE).items())
    nb = _run("finetune", tmp_path, jupyter_path, monkeypatch, parameters)
    text, mimes = _outputs(nb)
    shown = re.sub(r"data:audio/wav;base64,[^\"]*", "data:audio/wav;base64,...", text)
    assert "image/png" in mimes and text.count("<audio") == 2, shown  # before and after
    assert f"{len(CLIP_TEXTS)} clips" in text and "0 row(s) skipped" in text, shown
    assert "steps/s" in text
    mel = re.search(r"mel loss: first (\d+) steps (\S+) -> last \1 steps (\S+)", text)
    assert mel and mel.group(1) == "10", shown
    first, last = float(mel.group(2)), float(mel.group(3))
    assert np.isfinite(first) and np.isfinite(last), mel.group(0)
    assert last < first, mel.group(0)

    with open(out / "losses.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, FINETUNE_STEPS + 1))
    trained, start = vits_jax.load(str(out / "model")), vits_jax.load(model)
    assert trained.config == start.config
    assert not np.array_equal(np.asarray(trained["decoder"]["conv_pre"]["kernel"]),
                              np.asarray(start["decoder"]["conv_pre"]["kernel"]))


@pytest.mark.parametrize("name", ["quickstart", "finetune"])
def test_install_cell_points_at_the_declared_repository(name):
    """The install cell pip-installs from the repository pyproject.toml declares, with extras it defines."""
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    nb = nbformat.read(NOTEBOOKS[name], as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and "%pip install" in c.source)
    url = re.search(r'VITS_JAX_GIT = "git\+(\S+?)\.git"', source)
    assert url and url.group(1) == project["urls"]["Repository"], source
    extras = re.search(r"vits-jax\[([^\]]+)\] @", source)
    assert extras and set(extras.group(1).split(",")) <= set(project["optional-dependencies"]), source
