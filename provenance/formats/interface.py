"""What every format reader produces: where each tensor's bytes sit in the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, NamedTuple, Protocol


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


@dataclass(frozen=True, slots=True)
class Layout:
    """A validated container: its tensors sorted by offset, and the size its header promises.

    Every byte of [0, expected_size) that no tensor covers belongs to the container (header, padding,
    records); the engine digests those bytes together so byte identity is provable from parts.
    """

    format: str
    expected_size: int
    tensors: tuple[TensorRecord, ...]
    metadata: dict[str, str]


class FormatReader(Protocol):
    """A reader for one container format."""

    name: str

    def claims(self, path: str) -> bool:
        """Whether files with this name belong to the format."""
        ...

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        """Parse and validate the container's structure; raise MalformedContainer on anything wrong.

        A file shorter than the layout it declares is not an error here (a partial download still has
        readable tensors); the caller compares `expected_size` with the real size. A file whose header
        itself is cut short raises TruncatedContainer.
        """
        ...
