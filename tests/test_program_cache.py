"""synth/exported.ProgramCache: the CLI's stage programs exported on first use into the compilation
cache folder, so a later process deserializes them instead of tracing the model. The programs
are synthesize's own, so the samples are the jitted programs' bit for bit."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import small_config

import vits_jax
from vits_jax.app import main as cli
from vits_jax.synth import synthesis
from vits_jax.synth.exported import ProgramCache

TEXT = "Hello there."
TINY = small_config(vocab_size=38, num_hidden_layers=1, prior_encoder_num_flows=1,
                    duration_predictor_num_flows=1, resblock_kernel_sizes=[3],
                    resblock_dilation_sizes=[[1]], upsample_rates=[8], upsample_kernel_sizes=[16])


@pytest.fixture(scope="module")
def source(model_folder):
    return model_folder(7, **TINY)


@pytest.fixture(scope="module")
def voice(source):
    return vits_jax.Voice.load(source)


def _files(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".jax")) if os.path.isdir(folder) else []


def _synthesize(voice, programs, text=TEXT, **options):
    ids = voice.tokenizer.encode(text)
    return synthesis.synthesize(voice.params, ids, key=jax.random.key(7), programs=programs, **options)


def test_exported_on_first_use_then_read_with_the_jitted_samples(voice, tmp_path):
    want = _synthesize(voice, None)                                   # the jitted programs
    cache = ProgramCache(str(tmp_path))
    got = _synthesize(voice, cache)
    assert cache.exported == 2 and cache.deserialized == 0            # encode, one render bucket
    assert len(_files(tmp_path)) == 2
    again = ProgramCache(str(tmp_path))                               # as a new process finds it
    read = _synthesize(voice, again)
    assert again.deserialized == 2 and again.exported == 0
    for out in (got, read):
        assert np.array_equal(out.waveform, want.waveform) and np.array_equal(out.durations, want.durations)
    assert np.abs(want.waveform).max() > 0.05
    # traced arguments (rate, noise, key) are arguments of the same programs
    other = dict(speaking_rate=1.3, noise_scale=0.2)
    out = _synthesize(voice, again, **other)
    assert np.array_equal(out.waveform, _synthesize(voice, None, **other).waveform)
    assert again.exported <= 1                                        # at most one new frame bucket


def test_a_damaged_file_is_exported_again_and_replaced(voice, tmp_path):
    _synthesize(voice, ProgramCache(str(tmp_path)))
    path = tmp_path / _files(tmp_path)[0]
    path.write_bytes(path.read_bytes()[:100])
    cache = ProgramCache(str(tmp_path))
    out = _synthesize(voice, cache)
    assert cache.exported == 1 and cache.deserialized == 1
    assert os.path.getsize(path) > 100
    assert np.array_equal(out.waveform, _synthesize(voice, None).waveform)


def test_calls_it_does_not_cover_run_the_jitted_programs(voice, tmp_path):
    cache = ProgramCache(str(tmp_path))
    out = _synthesize(voice, cache, dtype="bfloat16")                 # another decoder dtype
    assert cache.exported == 1                                        # stage 1 only
    assert np.array_equal(out.waveform, _synthesize(voice, None, dtype="bfloat16").waveform)


def test_a_folder_that_cannot_be_written_warns_once_and_still_speaks(voice, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = ProgramCache(str(blocked / "programs"))
    with pytest.warns(UserWarning, match="not kept in") as caught:
        out = _synthesize(voice, cache)
    assert len(caught) == 1 and cache.exported == 2
    assert np.array_equal(out.waveform, _synthesize(voice, None).waveform)


SCRIPT = textwrap.dedent("""
    import sys
    from vits_jax.app import main as cli
    from vits_jax.synth import exported
    made = []
    real = exported.ProgramCache._export
    exported.ProgramCache._export = lambda self, *a: made.append(1) or real(self, *a)
    code = cli.main(["say", "Hello there.", "-m", sys.argv[1], "-o", sys.argv[2], "--cache-dir", sys.argv[3]])
    print("exported", len(made))
    sys.exit(code)
""")


def _say(source, out, cache) -> int:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(source), str(out), str(cache)],
                          capture_output=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return int(proc.stdout.split()[-1])


def test_say_keeps_its_programs_in_the_cache_folder(source, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert _say(source, tmp_path / "a.wav", cache) == 2               # exported, written
    assert len(_files(cache / "programs")) == 2
    assert _say(source, tmp_path / "b.wav", cache) == 0               # read: nothing traced
    assert cli.main(["say", TEXT, "-m", source, "-o", str(tmp_path / "c.wav"), "--no-cache"]) == 0
    want = (tmp_path / "c.wav").read_bytes()
    assert (tmp_path / "a.wav").read_bytes() == want and (tmp_path / "b.wav").read_bytes() == want
