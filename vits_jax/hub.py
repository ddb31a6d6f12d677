"""Model locations: a local folder, or a hub id downloaded with huggingface_hub."""

from __future__ import annotations

import os
import socket

HUB_FILES = ["config.json", "model.safetensors", "vocab.json", "tokenizer_config.json",
             "special_tokens_map.json", "added_tokens.json"]
PYTORCH_WEIGHTS = "pytorch_model.bin"  # fetched only when a repo has no safetensors
DEFAULT_MODEL = "facebook/mms-tts-eng"


class ModelNotFoundError(FileNotFoundError):
    pass


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve(model: str) -> str:
    """Returns a local folder for `model` (a folder, or a hub id such as facebook/mms-tts-eng).

    Offline, or without huggingface_hub, fails at once with a message saying how to pass a local
    folder instead.
    """
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise ModelNotFoundError(f"{model} has no config.json: not a VITS model folder")
        return model
    how = ("pass a local model folder instead (a transformers VITS folder or one made by "
           "`vits-jax convert`), e.g. `-m FOLDER` on the command line or vits_jax.load(FOLDER)")
    if model.count("/") != 1 or model.startswith((".", "/")):
        raise ModelNotFoundError(f"{model!r} is neither a folder nor a hub id (owner/name); {how}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelNotFoundError(f"{model!r} is not a local folder and huggingface_hub is not installed "
                                 f"(pip install huggingface_hub); or {how}") from None
    try:  # a cached copy works offline
        return snapshot_download(model, allow_patterns=HUB_FILES + [PYTORCH_WEIGHTS], local_files_only=True)
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or not _hub_reachable():
        raise ModelNotFoundError(f"{model!r} is not a local folder, and as a hub id it cannot be downloaded: "
                                 f"the hub is not reachable (offline); {how}")
    try:
        folder = snapshot_download(model, allow_patterns=HUB_FILES)
        if not os.path.isfile(os.path.join(folder, "model.safetensors")):
            folder = snapshot_download(model, allow_patterns=HUB_FILES + [PYTORCH_WEIGHTS])
        return folder
    except Exception as e:
        raise ModelNotFoundError(f"cannot download {model!r} from the hub ({e}); {how}") from e
