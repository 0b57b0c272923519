"""What every format reader produces: where each tensor's bytes sit in the file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple, Protocol

from manifests.records import TreePath

KeyValue = int | float | bool | str  # a typed value of a container's header table (GGUF's key-values)


class TensorRecord(NamedTuple):
    """One tensor: its bytes are file[start:end], row-major, little-endian, in `dtype`.

    A named tuple rather than a frozen dataclass: headers hold up to hundreds of thousands of these,
    and construction cost is the per-tensor overhead.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int
    path: TreePath | None = None  # the keys to a tensor nested in a PyTorch object tree; None: a flat name


class ViewRecord(NamedTuple):
    """A tensor that is not one plain run of little-endian bytes in the file.

    A strided view of a storage (a transposed or column-major tensor), a second tensor over bytes another
    tensor already covers (shared storage, tied weights), or big-endian data. Its elements are
    storage[offset + sum(i * stride)], storage being file[storage_start:storage_end]; the engine gathers
    them in row-major order, little-endian, to digest them as any other tensor.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    storage_start: int
    storage_end: int
    offset: int
    stride: tuple[int, ...]
    big_endian: bool
    path: TreePath | None = None  # as TensorRecord.path


@dataclass(frozen=True, slots=True)
class Layout:
    """A validated container: its tensors sorted by offset, and the size its header promises.

    Every byte of [0, expected_size) that no plain tensor covers belongs to the container (header,
    padding, records, and storages seen only through views); the engine digests those bytes together so
    byte identity is provable from parts. `views` are digested on top, from the storages they read.
    """

    format: str
    expected_size: int
    tensors: tuple[TensorRecord, ...]
    metadata: dict[str, str]
    views: tuple[ViewRecord, ...] = ()
    # The header's scalar and string values as a loader reads them (GGUF's key-values: architecture, head
    # counts, rotary base), where `metadata` only shows them; empty for formats without such a table.
    key_values: Mapping[str, KeyValue] = field(default_factory=dict)


class FormatReader(Protocol):
    """A reader for one container format."""

    name: str
    # Whether every byte outside the tensors lies in the header (no padding, records or index after it):
    # then the digest of the header's bytes is the file's container digest, with no other byte read.
    header_holds_container: bool

    def claims(self, path: str) -> bool:
        """Whether files with this name belong to the format."""
        ...

    def header_extent(self, head: bytes, file_size: int, path: str) -> int | None:
        """How many bytes from the start of the file read_layout reads, told from the file's first bytes.

        What a stream or a range-request reader needs to fetch before it can have the layout. None when
        the layout is not in a prefix of the file (a zip's directory is at its end): only the whole file
        gives it. A count over len(head) asks for that many bytes, then again (GGUF's header ends where
        its last key-value and tensor entry do, known only once they are walked); a count within it says
        read_layout needs exactly head[:count]. Raises MalformedContainer where the first bytes already
        refute the format (a length over its cap) and TruncatedContainer where the header passes
        `file_size`, as read_layout would.
        """
        ...

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        """Parse and validate the container's structure; raise MalformedContainer on anything wrong.

        A file shorter than the layout it declares is not an error here (a partial download still has
        readable tensors); the caller compares `expected_size` with the real size. A file whose header
        itself is cut short raises TruncatedContainer.
        """
        ...
