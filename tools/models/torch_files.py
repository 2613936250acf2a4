"""PyTorch weight files read into numpy arrays, without PyTorch.

The default install has no torch (the light-install issue), yet the
EfficientNet-Lite0 weights ship as a ``.pth`` file and a fine-tuned
checkpoint from ``loupe train-encoder`` is one too. Both of PyTorch's formats
are read here: the legacy one (a run of pickles followed by the raw storages)
and the zip one (``data.pkl`` plus one file per storage). The unpickler
accepts only what a state dict holds (tensors, their storages, ordered dicts
and plain values), like ``torch.load(weights_only=True)``, so a weights file
cannot run code.
"""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from loupe.base.errors import ModelNotFoundError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageRef:
    """A storage named in the pickle, whose bytes come later (legacy) or from its own file (zip)."""

    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, shape: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


def _rebuild_parameter(tensor: _TensorRef, *_: Any) -> _TensorRef:
    return tensor


class _WeightsUnpickler(pickle.Unpickler):
    """Builds references to tensors instead of tensors, and refuses any other global."""

    _ALLOWED: dict[tuple[str, str], Callable] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a weights file")

    def persistent_load(self, saved_id: tuple) -> _StorageRef:
        kind, storage_type, key, _location, numel = saved_id[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent object {kind!r}")
        return _StorageRef(str(key), storage_type, int(numel))


def load_state(path: Path) -> Any:
    """What ``torch.load(path, weights_only=True)`` returns, with numpy arrays for tensors."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _load_zip(archive)
        with open(path, "rb") as handle:
            return _load_legacy(handle)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error, zipfile.BadZipFile) as exc:
        raise ModelNotFoundError(f"{path} cannot be read as PyTorch weights ({exc})") from exc


def _load_zip(archive: zipfile.ZipFile) -> Any:
    pickled = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
    root = pickled[: -len("data.pkl")]
    with archive.open(pickled) as handle:
        tree = _WeightsUnpickler(handle).load()
    storages: dict[str, np.ndarray] = {}

    def storage(ref: _StorageRef) -> np.ndarray:
        if ref.key not in storages:
            storages[ref.key] = np.frombuffer(archive.read(f"{root}data/{ref.key}"), dtype=ref.dtype)
        return storages[ref.key]

    return _resolve(tree, storage)


def _load_legacy(handle: BinaryIO) -> Any:
    if pickle.load(handle) != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch file (wrong magic number)")
    pickle.load(handle)  # protocol version
    pickle.load(handle)  # system info (byte order, type sizes)
    tree = _WeightsUnpickler(handle).load()
    keys = pickle.load(handle)
    storages: dict[str, np.ndarray] = {}
    dtypes = _storage_dtypes(tree)
    for key in keys:
        (count,) = struct.unpack("<q", handle.read(8))
        dtype = np.dtype(dtypes[str(key)])
        storages[str(key)] = np.frombuffer(handle.read(count * dtype.itemsize), dtype=dtype)
    return _resolve(tree, lambda ref: storages[ref.key])


def _storage_dtypes(tree: Any) -> dict[str, type]:
    """Each storage's element type, from the tensors that use it."""
    found: dict[str, type] = {}

    def visit(node: Any) -> None:
        if isinstance(node, _TensorRef):
            found[node.storage.key] = node.storage.dtype
        elif isinstance(node, dict):
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(tree)
    return found


def _resolve(node: Any, storage: Callable[[_StorageRef], np.ndarray]) -> Any:
    """The tree with each tensor reference replaced by its array (a copy, so the file's bytes can go)."""
    if isinstance(node, _TensorRef):
        data = storage(node.storage)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(data[node.offset:], shape=node.shape,
                                               strides=[s * itemsize for s in node.stride])
        return np.array(view)
    if isinstance(node, dict):
        return type(node)((key, _resolve(value, storage)) for key, value in node.items())
    if isinstance(node, (list, tuple)):
        return type(node)(_resolve(value, storage) for value in node)
    return node
