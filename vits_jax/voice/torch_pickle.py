"""PyTorch weight files (`torch.save`: .bin, .pth, .pt, Lightning .ckpt) read without torch, safely.

A torch file is a pickle whose tensors point at raw storages: in the zip format (torch >= 1.6)
`<name>/data.pkl` plus one `<name>/data/<key>` entry per storage; in the legacy format the storages
follow the pickle in the same stream. The pickle is read by a restricted Unpickler that knows the
few globals a state dict needs (torch's tensor rebuild functions, storage types, OrderedDict) and
rebuilds tensors as numpy arrays. Nothing else is ever executed: any other global becomes an inert
`Opaque` placeholder (a Lightning checkpoint's hyper-parameter objects, say), and `read_torch_file`
callers refuse placeholders wherever they need data (`find_opaque`). Tensors are read lazily
(`TensorRef`), so a training checkpoint's optimiser state costs nothing unless used.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Optional

import numpy as np


class UnsafeFileError(ValueError):
    """A pickle that holds objects other than tensors and plain containers."""


# torch's storage class names (what torch.save pickles) -> numpy dtype; bfloat16 is read as its
# 16 high bits of a float32 (numpy has no bfloat16).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}
_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": "bfloat16",
                 "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8,
                 "uint8": np.uint8, "bool": np.bool_}


class Opaque:
    """An object of a class this reader does not rebuild: keeps what the pickle said, runs nothing."""

    _global = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<{self._global}, not loaded>"


class _HyperParameters(dict):
    """Lightning's AttributeDict read as a plain dict."""

    def __setstate__(self, state):
        pass


def _opaque_class(module: str, name: str) -> type:
    return type(name, (Opaque,), {"_global": f"{module}.{name}", "__module__": "vits_jax.opaque"})


class _Storage:
    def __init__(self, read, key: str, dtype, numel: Optional[int]):
        self.read, self.key, self.dtype, self.numel = read, key, dtype, numel
        self._array = None

    def array(self) -> np.ndarray:
        if self._array is None:
            raw = self.read(self.key)
            if self.dtype == "bfloat16":
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                self._array = bits.view(np.float32)
            else:
                self._array = np.frombuffer(raw, dtype=np.dtype(self.dtype).newbyteorder("<"))
        return self._array


class TensorRef:
    """A tensor not yet read: `.numpy()` reads its storage (once, shared between views)."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.shape, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        data = self.storage.array()
        need = self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride)) + 1
        if any(s == 0 for s in self.shape):
            return np.zeros(self.shape, data.dtype)
        if need > data.size:
            raise ValueError(f"tensor of shape {self.shape} runs past its storage ({data.size} values): "
                             "the file is truncated or corrupt")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.shape,
                                               [st * data.itemsize for st in self.stride])
        return np.array(view)      # a contiguous copy, native byte order

    def __repr__(self):
        return f"TensorRef(shape={self.shape}, dtype={self.storage.dtype})"


def _rebuild_tensor(storage, storage_offset, size, stride, *args, **kwargs):
    if not isinstance(storage, _Storage):
        raise UnsafeFileError("a tensor without a storage")
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *args, **kwargs):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    return func(*args)


_SAFE = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set,
    # Lightning keeps hyper-parameters in AttributeDict (a dict subclass)
    ("lightning.fabric.utilities.data", "AttributeDict"): _HyperParameters,
    ("pytorch_lightning.utilities.parsing", "AttributeDict"): _HyperParameters,
    ("lightning_fabric.utilities.data", "AttributeDict"): _HyperParameters,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, read_storage, legacy: bool = False):
        super().__init__(file, encoding="utf-8")
        self._read_storage = read_storage
        self._legacy = legacy
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        return _opaque_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeFileError(f"unknown persistent id {str(pid)[:60]}")
        storage_type, key, _location, numel = pid[1:5]
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None:
            raise UnsafeFileError(f"unknown storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(self._read_storage, key, dtype, numel)
        storage = self._storages[key]
        if self._legacy and len(pid) > 5 and pid[5] is not None:   # legacy storage views
            view_key, offset, size = pid[5]
            return _StorageView(storage, offset, size)
        return storage


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        raise UnsafeFileError("a storage built outside a tensor")


class _StorageView(_Storage):
    def __init__(self, base: _Storage, offset: int, size: int):
        super().__init__(base.read, base.key, base.dtype, size)
        self.base, self.offset = base, offset

    def array(self):
        return self.base.array()[self.offset:self.offset + self.numel]


def _read_zip(path: str, zf: zipfile.ZipFile):
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if not pkl:
        raise ValueError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)")
    root = pkl[0][: -len("data.pkl")]
    order = zf.read(root + "byteorder").decode() if root + "byteorder" in names else "little"
    if order != "little":
        raise ValueError(f"{path}: big-endian PyTorch files are not supported")

    def read_storage(key):
        return zf.read(f"{root}data/{key}")

    return _Unpickler(io.BytesIO(zf.read(pkl[0])), read_storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_legacy(path: str, f) -> Any:
    """torch.save(..., _use_new_zipfile_serialization=False): magic, protocol, sys info, the object
    pickle, the storage keys, then each storage as (int64 numel, raw bytes) in key order."""
    loader = lambda: _Unpickler(f, lambda key: b"").load()   # headers hold no tensors
    if loader() != _LEGACY_MAGIC:
        raise ValueError(f"{path} is not a PyTorch file (bad magic number)")
    loader()                                                  # protocol version
    loader()                                                  # sys info
    blobs: dict[str, bytes] = {}
    unpickler = _Unpickler(f, lambda key: blobs[key], legacy=True)
    obj = unpickler.load()
    keys = _Unpickler(f, lambda key: b"").load()
    for key in keys:
        storage = unpickler._storages.get(key)
        numel = struct.unpack("<q", f.read(8))[0]
        itemsize = 2 if storage is not None and storage.dtype == "bfloat16" else (
            np.dtype(storage.dtype).itemsize if storage is not None else 1)
        blobs[key] = f.read(numel * itemsize)
        if len(blobs[key]) != numel * itemsize:
            raise ValueError(f"{path} is truncated")
    return obj


def read_torch_file(path: str | os.PathLike) -> Any:
    """The object a `torch.save` file holds, with tensors as `TensorRef` and unknown classes as
    `Opaque` placeholders. Raises ValueError (naming the file) on anything that is not such a file."""
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            # left open: tensors are read on demand; the file closes with the last TensorRef
            return _read_zip(path, zipfile.ZipFile(path))
        with open(path, "rb") as f:
            return _read_legacy(path, f)
    except UnsafeFileError as e:
        raise UnsafeFileError(f"{path}: {e}; not loaded for safety") from None
    except (pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, KeyError, IndexError,
            TypeError, AttributeError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, ValueError) and str(e).startswith(path):
            raise
        raise ValueError(f"{path} is not a readable PyTorch weights file ({type(e).__name__}: {e})") from None


def find_opaque(obj: Any, limit: int = 5) -> list[str]:
    """The placeholder classes (module.name) inside `obj`, looking through containers."""
    found: list[str] = []
    stack = [obj]
    while stack and len(found) < limit:
        x = stack.pop()
        if isinstance(x, Opaque):
            if x._global not in found:
                found.append(x._global)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
    return found


def tensors_of(obj: Any, path: str, what: str = "state dict") -> dict[str, np.ndarray]:
    """A {name: TensorRef} mapping read from `path` -> {name: numpy array}; refuses anything else."""
    opaque = find_opaque(obj)
    if opaque:
        raise UnsafeFileError(f"{path} holds non-tensor objects ({', '.join(opaque)}); "
                              "not loaded for safety")
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a {what} (got {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, TensorRef):
            raise ValueError(f"{path} does not hold a {what}: entry {k!r} is a {type(v).__name__}, "
                             "not a tensor")
        out[k] = v.numpy()
    return out
