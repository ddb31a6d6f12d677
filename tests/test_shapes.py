"""voice/shapes.py: the parameter tree of a config, traced once and then read from disk."""

import jax
from conftest import small_config

from vits_jax import VitsConfig
from vits_jax.nn.model import param_shapes as traced_shapes
from vits_jax.voice import shapes


def test_shapes_come_back_from_disk_equal_and_a_bad_file_is_traced_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = VitsConfig(**small_config(num_speakers=2, speaker_embedding_size=4))
    want = traced_shapes(config)
    shapes.param_shapes.cache_clear()
    first = shapes.param_shapes(config)                       # traced, then written
    [name] = (tmp_path / "vits-jax" / "shapes").iterdir()
    shapes.param_shapes.cache_clear()
    calls = []
    monkeypatch.setattr(shapes._model, "param_shapes", lambda c: calls.append(c) or want)
    again = shapes.param_shapes(config)                       # from the file: no trace
    assert calls == []
    for got in (first, again):
        assert jax.tree.structure(got) == jax.tree.structure(want)
        assert jax.tree.leaves(got) == jax.tree.leaves(want)     # shapes and dtypes
    # another config is another file; a damaged file is traced again and rewritten
    other = VitsConfig(**small_config(num_speakers=3, speaker_embedding_size=4))
    assert shapes._key(other) != shapes._key(config)
    name.write_text('{"decoder": [')
    shapes.param_shapes.cache_clear()
    assert jax.tree.leaves(shapes.param_shapes(config)) == jax.tree.leaves(want) and calls == [config]
    shapes.param_shapes.cache_clear()
    calls.clear()
    assert jax.tree.leaves(shapes.param_shapes(config)) == jax.tree.leaves(want) and calls == []
    shapes.param_shapes.cache_clear()
