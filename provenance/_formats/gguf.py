"""GGUF (v2 and v3), the llama.cpp format: header parsed and validated here, types from the `gguf` package.

Every count and offset is checked against the bytes that remain before it is used, so an absurd count,
a string longer than the file or a mangled copy ends in MalformedContainer rather than an allocation or
an IndexError. F32/F16/BF16 and integer tensors are digested as in any other format, with their logical
row-major shape (GGUF lists dimensions fastest-first, so they are reversed); quantized tensors are
digested as their raw blocks, with the GGUF type name (Q8_0, Q4_K, ...) as dtype.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

from manifests.records import MAX_TENSORS, WEIGHTS_SUFFIXES
from provenance._formats.interface import KeyValue, Layout, TensorRecord
from provenance._formats.memo import identity, recall, remember
from provenance.errors import MalformedContainer, TruncatedContainer

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
HEADER_CAP = 512 << 20  # key-values and tensor infos; a 128k-token vocabulary is ~10 MB
# What a header may hold. Real files have tens of key-values, a few thousand tensors and vocabularies of
# up to ~300,000 strings (plus as many merges); each cap leaves an order of magnitude of room, and together
# they bound the parse to seconds and tens of MB whatever the counts in the file claim.
MAX_KEY_VALUES = 1 << 16
MAX_ITEMS = 1 << 23  # strings and nested arrays walked one by one, over all arrays of the header
MAX_STRING = 64 << 20  # one key, name or string value
MAX_DIMS = 8
MAX_NESTING = 4
READ_CHUNK = 1 << 20
PLAIN_TYPES = {
    "F32": "F32",
    "F16": "F16",
    "BF16": "BF16",
    "F64": "F64",
    "I8": "I8",
    "I16": "I16",
    "I32": "I32",
    "I64": "I64",
}
# value type -> struct format of scalars (8 is string, 9 is array)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_SIZES = {kind: struct.calcsize(fmt) for kind, fmt in _SCALARS.items()}
_STRING, _ARRAY = 8, 9
_UINT32 = 4
_U64 = struct.Struct("<Q")
KeyValues = dict[str, KeyValue]
_Info = tuple[str, tuple[int, ...], str, int, int]  # name, row-major shape, dtype, offset, bytes


class _NeedMore(Exception):
    """The first bytes at hand end inside the header: `at` bytes from the start are needed, at least."""

    def __init__(self, at: int) -> None:
        super().__init__(at)
        self.at = at


class _Cursor:
    """Reads the header sequentially through a small buffer; every read checks the bounds first.

    Only a chunk of the header is held at a time (skipped arrays are sought over, never read), so a
    vocabulary of hundreds of MB costs no memory, and a count that claims more than the file holds is
    refused before anything is allocated for it.
    """

    def __init__(self, stream: BinaryIO, path: str, file_size: int, partial: bool = False) -> None:
        self.stream, self.path, self.file_size = stream, path, file_size
        self.partial = partial  # `stream` holds only the file's first bytes: running out asks for more
        self.limit = min(file_size, HEADER_CAP)
        self.buffer, self.pos, self.base = b"", 0, 0  # buffer[0] is at file offset `base`
        self.items = 0  # array items walked so far, against MAX_ITEMS
        stream.seek(0)

    @property
    def at(self) -> int:
        return self.base + self.pos

    def _check(self, count: int, what: str) -> None:
        end = self.at + count
        if count < 0 or end > self.limit:
            if end > self.file_size:
                raise TruncatedContainer(self.path, f"GGUF header cut short while reading {what}")
            raise MalformedContainer(self.path, f"GGUF {what} is larger than the header can hold")

    def _fill(self, count: int, what: str) -> None:
        """Make `count` bytes from the current position available in the buffer."""
        self._check(count, what)
        if self.pos + count <= len(self.buffer):
            return
        parts = [self.buffer[self.pos :]]
        have = len(parts[0])
        want = min(max(count, READ_CHUNK), self.limit - self.at)
        while have < want:
            more = self.stream.read(want - have)
            if not more:
                if have >= count:  # a stream of the header alone ends before a full chunk
                    break
                if self.partial:
                    raise _NeedMore(self.at + count)
                raise TruncatedContainer(self.path, f"GGUF header cut short while reading {what}")
            parts.append(more)
            have += len(more)
        self.base, self.buffer, self.pos = self.at, b"".join(parts), 0

    def take(self, count: int, what: str) -> bytes:
        self._fill(count, what)
        chunk = self.buffer[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def skip(self, count: int, what: str) -> None:
        self._check(count, what)
        if self.pos + count <= len(self.buffer):
            self.pos += count
            return
        self.base, self.buffer, self.pos = self.at + count, b"", 0
        self.stream.seek(self.base)

    def scalar(self, fmt: str, what: str) -> int | float | bool:
        size = struct.calcsize(fmt)
        self._fill(size, what)
        value: int | float | bool = struct.unpack_from(fmt, self.buffer, self.pos)[0]
        self.pos += size
        return value

    def count(self, what: str, item_size: int = 1, cap: int | None = None) -> int:
        value = int(self.scalar("<Q", what))
        if value * max(item_size, 1) > self.limit - self.at:
            raise MalformedContainer(self.path, f"GGUF {what} of {value:,} cannot fit in the file")
        if cap is not None and value > cap:
            raise MalformedContainer(self.path, f"GGUF {what} of {value:,} is over the cap of {cap:,}")
        return value

    def string(self, what: str) -> str:
        raw = self.take(self.count(f"{what} length", cap=MAX_STRING), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedContainer(self.path, f"GGUF {what} is not UTF-8") from None

    def value(self, kind: int, what: str) -> int | float | bool | str | None:
        """A scalar or string value. An array is walked over, not kept (no reader needs its items): one of
        scalars stands as a summary such as "[32 items]", one of strings or arrays as None."""
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind], what)
        if kind == _STRING:
            return self.string(what)
        if kind == _ARRAY:
            return self._array(what, 0)
        raise MalformedContainer(self.path, f"GGUF {what} has unknown value type {kind}")

    def _array(self, what: str, depth: int) -> str | None:
        item_kind = int(self.scalar("<I", f"{what} item type"))
        if item_kind in _SCALARS:  # skipped in one step: vocabularies hold 100k+ items
            items = self.count(f"{what} item count", _SIZES[item_kind])
            self.skip(items * _SIZES[item_kind], what)
            return f"[{items} items]"
        if item_kind not in (_STRING, _ARRAY) or (item_kind == _ARRAY and depth + 1 >= MAX_NESTING):
            raise MalformedContainer(self.path, f"GGUF {what} has unknown or too deeply nested item type {item_kind}")
        items = self.count(f"{what} item count", 8 if item_kind == _STRING else 12)
        self.items += items
        if self.items > MAX_ITEMS:
            raise MalformedContainer(
                self.path, f"GGUF arrays hold over {MAX_ITEMS:,} strings or arrays in all; refusing the file"
            )
        if item_kind == _STRING:
            self._skip_strings(items, what)
        else:
            for _ in range(items):
                self._array(what, depth + 1)
        return None

    def _skip_strings(self, items: int, what: str) -> None:
        """Walk over `items` strings: the hot loop of a vocabulary, kept to a few operations per string."""
        unpack = _U64.unpack_from
        for _ in range(items):
            if self.pos + 8 > len(self.buffer):
                self._fill(8, f"{what} item length")
            (length,) = unpack(self.buffer, self.pos)
            self.pos += 8
            if self.pos + length <= len(self.buffer):
                self.pos += length
            elif length > MAX_STRING:
                raise MalformedContainer(self.path, f"GGUF {what} item of {length:,} bytes is over the cap")
            else:
                self.skip(length, what)


def _key_values(cursor: _Cursor, path: str) -> tuple[int, int, KeyValues]:
    """Magic, version and counts checked; the key-values read: (tensor count, alignment, scalar values)."""
    if cursor.take(4, "magic") != MAGIC:
        raise MalformedContainer(path, "not a GGUF file (no GGUF magic)")
    version = int(cursor.scalar("<I", "version"))
    if version not in (2, 3):
        raise MalformedContainer(path, f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count = cursor.count("tensor count", 24, MAX_TENSORS)
    kv_count = cursor.count("key-value count", 12, MAX_KEY_VALUES)
    alignment = DEFAULT_ALIGNMENT
    values: KeyValues = {}
    seen = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}  # GGUFReader's own fields: a key may not be one
    for _ in range(kv_count):
        key = cursor.string("key")
        if key in seen:  # GGUFReader refuses a key given twice: which one a reader keeps is not defined
            raise MalformedContainer(path, f"GGUF key {key!r} appears twice (or is one of the header's own)")
        seen.add(key)
        kind = int(cursor.scalar("<I", f"type of {key}"))
        value = cursor.value(kind, key)
        if key == "general.alignment":
            if kind != _UINT32:  # GGUFReader and llama.cpp read it as UINT32 only
                raise MalformedContainer(path, "GGUF general.alignment is not stored as UINT32, as readers require")
            if type(value) is not int or value <= 0 or value & (value - 1):
                raise MalformedContainer(path, f"GGUF general.alignment {value!r} is not a power of two")
            alignment = value
        if value is not None:
            values[key] = value
    return tensor_count, alignment, values


def _tensor_infos(cursor: _Cursor, path: str, tensor_count: int) -> list[_Info]:
    """The tensor entries after the key-values, each checked: dimensions, a known type, whole blocks."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # types and block sizes

    infos: list[_Info] = []
    for _ in range(tensor_count):
        name = cursor.string("tensor name")
        n_dims = int(cursor.scalar("<I", f"{name}: dimension count"))
        if n_dims > MAX_DIMS:
            raise MalformedContainer(path, f"GGUF tensor {name!r} has {n_dims} dimensions")
        dims = tuple(int(cursor.scalar("<Q", f"{name}: dimension")) for _ in range(n_dims))
        type_id = int(cursor.scalar("<I", f"{name}: type"))
        offset = int(cursor.scalar("<Q", f"{name}: offset"))
        try:
            kind = GGMLQuantizationType(type_id)
        except ValueError:
            raise MalformedContainer(path, f"GGUF tensor {name!r} has unknown type {type_id}") from None
        block, type_size = GGML_QUANT_SIZES[kind]
        count = 1
        for dim in dims:
            count *= dim
        if dims and dims[0] % block:
            raise MalformedContainer(path, f"GGUF tensor {name!r}: {dims[0]} is not a multiple of {block}")
        nbytes = count // block * type_size
        infos.append((name, tuple(reversed(dims)), PLAIN_TYPES.get(kind.name, kind.name), offset, nbytes))
    return infos


def _placed(infos: list[_Info], data_start: int, alignment: int, path: str) -> list[TensorRecord]:
    """The tensors at their place in the file, sorted; names given twice, misaligned or overlapping refused."""
    tensors: list[TensorRecord] = []
    seen: set[str] = set()
    for name, shape, dtype, offset, nbytes in infos:
        if name in seen:
            raise MalformedContainer(path, f"GGUF tensor name {name!r} appears twice")
        seen.add(name)
        if offset % alignment:
            raise MalformedContainer(path, f"GGUF tensor {name!r} is not aligned to {alignment} bytes")
        tensors.append(TensorRecord(name, dtype, shape, data_start + offset, data_start + offset + nbytes))
    tensors.sort(key=lambda t: (t.start, t.end))
    cursor_end = data_start
    for tensor in tensors:
        if tensor.start < cursor_end:
            raise MalformedContainer(path, f"GGUF tensor {tensor.name!r} overlaps the tensor before it")
        cursor_end = tensor.end
    return tensors


def read_key_values(stream: BinaryIO, file_size: int, path: str) -> KeyValues:
    """The scalar and string key-values of a GGUF file, typed, read within the same bounds as its layout.

    The very file (same device, inode, size and change times) whose layout was just read is not parsed
    again: its layout's table is given back.
    """
    remembered = recall(stream)
    if remembered is not None:
        return dict(remembered)
    return _key_values(_Cursor(stream, path, file_size), path)[2]


class GgufReader:
    """Reader for `*.gguf` files."""

    name = "gguf"
    header_holds_container = False  # tensors are aligned: padding after the header and between tensors

    def claims(self, path: str) -> bool:
        return path.endswith(WEIGHTS_SUFFIXES["gguf"])

    def header_extent(self, head: bytes, file_size: int, path: str) -> int:
        """Where the last tensor entry ends, walked over `head`; while `head` ends inside the header, a
        count at least twice its length (within the file and the cap), so that a few requests fetch any
        header and a caller that asks again as bytes arrive walks them a few times, not once per chunk."""
        cursor = _Cursor(io.BytesIO(head), path, file_size, partial=True)
        try:
            tensor_count = _key_values(cursor, path)[0]
            _tensor_infos(cursor, path, tensor_count)
        except _NeedMore as more:
            return max(more.at, min(cursor.limit, max(2 * len(head), READ_CHUNK)))
        return cursor.at

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        before = identity(stream)
        cursor = _Cursor(stream, path, file_size)
        tensor_count, alignment, values = _key_values(cursor, path)
        infos = _tensor_infos(cursor, path, tensor_count)
        data_start = -(-cursor.at // alignment) * alignment
        tensors = _placed(infos, data_start, alignment, path)
        end = tensors[-1].end if tensors else data_start
        expected = max(end, cursor.at) if tensors else cursor.at
        if file_size > expected + alignment:
            raise MalformedContainer(path, f"{file_size - expected:,} bytes after the last tensor belong to nothing")
        remember(before, stream, values)
        return Layout(
            format=self.name,
            expected_size=max(expected, min(file_size, expected + alignment)),
            tensors=tuple(tensors),
            metadata={key: str(value)[:200] for key, value in values.items()},
            key_values=values,
        )
