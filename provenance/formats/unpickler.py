"""A restricted unpickler for PyTorch checkpoints: nothing from the file is ever imported or called.

PyTorch's `data.pkl` describes a state dict as calls to a few rebuild functions over storages kept
outside the pickle. Here every global the pickle names is looked up in an allow-list of *stand-ins*
written in this module: `torch._utils._rebuild_tensor_v2` becomes a function that records a TensorRef,
`torch.FloatStorage` a marker that carries a dtype, `collections.OrderedDict` the real (harmless)
OrderedDict. Any other global (os.system, builtins.eval, importlib, ...) raises DisallowedGlobal
naming it, before anything is resolved. Storages are never loaded: a persistent id becomes a StorageRef
saying where the bytes are and what they hold.

`list_globals` reads a pickle's opcodes without executing it, for people who audit.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from provenance.errors import ProvenanceError

PICKLE_CAP = 256 << 20  # a data.pkl of a million tensors is well under this

# torch storage type -> safetensors dtype code
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "F64",
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "ComplexFloatStorage": "C64",
    "Float8_e4m3fnStorage": "F8_E4M3",
    "Float8_e5m2Storage": "F8_E5M2",
    "UInt16Storage": "U16",
    "UInt32Storage": "U32",
    "UInt64Storage": "U64",
}
# torch dtype attribute name -> safetensors dtype code (torch.float32 appears in some pickles)
TORCH_DTYPES: dict[str, str] = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
}


class DisallowedGlobal(ProvenanceError):
    """The pickle names a global outside the allow-list: the file is refused, nothing was imported."""

    def __init__(self, source: str, module: str, name: str) -> None:
        super().__init__(
            f"{source}: the pickle names {module}.{name}, which is not allowed in a checkpoint "
            "(loading it could run code); the file is refused and nothing was imported"
        )
        self.module = module
        self.name = name


class UnreadablePickle(ProvenanceError):
    """A pickle that is damaged or builds something a checkpoint never holds."""


@dataclass(frozen=True, slots=True)
class StorageType:
    """What `torch.FloatStorage` (and friends) stand for here: just a dtype."""

    dtype: str


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A storage kept outside the pickle: `data/<key>` in a zip checkpoint, a numbered blob in a legacy one."""

    key: str
    dtype: str
    numel: int


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A view onto a storage: elements storage[offset + sum(i * stride)] for each index i of `shape`."""

    storage: StorageRef
    offset: int  # in elements of `dtype`
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str  # the storage's, or for byte storages (UntypedStorage) the one the rebuild call names


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise UnreadablePickle(f"{what} is {value!r}, not a count")
    return value


def _counts(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list):
        raise UnreadablePickle(f"{what} is {type(value).__name__}, not a tuple of counts")
    return tuple(_count(v, what) for v in value)


def _view(storage: Any, offset: Any, size: Any, stride: Any, dtype: str | None = None) -> TensorRef:
    """The one place a tensor reference is checked and made; `dtype` None means the storage's own."""
    if not isinstance(storage, StorageRef):
        raise UnreadablePickle("a tensor is rebuilt from something that is not a storage")
    shape = _counts(size, "a tensor's size")
    strides = _counts(stride, "a tensor's stride")
    if len(shape) != len(strides):
        raise UnreadablePickle("a tensor's size and stride have different lengths")
    return TensorRef(storage, _count(offset, "a storage offset"), shape, strides, dtype or storage.dtype)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> TensorRef:
    return _view(storage, offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, _grad: Any, _hooks: Any, dtype: Any, *_: Any
) -> TensorRef:
    """torch >= 2.1 for dtypes without a typed storage (float8 ...): bytes plus the dtype to read them as."""
    if not isinstance(dtype, StorageType):
        raise UnreadablePickle("a tensor names a dtype that is not a torch dtype")
    return _view(storage, offset, size, stride, dtype.dtype)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    if not isinstance(data, TensorRef):
        raise UnreadablePickle("a parameter wraps something that is not a tensor")
    return data


def _size(*args: Any) -> tuple[Any, ...]:
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple | list) else tuple(args)


def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch.storage", "UntypedStorage"): StorageType("U8"),
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): _size,
    }
    for name, dtype in STORAGE_DTYPES.items():
        allowed[("torch", name)] = StorageType(dtype)
    for name, dtype in TORCH_DTYPES.items():
        allowed[("torch", name)] = StorageType(dtype)
    return allowed


ALLOWED = _allowed()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, source: str, persistent: Callable[[Any], Any]) -> None:
        super().__init__(stream, encoding="utf-8")
        self._source = source
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise DisallowedGlobal(self._source, module, name)
        return found

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)


def zip_storage(pid: Any) -> StorageRef:
    """The zip format's persistent id: ('storage', storage type, key, location, numel)."""
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
        raise UnreadablePickle(f"unexpected persistent id {pid!r:.80}")
    _, kind, key, _location, numel = pid
    if not isinstance(kind, StorageType) or not isinstance(key, str):
        raise UnreadablePickle(f"unexpected storage description {pid!r:.80}")
    return StorageRef(key, kind.dtype, _count(numel, "a storage's element count"))


def load_restricted(data: bytes, source: str, persistent: Callable[[Any], Any] = zip_storage) -> Any:
    """Unpickle a checkpoint's object tree with the allow-list; tensors come back as TensorRef."""
    if len(data) > PICKLE_CAP:
        raise UnreadablePickle(f"{source}: pickle of {len(data):,} bytes is over the {PICKLE_CAP:,}-byte cap")
    return load_next(io.BytesIO(data), source, persistent)


def _no_storages(pid: Any) -> Any:
    raise UnreadablePickle(f"unexpected persistent id {pid!r:.80}")


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def _check_memo(stream: io.BytesIO) -> None:
    """Refuse memo indexes no real pickle uses: the C unpickler sizes its memo to the largest index it
    sees, so a 9-byte pickle naming index 2**28 costs gigabytes before any check of ours could run."""
    start = stream.tell()
    limit = len(stream.getbuffer()) - start
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name in _MEMO_OPS and int(arg or 0) > limit:
                raise UnreadablePickle(f"memo index {arg:,} in a pickle of {limit:,} bytes")
    finally:
        stream.seek(start)


def load_next(stream: io.BytesIO, source: str, persistent: Callable[[Any], Any] = _no_storages) -> Any:
    """Unpickle the next pickle of a stream of several (the legacy format), with the allow-list."""
    try:
        _check_memo(stream)
        return _RestrictedUnpickler(stream, source, persistent).load()
    except DisallowedGlobal:
        raise
    except UnreadablePickle as exc:  # from the checks and stand-ins, which do not know the file's name
        raise UnreadablePickle(f"{source}: {exc}") from None
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
        raise UnreadablePickle(f"{source}: damaged pickle ({type(exc).__name__}: {str(exc)[:80]})") from None


MAX_TREE_DEPTH = 64  # state dicts nest a few levels; a deeper or self-referential tree is hostile


def walk_tensors(tree: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Every leaf of a checkpoint's object tree by dotted path (list items by index), tensors and not."""
    if depth > MAX_TREE_DEPTH:
        raise UnreadablePickle(f"the object tree nests deeper than {MAX_TREE_DEPTH} levels or refers to itself")
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from walk_tensors(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
    elif isinstance(tree, list | tuple) and not isinstance(tree, TensorRef):
        for index, value in enumerate(tree):
            yield from walk_tensors(value, f"{prefix}.{index}" if prefix else str(index), depth + 1)
    else:
        yield prefix, tree


def list_globals(data: bytes) -> list[str]:
    """Every global a pickle would import, read from its opcodes without executing anything.

    STACK_GLOBAL takes its module and name from the stack, which may come from the memo: string values
    are tracked through PUT/GET so that gadgets hidden that way are named too.
    """
    found: list[str] = []
    strings: list[str | None] = []
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
                strings.append(None)
            elif name == "STACK_GLOBAL":
                top = strings.pop() if strings else None
                below = strings.pop() if strings else None
                found.append(f"{below or '?'}.{top or '?'}")
                strings.append(None)
            elif name in (
                "SHORT_BINUNICODE",
                "BINUNICODE",
                "BINUNICODE8",
                "UNICODE",
                "SHORT_BINSTRING",
                "BINSTRING",
                "STRING",
            ):
                strings.append(str(arg))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg or 0)] = strings[-1] if strings else None
            elif name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif name in ("PROTO", "FRAME", "STOP"):
                continue
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                strings.append(memo.get(int(arg or 0)))
            else:
                strings.append(None)
    except (ValueError, EOFError, KeyError, IndexError) as exc:
        found.append(f"(the pickle is damaged after this point: {exc})")
    return found
