"""A restricted unpickler for PyTorch checkpoints: nothing from the file is ever imported or called.

PyTorch's `data.pkl` describes a state dict as calls to a few rebuild functions over storages kept
outside the pickle. Here every global the pickle names is looked up in an allow-list of *stand-ins*
(`stand_ins`): `torch._utils._rebuild_tensor_v2` becomes a function that records a TensorRef,
`torch.FloatStorage` a marker that carries a dtype, `collections.OrderedDict` the real (harmless)
OrderedDict. Any other global (os.system, builtins.eval, importlib, ...) raises DisallowedGlobal
naming it, before anything is resolved. Storages are never loaded: a persistent id becomes a StorageRef
saying where the bytes are and what they hold.

The opcodes are checked first (`opcodes`), and the tree walked within bounds (`object_tree`); the names
other modules use are exported from here.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

from provenance._formats.object_tree import describe, walk_paths, walk_tensors
from provenance._formats.opcodes import list_globals, prescan
from provenance._formats.pickle_errors import DisallowedGlobal, RefusedPickle, UnreadablePickle
from provenance._formats.stand_ins import (
    ALLOWED,
    DType,
    StorageRef,
    StorageType,
    TensorRef,
    checked_count,
    checked_tensor,
)

PICKLE_CAP = 64 << 20  # a data.pkl of a hundred thousand tensors is well under this


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, source: str, persistent: Callable[[Any], Any]) -> None:
        super().__init__(stream, encoding="utf-8")
        self._source = source
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise DisallowedGlobal(self._source, module, name)
        if type(found) is StorageType:  # a fresh marker per use: nothing is shared between files
            return StorageType(found.dtype, found.untyped)
        if type(found) is DType:
            return DType(found.dtype)
        return found

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)


def zip_storages() -> Callable[[Any], StorageRef]:
    """The zip format's persistent ids ('storage', storage type, key, location, numel), for one pickle.

    torch loads a key once and reuses that storage wherever the key comes again, whatever type or size the
    later ids claim: a key described twice differently is refused.
    """
    declared: dict[str, StorageRef] = {}

    def storage(pid: Any) -> StorageRef:
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
            raise UnreadablePickle(f"unexpected persistent id {describe(pid)}")
        _, kind, key, _location, numel = pid
        if type(kind) is not StorageType or type(key) is not str:
            raise UnreadablePickle(f"unexpected storage description {describe(pid)}")
        ref = StorageRef(key, kind.dtype, checked_count(numel, "a storage's element count"))
        if declared.setdefault(key, ref) != ref:
            raise RefusedPickle(f"storage {describe(key)} is declared twice, differently (torch uses the first)")
        return ref

    return storage


def load_restricted(data: bytes, source: str, persistent: Callable[[Any], Any] | None = None) -> Any:
    """Unpickle a checkpoint's object tree with the allow-list; tensors come back as TensorRef."""
    if len(data) > PICKLE_CAP:
        raise UnreadablePickle(f"{source}: pickle of {len(data):,} bytes is over the {PICKLE_CAP:,}-byte cap")
    return load_next(io.BytesIO(data), source, persistent or zip_storages())


def _no_storages(pid: Any) -> Any:
    raise UnreadablePickle(f"unexpected persistent id {describe(pid)}")


def load_next(stream: io.BytesIO, source: str, persistent: Callable[[Any], Any] = _no_storages) -> Any:
    """Unpickle the next pickle of a stream of several (the legacy format), with the allow-list."""
    try:
        prescan(stream, source)
        return _RestrictedUnpickler(stream, source, persistent).load()
    except DisallowedGlobal:
        raise
    except UnreadablePickle as exc:  # from the checks and stand-ins, which do not know the file's name
        raise type(exc)(f"{source}: {exc}") from None
    except RecursionError:
        raise UnreadablePickle(f"{source}: the pickle nests too deeply") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        UnicodeDecodeError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise UnreadablePickle(f"{source}: damaged pickle ({type(exc).__name__}: {describe(str(exc))})") from None


__all__ = [
    "ALLOWED",
    "PICKLE_CAP",
    "DisallowedGlobal",
    "RefusedPickle",
    "StorageRef",
    "StorageType",
    "TensorRef",
    "UnreadablePickle",
    "checked_tensor",
    "describe",
    "list_globals",
    "load_next",
    "load_restricted",
    "walk_paths",
    "walk_tensors",
    "zip_storages",
]
