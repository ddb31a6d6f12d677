"""Every shell line of README.md runs as written, on this checkout, offline.

A ```bash block is one script, run with bash in a fresh folder (so `&` and `kill %1` keep their
meaning), `set -e`, the `vits-jax` command of this checkout on PATH, no model hub, a shared
compilation cache, and a time limit. Three kinds of line are not run again here:
- install lines (`git clone`, `cd vits-jax`, `pip install ...`) and the test command: `.ci/run`
  runs them on a fresh clone, so the test checks that `.ci/run` holds each `pip install` target and
  the test command as the README writes them;
- a block whose first line is a `# needs the hub` comment: its `vits-jax` lines are parsed by the
  command's own argument parser (every option exists and takes its value), not run;
- nothing else: a block that names files a reader brings says so in a `# your files:` comment, and
  the test makes stand-ins under those names (a recording, a multi-speaker VITS checkpoint).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from vits_jax.app import main as cli
from vits_jax.synth import audio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = re.compile(r"^(git clone |cd vits-jax$|pip install |python -m pytest )")
TIMEOUT = 600          # seconds per block: a hang fails, never stalls the suite


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def _commands(block: str) -> list[str]:
    """A block's commands: backslash-continued lines joined, a quoted string kept across lines."""
    commands, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line.strip()
        try:
            shlex.split(pending, comments=True)
        except ValueError:             # an open quotation: the command goes on
            continue
        if pending:
            commands.append(pending)
        pending = ""
    assert not pending, f"unclosed quotation in README block: {pending!r}"
    return commands


def _blocks() -> list[list[str]]:
    """The ```bash blocks, each a list of commands."""
    return [_commands(b) for b in re.findall(r"^```bash\n(.*?)^```", _readme(), flags=re.S | re.M)]


def _split(block: list[str]) -> tuple[list[str], list[str]]:
    """(setup parts, the rest) of a block: `a && b` lines are cut at the `&&`."""
    setup, rest = [], []
    for line in block:
        parts = [p.strip() for p in line.split(" && ")] if " && " in line else [line]
        for part in parts:
            (setup if SETUP.match(part) else rest).append(part)
    return setup, rest


def test_readme_has_the_blocks_this_test_knows():
    blocks = _blocks()
    assert len(blocks) >= 6
    assert any(b[0].startswith("# needs the hub") for b in blocks)
    assert any(b[0].startswith("# your files:") for b in blocks)


def test_setup_lines_are_what_ci_runs():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    for block in _blocks():
        for part in _split(block)[0]:
            if part.startswith("pip install ") and "torch" not in part:
                target = shlex.split(part)[-1]           # e.g. -e ".[joe,hub,cli]" -> .[joe,hub,cli]
                assert f'"{target}"' in ci or "[hub,train]" in target, (part, "not installed by .ci/run")
            elif part.startswith("pip install torch"):
                assert re.search(r"pip install -q torch==2\.13\.0", ci) and "torch==2.13.0" in part
            elif part.startswith("python -m pytest"):
                assert part in ci, part


@pytest.mark.parametrize("index", [i for i, b in enumerate(_blocks()) if b[0].startswith("# needs the hub")])
def test_hub_lines_parse(index):
    parser = cli.build_parser()
    for part in _split(_blocks()[index])[1]:
        if part.startswith("vits-jax "):
            args = parser.parse_args(shlex.split(part)[1:])
            assert callable(args.func), part


@pytest.fixture(scope="module")
def your_files(tmp_path_factory):
    """The files the README's `# your files:` blocks name: recording.wav (speech-like, 22.05 kHz)
    and G_100000.pth with VITS' config.json (3 speakers, a posterior encoder)."""
    from test_voice_conversion import VITS_JSON, original_model, speechlike

    folder = tmp_path_factory.mktemp("your-files")
    torch.save({"model": original_model().state_dict(), "iteration": 100000, "learning_rate": 2e-4},
               folder / "G_100000.pth")
    (folder / "config.json").write_text(json.dumps(VITS_JSON))
    audio.write_wav(folder / "recording.wav", speechlike(22050, rate=22050), 22050)
    return folder


def _run_block(commands: list[str], cwd, cache_dir) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), HF_HUB_OFFLINE="1",
               VITS_JAX_CACHE_DIR=str(cache_dir), JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = "set -euo pipefail\n" + "\n".join(commands) + "\n"
    proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:                       # whatever the block left running (a server with `&`) goes too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(script, proc.returncode, out, err)


RUN = [i for i, b in enumerate(_blocks()) if not b[0].startswith("# needs the hub")]


@pytest.mark.parametrize("index", RUN)
def test_block_runs_as_written(index, your_files, tmp_path, tmp_path_factory):
    block = _blocks()[index]
    _, commands = _split(block)
    if not commands:
        return                          # install lines only: checked against .ci/run above
    work = tmp_path / "work"
    work.mkdir()
    if block[0].startswith("# your files:"):
        for name in os.listdir(your_files):
            os.symlink(your_files / name, work / name)
    cache = tmp_path_factory.getbasetemp() / "readme-shell-cache"
    before = set(os.listdir(work))
    proc = _run_block(commands, work, cache)
    assert proc.returncode == 0, f"block {index} failed:\n{proc.args}\nstdout:\n{proc.stdout[-3000:]}\n" \
                                 f"stderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    # every file a line says it writes (-o FILE, or convert's DST) is there and not empty
    for command in commands:
        words = shlex.split(command, comments=True) if command.startswith("vits-jax") else []
        written = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-o" and words[i + 1] != "-"]
        if words[:2] == ["vits-jax", "convert"]:
            written.append(words[3])
        for name in written:
            path = work / name
            assert path.exists() and (path.is_dir() or path.stat().st_size > 44), (command, name)
            if name.endswith(".wav"):
                wave, _ = audio.read_wav(path)
                assert wave.size and np.max(np.abs(wave)) > 0.01, (command, "silent")
    assert set(os.listdir(work)) >= before
