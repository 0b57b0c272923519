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
import itertools
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from manifests.dtypes import DTYPE_BITS
from provenance.errors import ProvenanceError

PICKLE_CAP = 64 << 20  # a data.pkl of a hundred thousand tensors is well under this
OBJECT_CAP = 512 << 20  # bytes of Python objects a pickle may build (estimated before it is run)
MAX_OPCODES = 10 << 20  # opcodes read before a pickle runs: about 40 per tensor, so 200,000 tensors (MAX_TENSORS) fit
MAX_NODES = 1 << 20  # nodes of an object tree visited, memo-shared subtrees counted each time they are reached
MAX_NAME_CHARS = 64 << 20  # characters of all dotted paths of an object tree together

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
# The opcodes torch.load(weights_only=True) executes (torch/_weights_only_unpickler.py); any other is refused.
TORCH_OPCODES = frozenset(
    {
        "PROTO", "STOP", "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
        "MARK", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
        "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE",
        "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1",
    }
)  # fmt: skip
# Upper bounds of the bytes of objects one opcode can make (sizes in CPython 3.12), a slot to hold it included.
_OBJECT_BYTES = {"EMPTY_SET": 280, "EMPTY_DICT": 280, "EMPTY_LIST": 120, "REDUCE": 640, "NEWOBJ": 640, "LONG1": 400}
_SMALL_BYTES = {"BINPUT": 16, "LONG_BINPUT": 16, "MARK": 16, "PROTO": 0, "STOP": 0, "BUILD": 0}
_SMALL_BYTES.update(
    dict.fromkeys(("BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE", "BININT1"), 32)
)
# ^ objects that already exist (memo entries, singletons, small ints): only the slot that holds them


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


class RefusedPickle(UnreadablePickle):
    """A readable pickle asking torch to apply something this tool does not model (values torch would change,
    a stand-in rewritten after it was checked): deliberate, not damage."""


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


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise UnreadablePickle(f"{what} is {describe(value)}, not a count")
    return value


def _counts(value: Any, what: str) -> tuple[int, ...]:
    if type(value) not in (tuple, list):
        raise UnreadablePickle(f"{what} is {type(value).__name__}, not a tuple of counts")
    return tuple(_count(v, what) for v in value)


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
    _count(storage.numel, "a storage's element count")
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
    return TensorRef(storage, _count(offset, "a storage offset"), shape, strides, view_dtype)


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
        ref = StorageRef(key, kind.dtype, _count(numel, "a storage's element count"))
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


_MEMO_OPS = frozenset({"BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET"})


MAX_TUPLE_DEPTH = 100  # hashing a tuple recurses in C without a limit: a million nested tuples crash CPython
_POPS = {"APPEND": 1, "SETITEM": 2, "BUILD": 1, "BINPERSID": 1, "REDUCE": 2, "NEWOBJ": 2}
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_KEEPS = frozenset({"PROTO", "STOP", "BINPUT", "LONG_BINPUT"})


class _Nesting:
    """How deeply the tuples on the unpickler's stack nest, followed opcode by opcode without running them."""

    def __init__(self) -> None:
        self.stack: list[int] = []
        self.marks: list[int] = []
        self.memo: dict[int, int] = {}

    def _pop(self, count: int) -> int:
        taken = self.stack[max(0, len(self.stack) - count) :] if count else []
        del self.stack[len(self.stack) - len(taken) :]
        return max(taken, default=0)

    def _to_mark(self) -> int:
        return self._pop(len(self.stack) - (self.marks.pop() if self.marks else 0))

    def step(self, name: str, arg: Any) -> int:
        """Follow one opcode; the depth of the tuple it made (0 when it made none)."""
        if name in _KEEPS:
            if name != "STOP" and name != "PROTO":
                self.memo[int(arg or 0)] = self.stack[-1] if self.stack else 0
            return 0
        if name == "MARK":
            self.marks.append(len(self.stack))
            return 0
        if name in ("BINGET", "LONG_BINGET"):
            self.stack.append(self.memo.get(int(arg or 0), 0))
            return 0
        if name in ("APPENDS", "SETITEMS"):
            self._to_mark()
            return 0
        depth = 0
        if name == "TUPLE":
            depth = self._to_mark() + 1
        elif name in _TUPLES:
            depth = self._pop(_TUPLES[name]) + 1
        elif name == "EMPTY_TUPLE":
            depth = 1
        else:
            self._pop(_POPS.get(name, 0))
        self.stack.append(depth)
        return depth


def _prescan(stream: io.BytesIO, source: str) -> None:
    """Read the pickle's opcodes before running it: only the ones torch.load(weights_only=True) runs, memo
    indexes a real pickle uses (the C unpickler sizes its memo to the largest index it sees: 9 bytes naming
    2**28 cost gigabytes), tuples nested no deeper than a hash can follow, and no more objects than the
    memory bound allows."""
    start = stream.tell()
    limit = len(stream.getbuffer()) - start
    cost = 0
    refused = ""
    nesting = _Nesting()
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(stream)):
            name = opcode.name
            if count >= MAX_OPCODES:
                raise UnreadablePickle(f"the pickle has over {MAX_OPCODES:,} opcodes, more than any checkpoint")
            if name not in TORCH_OPCODES:
                refused = refused or name
                continue
            if name in _MEMO_OPS and int(arg or 0) > limit:
                raise UnreadablePickle(f"memo index {arg:,} in a pickle of {limit:,} bytes")
            if nesting.step(name, arg) > MAX_TUPLE_DEPTH:
                raise UnreadablePickle(f"the pickle nests tuples deeper than {MAX_TUPLE_DEPTH} levels")
            size = len(arg) * 4 if type(arg) is str else len(arg) if type(arg) is bytes else 0
            cost += _SMALL_BYTES.get(name, _OBJECT_BYTES.get(name, 96)) + size
            if cost > OBJECT_CAP:
                raise UnreadablePickle(f"the pickle would build over {OBJECT_CAP >> 20:,} MiB of objects")
    finally:
        end = stream.tell()
        stream.seek(start)
    if refused:
        named = [g for g in list_globals(stream.getvalue()[start:end]) if tuple(g.rsplit(".", 1)) not in ALLOWED]
        if named and not named[0].startswith("("):
            module, _, attr = named[0].rpartition(".")
            raise DisallowedGlobal(source, module, attr)
        raise UnreadablePickle(f"the pickle uses opcode {refused}, which torch.load(weights_only=True) refuses")


def load_next(stream: io.BytesIO, source: str, persistent: Callable[[Any], Any] = _no_storages) -> Any:
    """Unpickle the next pickle of a stream of several (the legacy format), with the allow-list."""
    try:
        _prescan(stream, source)
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


MAX_TREE_DEPTH = 64  # state dicts nest a few levels; a deeper or self-referential tree is hostile


def describe(value: Any, limit: int = 80) -> str:
    """A short text for any value a pickle can build, in bounded time and never raising (huge integers,
    deep nesting and long strings included): what reports and errors say of it."""
    text = _describe(value, 3, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any, depth: int, limit: int) -> str:
    if value is None or type(value) in (bool, float, complex):
        return repr(value)
    if type(value) is int:
        return str(value) if value.bit_length() <= 256 else f"<int of {value.bit_length():,} bits>"
    if type(value) is str:
        return repr(value[: limit + 1])
    if type(value) in (bytes, bytearray):
        return repr(value[: limit + 1])
    if type(value) in (tuple, list, set, frozenset, dict, OrderedDict):
        if depth == 0:
            return f"<{type(value).__name__} of {len(value):,}>"
        items = value.items() if isinstance(value, dict) else value
        parts = []
        for item in itertools.islice(items, 8):
            if isinstance(value, dict):
                parts.append(f"{_describe(item[0], depth - 1, limit)}: {_describe(item[1], depth - 1, limit)}")
            else:
                parts.append(_describe(item, depth - 1, limit))
        more = ", ..." if len(value) > 8 else ""
        inner = ", ".join(parts) + more
        if type(value) is tuple:
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        if type(value) is list:
            return f"[{inner}]"
        if type(value) in (dict, OrderedDict):
            return f"{{{inner}}}" if type(value) is dict else f"OrderedDict({{{inner}}})"
        return f"{type(value).__name__}({{{inner}}})" if value else f"{type(value).__name__}()"
    return f"<{type(value).__name__}>"


def _name_part(key: Any) -> str:
    return key if type(key) is str else describe(key)


def walk_tensors(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every leaf of a checkpoint's object tree by dotted path (list items by index), tensors and not."""
    for name, _, leaf in walk_paths(tree):
        yield name, leaf


def walk_paths(tree: Any) -> Iterator[tuple[str, tuple[str | int, ...], Any]]:
    """Every leaf by dotted path and by the keys that lead to it: `{"model": {"a.b": t}}` and `{"model.a.b": t}`
    share a dotted name, but torch.load returns a nested dict for one and the name a loader looks up for the other.

    Bounded whatever the pickle shares through its memo: a subtree reached twice is walked twice, so the
    nodes visited and the characters of the paths made are counted, and a tree over either bound refused.
    """
    budget = [MAX_NODES, MAX_NAME_CHARS]
    yield from _walk(tree, "", (), 0, budget)


def _walk(
    tree: Any, prefix: str, parts: tuple[str | int, ...], depth: int, budget: list[int]
) -> Iterator[tuple[str, tuple[str | int, ...], Any]]:
    budget[0] -= 1
    budget[1] -= len(prefix)
    if budget[0] < 0 or budget[1] < 0:
        raise UnreadablePickle(
            f"the object tree is larger than {MAX_NODES:,} nodes or {MAX_NAME_CHARS:,} characters of names "
            "(subtrees shared through the pickle's memo count each time they are reached)"
        )
    if depth > MAX_TREE_DEPTH:
        raise UnreadablePickle(f"the object tree nests deeper than {MAX_TREE_DEPTH} levels or refers to itself")
    if isinstance(tree, dict):
        for key, value in tree.items():
            part = _name_part(key)
            yield from _walk(value, f"{prefix}.{part}" if prefix else part, (*parts, part), depth + 1, budget)
    elif type(tree) in (list, tuple):
        for index, value in enumerate(tree):
            part = str(index)
            yield from _walk(value, f"{prefix}.{part}" if prefix else part, (*parts, index), depth + 1, budget)
    else:
        yield prefix, parts, tree


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
