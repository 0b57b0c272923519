"""safetensors: an 8-byte little-endian header length, a JSON header, then the tensors' bytes.

The header is validated here before anything in it is trusted, to the same rules as the `safetensors`
package (which refuses headers over 100,000,000 bytes), and stricter where that package is lenient:
duplicate tensor names are refused instead of silently keeping the last.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from provenance.dtypes import DTYPE_BITS, byte_length
from provenance.errors import MalformedContainer, TruncatedContainer
from provenance.formats.interface import Layout, TensorRecord

HEADER_CAP = 100_000_000
METADATA_KEY = "__metadata__"


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SafetensorsReader:
    """Reader for `*.safetensors` files."""

    name = "safetensors"

    def claims(self, path: str) -> bool:
        return path.endswith(".safetensors")

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        if file_size < 8:
            raise TruncatedContainer(path, f"file is {file_size} bytes, too short for the 8-byte header length")
        stream.seek(0)
        (header_len,) = struct.unpack("<Q", stream.read(8))
        if header_len > HEADER_CAP:
            raise MalformedContainer(
                path,
                f"header length {header_len:,} exceeds the {HEADER_CAP:,}-byte cap; not a safetensors file",
            )
        if 8 + header_len > file_size:
            raise TruncatedContainer(
                path, f"header of {header_len:,} bytes runs past the end of the file ({file_size:,} bytes)"
            )
        raw = stream.read(header_len)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except _DuplicateKey as dup:
            raise MalformedContainer(path, f"name {str(dup)!r} appears twice in the header") from None
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise MalformedContainer(path, "header is not valid UTF-8 JSON") from None
        if not isinstance(header, dict):
            raise MalformedContainer(path, "header is not a JSON object")
        data_start = 8 + header_len
        metadata = self._metadata(header.pop(METADATA_KEY, None), path)
        tensors = sorted(
            (self._tensor(name, info, data_start, path) for name, info in header.items()),
            key=lambda t: (t.start, t.end),
        )
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
        if not isinstance(info, dict):
            raise MalformedContainer(path, f"entry {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise MalformedContainer(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise MalformedContainer(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise MalformedContainer(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
        dims = tuple(shape)
        expected = byte_length(dtype, dims)
        if expected != offsets[1] - offsets[0]:
            raise MalformedContainer(
                path,
                f"tensor {name!r} spans {offsets[1] - offsets[0]:,} bytes but {dtype}{list(dims)} needs "
                + ("a whole number of bytes" if expected is None else f"{expected:,}"),
            )
        return TensorRecord(name, dtype, dims, data_start + offsets[0], data_start + offsets[1])
