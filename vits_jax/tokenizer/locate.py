"""Where a voice's tokenizer lives: ``("vits", folder)`` or ``("piper", path of the .onnx.json)``.

Accepted: a folder with ``vocab.json``; a folder holding ``piper.json`` (a converted Piper voice,
its ``.onnx.json`` kept verbatim); a ``voice.onnx`` (reads ``voice.onnx.json`` beside it); a
``voice.onnx.json``; a folder holding exactly one ``*.onnx.json``; a hub id (`vits_jax.hub.resolve`).
"""

from __future__ import annotations

import glob
import os

from ..hub import resolve

__all__ = ["locate"]


def locate(path) -> tuple[str, str]:
    path = os.fspath(path)
    if os.path.isfile(path):
        if path.endswith(".onnx.json") or os.path.basename(path) == "piper.json":
            return "piper", path
        if path.endswith(".onnx"):
            if not os.path.isfile(path + ".json"):
                raise FileNotFoundError(f"Piper voice {path} has no {os.path.basename(path)}.json beside "
                                        "it (the voice's config and phoneme map)")
            return "piper", path + ".json"
        raise ValueError(f"{path} is not a voice: pass a model folder, a Piper .onnx / .onnx.json "
                         "or a hub id")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "vocab.json")):
            return "vits", path
        if os.path.isfile(os.path.join(path, "piper.json")):
            return "piper", os.path.join(path, "piper.json")
        found = sorted(glob.glob(os.path.join(glob.escape(path), "*.onnx.json")))
        if len(found) == 1:
            return "piper", found[0]
        if len(found) > 1:
            raise ValueError(f"{path} holds {len(found)} Piper voices ({', '.join(map(os.path.basename, found))}): "
                             "pass the one to use")
        raise FileNotFoundError(f"{path} holds no tokenizer: no vocab.json, piper.json or *.onnx.json")
    if path.endswith((".onnx", ".json")):
        raise FileNotFoundError(f"no such file: {path}")
    folder = resolve(path)  # a hub id; offline this raises hub's message
    return locate(folder) if os.path.isdir(folder) else ("vits", folder)
