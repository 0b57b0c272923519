"""GGUF (v2 and v3), the llama.cpp format: header parsed and validated here, types from the `gguf` package.

Every count and offset is checked against the bytes that remain before it is used, so an absurd count,
a string longer than the file or a mangled copy ends in MalformedContainer rather than an allocation or
an IndexError. F32/F16/BF16 and integer tensors are digested as in any other format, with their logical
row-major shape (GGUF lists dimensions fastest-first, so they are reversed); quantized tensors are
digested as their raw blocks, with the GGUF type name (Q8_0, Q4_K, ...) as dtype.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from provenance.errors import MalformedContainer, TruncatedContainer
from provenance.formats.interface import Layout, TensorRecord

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
HEADER_CAP = 512 << 20  # key-values and tensor infos; a 128k-token vocabulary is ~10 MB
MAX_DIMS = 8
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


class _Cursor:
    """Reads the header from a bounded buffer; every read checks what remains first."""

    def __init__(self, data: bytes, path: str, file_size: int) -> None:
        self.data, self.path, self.file_size, self.at = data, path, file_size, 0

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.at + count > len(self.data):
            if self.at + count > self.file_size:
                raise TruncatedContainer(self.path, f"GGUF header cut short while reading {what}")
            raise MalformedContainer(self.path, f"GGUF {what} is larger than the header can hold")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def scalar(self, fmt: str, what: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]
        return value

    def count(self, what: str, item_size: int = 1) -> int:
        value = int(self.scalar("<Q", what))
        if value * max(item_size, 1) > len(self.data) - self.at:
            raise MalformedContainer(self.path, f"GGUF {what} of {value:,} cannot fit in the file")
        return value

    def string(self, what: str) -> str:
        raw = self.take(self.count(f"{what} length"), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedContainer(self.path, f"GGUF {what} is not UTF-8") from None

    def value(self, kind: int, what: str, depth: int = 0) -> object:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind], what)
        if kind == 8:
            return self.string(what)
        if kind == 9 and depth < 4:
            item_kind = int(self.scalar("<I", f"{what} item type"))
            size = struct.calcsize(_SCALARS[item_kind]) if item_kind in _SCALARS else 8
            items = self.count(f"{what} item count", size)
            if item_kind in _SCALARS:  # skip scalar arrays in one step: vocabularies hold 100k+ items
                self.take(items * size, what)
                return f"[{items} items]"
            return [self.value(item_kind, what, depth + 1) for _ in range(items)]
        raise MalformedContainer(self.path, f"GGUF {what} has unknown value type {kind}")


class GgufReader:
    """Reader for `*.gguf` files."""

    name = "gguf"

    def claims(self, path: str) -> bool:
        return path.endswith(".gguf")

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # types and block sizes

        stream.seek(0)
        cursor = _Cursor(stream.read(min(file_size, HEADER_CAP)), path, file_size)
        if cursor.take(4, "magic") != MAGIC:
            raise MalformedContainer(path, "not a GGUF file (no GGUF magic)")
        version = int(cursor.scalar("<I", "version"))
        if version not in (2, 3):
            raise MalformedContainer(path, f"GGUF version {version} is not supported (2 and 3 are)")
        tensor_count = cursor.count("tensor count", 24)
        kv_count = cursor.count("key-value count", 12)
        alignment = DEFAULT_ALIGNMENT
        metadata: dict[str, str] = {}
        for _ in range(kv_count):
            key = cursor.string("key")
            value = cursor.value(int(cursor.scalar("<I", f"type of {key}")), key)
            if key == "general.alignment":
                if type(value) is not int or value <= 0 or value & (value - 1):
                    raise MalformedContainer(path, f"GGUF general.alignment {value!r} is not a power of two")
                alignment = value
            if isinstance(value, str | int | float | bool):
                metadata[key] = str(value)[:200]
        infos: list[tuple[str, tuple[int, ...], str, int, int]] = []
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
        data_start = -(-cursor.at // alignment) * alignment
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
        expected = max(cursor_end, cursor.at) if tensors else cursor.at
        if file_size > expected + alignment:
            raise MalformedContainer(path, f"{file_size - expected:,} bytes after the last tensor belong to nothing")
        return Layout(
            format=self.name,
            expected_size=max(expected, min(file_size, expected + alignment)),
            tensors=tuple(tensors),
            metadata=metadata,
        )
