"""What the globals a checkpoint's pickle may name stand for here: markers and checked rebuild functions.

`torch._utils._rebuild_tensor_v2` becomes a function that records a TensorRef, `torch.FloatStorage` a
marker that carries a dtype, `collections.OrderedDict` the real (harmless) OrderedDict. Every field a
rebuild call receives is checked as torch.load(weights_only=True) would, and nothing about a stand-in
can be rewritten by the pickle (BUILD and attribute setting are refused).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from manifests.dtypes import DTYPE_BITS
from provenance._formats.object_tree import describe
from provenance._formats.pickle_errors import RefusedPickle, UnreadablePickle

# torch storage class -> safetensors dtype code; exactly the classes torch.load(weights_only=True) admits
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
}
# torch dtype attribute name -> safetensors dtype code (the dtype argument of _rebuild_tensor_v3)
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
_GRAD_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "C64", "F8_E4M3", "F8_E5M2"})  # may require grad


def _refuse_build(self: object, state: object) -> None:
    """BUILD (setstate) on a stand-in would rewrite what was checked: no checkpoint torch writes does it."""
    raise RefusedPickle(
        f"the pickle rewrites a {type(self).__name__} with BUILD, which torch.save never writes; the file is refused"
    )


@dataclass(frozen=True, slots=True)
class StorageType:
    """What `torch.FloatStorage` (and friends, and `torch.storage.UntypedStorage`) stand for here: a dtype."""

    dtype: str
    untyped: bool = False  # torch.storage.UntypedStorage: bytes, which only the zip format's loader accepts
    __setstate__ = _refuse_build


@dataclass(frozen=True, slots=True)
class DType:
    """What `torch.float32` (and the other dtype objects) stand for here: the dtype of a v3 rebuild."""

    dtype: str
    __setstate__ = _refuse_build


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A storage kept outside the pickle: `data/<key>` in a zip checkpoint, a numbered blob in a legacy one."""

    key: str
    dtype: str
    numel: int
    __setstate__ = _refuse_build


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A view onto a storage: elements storage[offset + sum(i * stride)] for each index i of `shape`."""

    storage: StorageRef
    offset: int  # in elements of `dtype`
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str  # the storage's, or for byte storages (UntypedStorage) the one the rebuild call names
    __setstate__ = _refuse_build


class _StandIn:
    """A rebuild function of torch as the pickle sees it: callable, and nothing about it can be set."""

    __slots__ = ("_call", "_name")
    _call: Callable[..., Any]
    _name: str

    def __init__(self, name: str, call: Callable[..., Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_call", call)

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise RefusedPickle(f"the pickle sets {name!r} on {self._name}; the file is refused")

    def __repr__(self) -> str:
        return self._name

    __setstate__ = _refuse_build


def checked_count(value: Any, what: str) -> int:
    """A count a pickle gives (a size, stride, offset or element count): an int, not negative."""
    if type(value) is not int or value < 0:
        raise UnreadablePickle(f"{what} is {describe(value)}, not a count")
    return value


def _counts(value: Any, what: str) -> tuple[int, ...]:
    if type(value) not in (tuple, list):
        raise UnreadablePickle(f"{what} is {type(value).__name__}, not a tuple of counts")
    return tuple(checked_count(v, what) for v in value)


def _dtype(value: Any) -> str:
    if type(value) is not str or value not in DTYPE_BITS:
        raise UnreadablePickle(f"a tensor's dtype is {describe(value)}, not one this tool reads")
    return value


def checked_storage(storage: Any) -> StorageRef:
    """A storage reference, its every field checked (again, where it is used)."""
    if type(storage) is not StorageRef:
        raise UnreadablePickle("a tensor is rebuilt from something that is not a storage")
    if type(storage.key) is not str:
        raise UnreadablePickle("a storage's key is not a string")
    _dtype(storage.dtype)
    checked_count(storage.numel, "a storage's element count")
    return storage


def checked_tensor(leaf: TensorRef) -> TensorRef:
    """A tensor reference, its every field checked again where it is used: nothing may change it in between."""
    return _view(leaf.storage, leaf.offset, leaf.shape, leaf.stride, leaf.dtype)


def _view(storage: Any, offset: Any, size: Any, stride: Any, dtype: str | None = None) -> TensorRef:
    """The one place a tensor reference is checked and made; `dtype` None means the storage's own."""
    storage = checked_storage(storage)
    shape = _counts(size, "a tensor's size")
    strides = _counts(stride, "a tensor's stride")
    if len(shape) != len(strides):
        raise UnreadablePickle("a tensor's size and stride have different lengths")
    view_dtype = _dtype(dtype or storage.dtype)
    return TensorRef(storage, checked_count(offset, "a storage offset"), shape, strides, view_dtype)


def _arity(what: str, args: tuple[Any, ...], *allowed: int) -> None:
    if len(args) not in allowed:
        raise UnreadablePickle(f"{what} is called with {len(args)} arguments, as torch never calls it")


def _empty(value: Any) -> bool:
    return value is None or (type(value) in (dict, OrderedDict) and not value)


def _grad(view: TensorRef, requires_grad: Any) -> TensorRef:
    """torch sets requires_grad: it must be a bool, and True only for floating dtypes (else torch refuses)."""
    if type(requires_grad) is not bool:
        raise UnreadablePickle("a tensor's requires_grad is not a bool (torch.load refuses it)")
    if requires_grad and view.dtype not in _GRAD_DTYPES:
        raise UnreadablePickle(f"a {view.dtype} tensor requires grad (torch.load refuses it)")
    return view


def _extras(hooks: Any, metadata: Any) -> None:
    """Backward hooks and tensor metadata torch applies: metadata sets the negative or conjugate bit, so that
    torch.load returns other values than the bytes hold; torch.save writes neither for a plain tensor."""
    if not _empty(metadata):
        raise RefusedPickle(
            f"a tensor carries metadata {describe(metadata)} (negative or conjugate bits change the values "
            "torch.load returns); this tool does not model it and refuses the file"
        )
    if not _empty(hooks):
        raise RefusedPickle("a tensor carries backward hooks, which torch.save never writes; the file is refused")


def _rebuild_tensor(*args: Any) -> TensorRef:
    _arity("torch._utils._rebuild_tensor", args, 4)
    return _view(*args)


def _rebuild_tensor_v2(*args: Any) -> TensorRef:
    _arity("torch._utils._rebuild_tensor_v2", args, 6, 7)
    storage, offset, size, stride, requires_grad, hooks, *metadata = args
    _extras(hooks, metadata[0] if metadata else None)
    return _grad(_view(storage, offset, size, stride), requires_grad)


def _rebuild_tensor_v3(*args: Any) -> TensorRef:
    """torch >= 2.1 for dtypes without a typed storage (float8 ...): bytes plus the dtype to read them as."""
    _arity("torch._utils._rebuild_tensor_v3", args, 7, 8)
    storage, offset, size, stride, requires_grad, hooks, dtype, *metadata = args
    if type(dtype) is not DType:
        raise UnreadablePickle("a tensor names a dtype that is not a torch dtype")
    _extras(hooks, metadata[0] if metadata else None)
    return _grad(_view(storage, offset, size, stride, dtype.dtype), requires_grad)


def _parameter(data: Any, requires_grad: Any, hooks: Any) -> TensorRef:
    if type(data) is not TensorRef:
        raise UnreadablePickle("a parameter wraps something that is not a tensor")
    _extras(hooks, None)
    return _grad(checked_tensor(data), requires_grad)


def _rebuild_parameter(*args: Any) -> TensorRef:
    _arity("torch._utils._rebuild_parameter", args, 3)
    return _parameter(*args)


def _rebuild_parameter_with_state(*args: Any) -> TensorRef:
    """torch sets every attribute of `state` on the parameter, `data` included: only an empty state is read."""
    _arity("torch._utils._rebuild_parameter_with_state", args, 4)
    data, requires_grad, hooks, state = args
    parts = state if type(state) is tuple and len(state) == 2 else (state,)
    if not all(_empty(part) for part in parts):
        raise RefusedPickle(
            f"a parameter carries state {describe(state)}, which torch.load sets on it (it can replace its "
            "data); this tool does not model it and refuses the file"
        )
    return _parameter(data, requires_grad, hooks)


def _size(*args: Any) -> tuple[int, ...]:
    _arity("torch.Size", args, 1)
    return _counts(args[0], "a torch.Size")


def _allowed() -> dict[tuple[str, str], Any]:
    calls: dict[str, Callable[..., Any]] = {
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch.Size": _size,
    }
    allowed: dict[tuple[str, str], Any] = {("collections", "OrderedDict"): OrderedDict}
    for full, call in calls.items():
        module, _, name = full.rpartition(".")
        allowed[(module, name)] = _StandIn(full, call)
    allowed[("torch.storage", "UntypedStorage")] = StorageType("U8", untyped=True)
    for name, dtype in STORAGE_DTYPES.items():
        allowed[("torch", name)] = StorageType(dtype)
    for name, dtype in TORCH_DTYPES.items():
        allowed[("torch", name)] = DType(dtype)
    return allowed


ALLOWED = _allowed()
