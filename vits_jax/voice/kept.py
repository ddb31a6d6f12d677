"""Voices kept converted per machine: a source parsed once, memory-mapped by every later process.

Reading a Piper .onnx parses its whole protobuf graph (~0.3 s and ~110 MB for a medium voice);
an original VITS checkpoint unpickles. `load_kept(info, folder)` does that once, through the same
strict mapper as always, and writes the mapped params to `folder/<key>.params`: one file, a JSON
header (format, the config, every leaf's name, dtype, shape and offset) and the leaves, each at a
64-byte boundary. A later process maps the file read-only; on a CPU JAX takes such aligned arrays
without copying, so the voice costs neither a parse nor a copy, and its pages are read as the
programs first touch them. The mapped leaves still go through `map_weights` (shapes against the
config, no NaN or infinity), as every source does.

key: sha256 of the content of every file the source is read from (weights, config, the Piper
voice's .json) and FORMAT, so an edited source is converted again (FORMAT is to be bumped when
the mapping or the file's layout changes). Files are written whole and renamed into place, never changed after;
a damaged or foreign file is converted again and replaced; a folder that cannot be written warns
and the voice loads as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from typing import Optional

import numpy as np

from ..config import VitsConfig
from ..core.params import VitsParams
from .checkpoint import load_local
from .mapper import map_weights
from .shapes import param_shapes
from .sources import SourceInfo
from .tables import FLAX

FORMAT = "vits-jax kept params 1"
MAGIC = b"VJXPARAM"          # 8 bytes, then the header's length (8 bytes, little-endian), the header
ALIGN = 64


def source_key(info: SourceInfo) -> str:
    """sha256 over FORMAT and the bytes of every file `info` reads (32 hex digits)."""
    h = hashlib.sha256(FORMAT.encode())
    files = [info.weights] + ([info.config] if info.config else []) + sorted(info.tokenizer_files.values())
    for path in files:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:32]


def keeps(info: SourceInfo) -> bool:
    """Whether `info` is a source worth keeping: weights in one file that must be parsed and
    mapped (a Piper .onnx, an original VITS / Piper checkpoint). Converted folders load directly."""
    return os.path.isfile(info.weights) and not info.weights.endswith(".safetensors")


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for name, value in tree.items():
        path = f"{prefix}/{name}" if prefix else name
        out.update(_flatten(value, path) if isinstance(value, dict) else {path: np.asarray(value)})
    return out


def write_kept(path: str, params: VitsParams) -> None:
    """params -> one file at `path` (written beside it and renamed into place)."""
    leaves = _flatten(params.tree)
    entries, offset = [], 0
    for name, value in leaves.items():
        offset = -(-offset // ALIGN) * ALIGN
        entries.append([name, value.dtype.str, list(value.shape), offset])
        offset += value.nbytes
    header = json.dumps({"format": FORMAT, "config": params.config.to_dict(), "leaves": entries,
                         "bytes": offset}).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // ALIGN) * ALIGN    # where the leaves begin
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(header).to_bytes(8, "little") + header)
            for (name, _, _, at), value in zip(entries, leaves.values()):
                f.write(b"\0" * (start + at - f.tell()))
                f.write(np.ascontiguousarray(value).tobytes())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_kept(path: str, where: str) -> VitsParams:
    """A kept file -> VitsParams whose leaves are read-only views of the mapped file (ValueError
    when it is damaged; the mapper's ConversionError when it does not fit its config)."""
    import jax

    data = np.memmap(path, dtype=np.uint8, mode="r")
    if bytes(data[:len(MAGIC)]) != MAGIC:
        raise ValueError(f"{path}: not a kept params file")
    size = int.from_bytes(bytes(data[len(MAGIC):len(MAGIC) + 8]), "little")
    header = json.loads(bytes(data[len(MAGIC) + 8:len(MAGIC) + 8 + size]))
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: format {header.get('format')!r}, not {FORMAT!r}")
    start = -(-(len(MAGIC) + 8 + size) // ALIGN) * ALIGN
    if data.size != start + header["bytes"]:
        raise ValueError(f"{path}: {data.size} bytes, the header describes {start + header['bytes']}")
    flat = {}
    for name, dtype, shape, at in header["leaves"]:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        flat[name] = data[start + at:start + at + count * dtype.itemsize].view(dtype).reshape(shape)
    config = VitsConfig.from_dict(header["config"])
    mapped = map_weights(flat, FLAX, param_shapes(config), source=where)
    return VitsParams(jax.device_put(mapped.tree), config)


def load_kept(info: SourceInfo, folder: str) -> VitsParams:
    """The params of `info`'s source: from its kept file in `folder`, else read from the source
    (`checkpoint.load_local`) and kept for the next process."""
    path = os.path.join(folder, source_key(info) + ".params")
    if os.path.isfile(path):
        try:
            return read_kept(path, where=info.path)
        except Exception:        # damaged, partial or from another format: converted again below
            pass
    params = load_local(info.path, info.config, info)[0]
    try:
        write_kept(path, params)
    except OSError as e:
        warnings.warn(f"converted voices are not kept in {folder}: {e.strerror or e}", stacklevel=3)
    return params


def kept_or_none(info: SourceInfo, folder: Optional[str]) -> Optional[VitsParams]:
    """load_kept where `folder` is given and the source is one worth keeping, else None."""
    return load_kept(info, folder) if folder and keeps(info) else None
