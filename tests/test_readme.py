"""README.md says what runs: every ```python block executes as written (with the hub id
`facebook/mms-tts-eng` replaced by a small random transformers folder made here, since tests never
download), its command-line synopsis lists every option of every command, and it tells a new user
to clone first and how to get torch's CPU build."""

import os
import re

import pytest
from conftest import small_config

from vits_jax.app import main as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
HUB_ID = "facebook/mms-tts-eng"
# Smaller than conftest's SMALL (one layer or flow per block, one upsampling stage): the blocks
# compile several programs (buckets, max_frames, bfloat16), so compile time is what counts here.
TINY = small_config(vocab_size=38, num_hidden_layers=1, prior_encoder_num_flows=1,
                    duration_predictor_num_flows=1, resblock_kernel_sizes=[3],
                    resblock_dilation_sizes=[[1]], upsample_rates=[8], upsample_kernel_sizes=[16])


def _readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", _readme(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def voice(model_folder):
    """The stand-in for the hub id: a single-speaker transformers folder with MMS-eng's tokenizer."""
    return model_folder(7, **TINY)


def test_readme_has_python_blocks():
    blocks = _python_blocks()
    assert len(blocks) >= 2 and all(HUB_ID in b for b in blocks)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_python_block_runs_as_written(index, voice, tmp_path, monkeypatch):
    source = _python_blocks()[index].replace(HUB_ID, voice)
    monkeypatch.chdir(tmp_path)                        # files the snippet writes land here
    namespace = {"__name__": f"readme_block_{index}"}
    exec(compile(source, f"README.md python block {index}", "exec"), namespace)
    if "speak(" in source:                             # the API block: it spoke and wrote a WAV
        speech = namespace["speech"]
        assert speech.pieces == ["Hello world.", "A longer second sentence."] and speech.waveform.size > 0
        assert os.path.getsize(tmp_path / "speech.wav") == 44 + 2 * speech.waveform.size


def test_synopsis_lists_every_option():
    readme = _readme()
    start = readme.index("## Command line")
    synopsis = readme[start:readme.index("```", readme.index("```", start) + 3)]
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert sorted(commands) == ["batch", "convert", "export", "info", "say", "serve", "train", "vc"]
    for name, parser in commands.items():
        assert f"vits-jax {name}" in synopsis, name
        for action in parser._actions:
            options = [o for o in action.option_strings if o not in ("-h", "--help")]
            if options:   # one spelling of each option (-m or --model) is enough
                assert any(re.search(rf"[\[ |]{re.escape(o)}[\] ]", synopsis) for o in options), (name, options)


def test_setup_instructions():
    readme = _readme()
    assert readme.index("git clone ") < readme.index("pip install -e")   # clone first
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    assert '".[joe,' in readme                                             # the embedded voice
