"""safetensors: an 8-byte little-endian header length, a JSON header, then the tensors' bytes.

The header is validated here before anything in it is trusted, to the same rules as the `safetensors`
package (which refuses headers over 100,000,000 bytes), and stricter where that package is lenient:
duplicate tensor names are refused instead of silently keeping the last.
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any, BinaryIO

from manifests.dtypes import DTYPE_BITS
from manifests.io import parse_cost
from manifests.records import WEIGHTS_SUFFIXES
from provenance._formats.interface import Layout, TensorRecord
from provenance.errors import MalformedContainer, TruncatedContainer

HEADER_CAP = 100_000_000
MAX_DEPTH = 128  # serde_json's nesting limit
USIZE_MAX = 2**64 - 1  # sizes are 64-bit in the safetensors package; larger ones are refused there
_NEGATIVE_ZERO = re.compile(rb"-0(?![0-9.eE])")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
METADATA_KEY = "__metadata__"
# What parsing a header may cost in Python objects (estimated by manifests.io.parse_cost): a header of
# 100,000 tensors costs ~50 MB; a 100 MB header of `{"a": 0}` items would take gigabytes.
PARSE_BUDGET = 256 << 20
_OBJECT_START = re.compile(rb"[ \t\n\r]*\{")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # rare: find the culprit only then
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _no_negative_zero(text: str) -> int:
    if text == "-0":
        raise ValueError("-0 is not a count")
    return int(text)


def _check_unicode(value: Any) -> None:
    """Refuse lone surrogates, which Python's JSON accepts from escapes and strict parsers refuse."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _too_deep(value: Any, depth: int) -> bool:
    """Whether containers nest past MAX_DEPTH. Recursion is bounded: json.loads already refused deeper."""
    if depth > MAX_DEPTH:
        return True
    if type(value) is dict:
        value = value.values()
    elif type(value) is not list:
        return False
    return any(_too_deep(item, depth + 1) for item in value if type(item) is dict or type(item) is list)


def _parse_json(raw: bytes, path: str) -> Any:
    """Parse a header as strictly as the `safetensors` package (serde_json) does.

    Python's json is laxer: NaN and Infinity, numbers out of range, `-0` as an integer, lone surrogate
    escapes and duplicate keys all pass it. The checks that cost a Python call per value run only when a
    cheap scan of the raw bytes says they may be needed.
    """
    _check_cost(raw, path)
    hooks: dict[str, Any] = {
        "object_pairs_hook": _no_duplicates,
        "parse_constant": _reject_constant,
        "parse_float": _finite_float,
    }
    if _NEGATIVE_ZERO.search(raw):
        hooks["parse_int"] = _no_negative_zero
    surrogates = _SURROGATE_ESCAPE.search(raw) is not None
    try:
        text = raw.decode("utf-8")
        del raw  # the caller holds no other reference: at most one copy of a 100 MB header at a time
        header = json.loads(text, **hooks)
        del text
        if surrogates:
            _check_unicode(header)
    except _DuplicateKey as dup:
        raise MalformedContainer(path, f"key {str(dup)!r} appears twice in the header") from None
    except (UnicodeError, ValueError, RecursionError):
        raise MalformedContainer(path, "header is not valid UTF-8 JSON") from None
    return header


def _check_cost(raw: bytes, path: str) -> None:
    """Refuse, before parsing, headers that are not an object or whose parse would cost unbounded memory."""
    if _OBJECT_START.match(raw) is None:
        raise MalformedContainer(path, "header is not a JSON object")
    cost = parse_cost(raw)
    if cost > PARSE_BUDGET:
        raise MalformedContainer(
            path, f"header holds too many JSON values (~{cost >> 20:,} MiB to parse, over {PARSE_BUDGET >> 20} MiB)"
        )


def _position(record: TensorRecord) -> tuple[int, int]:
    return (record.start, record.end)


def _check_room(file_size: int, path: str) -> None:
    if file_size < 8:
        raise TruncatedContainer(path, f"file is {file_size} bytes, too short for the 8-byte header length")


def _header_length(first: bytes, file_size: int, path: str) -> int:
    """The header's length from the file's first 8 bytes, refused over the cap or past the file's end."""
    (header_len,) = struct.unpack("<Q", first)
    if header_len > HEADER_CAP:
        raise MalformedContainer(
            path,
            f"header length {header_len:,} exceeds the {HEADER_CAP:,}-byte cap; not a safetensors file",
        )
    if 8 + header_len > file_size:
        raise TruncatedContainer(
            path, f"header of {header_len:,} bytes runs past the end of the file ({file_size:,} bytes)"
        )
    return int(header_len)


class SafetensorsReader:
    """Reader for `*.safetensors` files."""

    name = "safetensors"
    header_holds_container = True  # the tensors tile every byte after the header: read_layout refuses gaps

    def claims(self, path: str) -> bool:
        return path.endswith(WEIGHTS_SUFFIXES["safetensors"])

    def header_extent(self, head: bytes, file_size: int, path: str) -> int:
        if len(head) < 8:
            _check_room(file_size, path)
            return 8
        return 8 + _header_length(head[:8], file_size, path)

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        _check_room(file_size, path)
        stream.seek(0)
        header_len = _header_length(stream.read(8), file_size, path)
        header = _parse_json(stream.read(header_len), path)
        if not isinstance(header, dict):
            raise MalformedContainer(path, "header is not a JSON object")
        data_start = 8 + header_len
        metadata = self._metadata(header.pop(METADATA_KEY, None), path)
        parse = self._tensor
        tensors = [parse(name, info, data_start, path) for name, info in header.items()]
        tensors.sort(key=_position)
        cursor = data_start
        for tensor in tensors:
            if tensor.start < cursor:
                raise MalformedContainer(path, f"tensor {tensor.name!r} overlaps the tensor before it")
            if tensor.start > cursor:
                raise MalformedContainer(
                    path, f"{tensor.start - cursor:,} bytes before tensor {tensor.name!r} belong to no tensor"
                )
            cursor = tensor.end
        if file_size > cursor:
            raise MalformedContainer(path, f"{file_size - cursor:,} bytes after the last tensor belong to no tensor")
        return Layout(format=self.name, expected_size=cursor, tensors=tuple(tensors), metadata=metadata)

    @staticmethod
    def _metadata(value: object, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise MalformedContainer(path, f"{METADATA_KEY} must map strings to strings")
        return value

    @staticmethod
    def _tensor(name: str, info: object, data_start: int, path: str) -> TensorRecord:
        # The hot loop of a 100,000-tensor header: exact type checks (a bool is not a count), no generators.
        if type(info) is not dict:
            raise MalformedContainer(path, f"entry {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        bits = DTYPE_BITS.get(dtype) if type(dtype) is str else None
        if bits is None:
            raise MalformedContainer(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        if type(shape) is not list:
            raise MalformedContainer(path, f"tensor {name!r} has an invalid shape {shape!r}")
        count = 1
        for dim in shape:
            if type(dim) is not int or dim < 0 or dim > USIZE_MAX:
                raise MalformedContainer(path, f"tensor {name!r} has an invalid shape {shape!r}")
            count *= dim
            if count > USIZE_MAX:
                raise MalformedContainer(path, f"tensor {name!r} has more elements than any file can hold")
        if type(offsets) is not list or len(offsets) != 2:
            raise MalformedContainer(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if type(begin) is not int or type(end) is not int or begin < 0 or begin > end or end > USIZE_MAX:
            raise MalformedContainer(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
        total_bits = count * bits
        if total_bits > USIZE_MAX:
            raise MalformedContainer(path, f"tensor {name!r} has more elements than any file can hold")
        if len(info) > 3 and _too_deep(info, 2):
            raise MalformedContainer(path, f"entry {name!r} nests deeper than {MAX_DEPTH} levels")
        if total_bits % 8 or total_bits // 8 != end - begin:
            expected = "a whole number of bytes" if total_bits % 8 else f"{total_bits // 8:,}"
            raise MalformedContainer(
                path, f"tensor {name!r} spans {end - begin:,} bytes but {dtype}{shape} needs {expected}"
            )
        return TensorRecord(name, str(dtype), tuple(shape), data_start + begin, data_start + end)
