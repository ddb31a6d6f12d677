"""synth/compiled.py: synthesize's stage programs kept compiled per machine, loaded instead of traced."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import vits_jax
from vits_jax.synth import compiled, synthesis

TEXTS = ("Hello there.", "A longer sentence, spoken slowly.")


@pytest.fixture
def voice(eng_single):
    return vits_jax.Voice.load(eng_single)


@pytest.fixture
def store_off():
    compiled.disable()
    yield
    compiled.disable()


def _synthesize(voice, text: str):
    ids = voice.tokenizer.encode(text)
    return synthesis.synthesize(voice.params, ids, key=jax.random.key(7))


def _files(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".program")) if os.path.isdir(folder) else []


def test_stored_programs_give_the_jitted_samples_and_a_new_store_loads_them(voice, tmp_path, store_off):
    want = [_synthesize(voice, t) for t in TEXTS]              # the jitted programs
    store = compiled.enable(str(tmp_path))
    got = [_synthesize(voice, t) for t in TEXTS]
    assert store.compiled >= 3 and store.loaded == 0          # encode(s) and two frame buckets
    files = _files(store.folder)
    assert len(files) == store.compiled
    again = compiled.enable(str(tmp_path))                     # as a new process finds the folder
    loaded = [_synthesize(voice, t) for t in TEXTS]
    assert again.loaded == len(files) and again.compiled == 0
    for w, g, h in zip(want, got, loaded):
        assert np.array_equal(w.waveform, g.waveform) and np.array_equal(w.waveform, h.waveform)
        assert np.array_equal(w.durations, h.durations)
    # a damaged file is compiled again and replaced; the samples do not change
    path = os.path.join(store.folder, files[0])
    with open(path, "r+b") as f:
        f.truncate(100)
    third = compiled.enable(str(tmp_path))
    for w, t in zip(want, TEXTS):
        assert np.array_equal(w.waveform, _synthesize(voice, t).waveform)
    assert third.compiled == 1 and third.loaded == len(files) - 1
    assert os.path.getsize(path) > 100


def test_other_statics_are_other_programs(voice, tmp_path, store_off):
    store = compiled.enable(str(tmp_path))
    ids = voice.tokenizer.encode(TEXTS[0])
    synthesis.synthesize(voice.params, ids)
    before = len(_files(store.folder))
    out = synthesis.synthesize(voice.params, ids, dtype="bfloat16")   # render: another decoder dtype
    assert len(_files(store.folder)) == before + 1
    compiled.disable()
    assert np.array_equal(out.waveform, synthesis.synthesize(voice.params, ids, dtype="bfloat16").waveform)


def test_repeated_rows_are_rendered_once_with_the_same_samples(voice, store_off, monkeypatch):
    ids = [voice.tokenizer.encode(t) for t in TEXTS]
    from vits_jax.tokenizer.base import pad_ids

    batch, mask = pad_ids([ids[0], ids[1], ids[1], ids[0]], voice.tokenizer.padding_id)
    keys = jax.random.split(jax.random.key(3), 2)
    keys = keys[np.array([0, 1, 1, 0])]
    rendered = []
    real = synthesis.render_item
    monkeypatch.setattr(synthesis, "render_item", lambda *a, **k: rendered.append(1) or real(*a, **k))
    out = synthesis.synthesize(voice.params, batch, attention_mask=mask, key=keys)
    assert len(rendered) == 2
    assert np.array_equal(out.waveform[0], out.waveform[3]) and np.array_equal(out.waveform[1], out.waveform[2])
    alone = synthesis.synthesize(voice.params, ids[1], key=keys[1:2])
    diff = out.waveform[1, :alone.waveform.shape[1]] - alone.waveform[0]     # batch vs alone: round-off
    assert np.abs(diff).max() <= 1e-5 * np.abs(alone.waveform).max()
    # same ids under another key are different rows
    out = synthesis.synthesize(voice.params, batch[:2], attention_mask=mask[:2], key=jax.random.key(3))
    assert len(rendered) == 4


SCRIPT = textwrap.dedent("""
    import sys, jax, numpy as np, vits_jax
    from vits_jax.app.common import setup_compilation_cache
    from vits_jax.synth import compiled, synthesis
    if sys.argv[4:] == ["let-in"]:        # store compiles go into JAX's cache too
        import contextlib
        compiled._not_into_jax_cache = contextlib.nullcontext
    setup_compilation_cache(sys.argv[2])
    voice = vits_jax.Voice.load(sys.argv[1])
    out = synthesis.synthesize(voice.params, voice.tokenizer.encode("Hello there."), key=jax.random.key(7))
    np.save(sys.argv[3], out.waveform)
    store = compiled.active()
    print(store.loaded, store.compiled)
""")


def _process(*args) -> tuple[int, int]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], capture_output=True,
                          timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    loaded, made = proc.stdout.split()[-2:]
    return int(loaded), int(made)


def test_across_processes(eng_single, tmp_path):
    """A new process loads what the last one stored (nothing traced), and a store emptied while
    JAX's cache is warm fills again: its programs never go into JAX's cache."""
    cache = tmp_path / "cache"
    assert _process(eng_single, cache, tmp_path / "a.npy") == (0, 2)     # compiled, written
    folder = cache / compiled.SUBFOLDER
    assert len(_files(folder)) == 2
    assert _process(eng_single, cache, tmp_path / "b.npy") == (2, 0)     # loaded: nothing traced
    for name in _files(folder):
        os.remove(folder / name)
    assert _process(eng_single, cache, tmp_path / "c.npy") == (0, 2)
    assert len(_files(folder)) == 2
    assert _process(eng_single, cache, tmp_path / "d.npy") == (2, 0)
    want = np.load(tmp_path / "a.npy")
    for name in ("b.npy", "c.npy", "d.npy"):
        assert np.array_equal(np.load(tmp_path / name), want)
    compiled.disable()
    voice = vits_jax.Voice.load(eng_single)
    assert np.array_equal(_synthesize(voice, "Hello there.").waveform, want)   # the jitted programs


def test_a_program_from_jax_cache_is_never_stored(eng_single, tmp_path):
    """JAX's persistent cache serves executables that serialize into ones that fail when run: a
    store compile that JAX's cache answered (here let into it on purpose) runs but is not written."""
    cache = tmp_path / "cache"
    assert _process(eng_single, cache, tmp_path / "a.npy", "let-in") == (0, 2)
    folder = cache / compiled.SUBFOLDER
    assert len(_files(folder)) == 2
    for name in _files(folder):
        os.remove(folder / name)
    assert _process(eng_single, cache, tmp_path / "b.npy", "let-in") == (0, 2)   # JAX's cache answered
    assert _files(folder) == []
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
