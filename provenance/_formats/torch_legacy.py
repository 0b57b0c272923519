"""PyTorch's legacy (pre-zip) checkpoint format, as `_use_new_zipfile_serialization=False` still writes it.

The file is a run of pickles: a magic number, the protocol version (1001), a dict of system information
(byte order, C type sizes), the object tree, and the list of storage keys; then, for each key in that
order, an 8-byte little-endian element count followed by the storage's bytes. Every pickle goes through
the restricted unpickler; every count and size is checked before it is trusted.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from manifests.dtypes import DTYPE_BITS
from provenance._formats.unpickler import PICKLE_CAP, StorageRef, StorageType, UnreadablePickle, describe, load_next
from provenance.errors import MalformedContainer, TruncatedContainer

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
_HEAD = b"\x80\x02\x8a\x0a"  # pickle protocol 2, then LONG1 of 10 bytes: the magic number


@dataclass(frozen=True, slots=True)
class LegacyStorage:
    """A storage's bytes: file[start:end]."""

    start: int
    end: int


def is_legacy(head: bytes) -> bool:
    return head.startswith(_HEAD)


def read_legacy(stream: BinaryIO, file_size: int, path: str) -> tuple[Any, dict[str, LegacyStorage], bool]:
    """The object tree, where each storage's bytes are, and whether the storages are big-endian (never)."""
    stream.seek(0)
    head = io.BytesIO(stream.read(min(file_size, PICKLE_CAP)))
    if load_next(head, path) != MAGIC:
        raise MalformedContainer(path, "legacy PyTorch magic number missing")
    if load_next(head, path) != PROTOCOL:
        raise MalformedContainer(path, f"legacy PyTorch protocol is not {PROTOCOL}")
    info = load_next(head, path)
    if not isinstance(info, dict) or not isinstance(info.get("little_endian"), bool):
        raise MalformedContainer(path, "legacy PyTorch system information is damaged")
    declared: dict[str, StorageRef] = {}

    def storage(pid: Any) -> StorageRef:
        if not (type(pid) is tuple and len(pid) == 6 and pid[0] == "storage"):
            raise UnreadablePickle(f"unexpected persistent id {describe(pid)}")
        _, kind, key, _location, numel, view = pid
        if type(kind) is not StorageType or type(key) is not str or type(numel) is not int or numel < 0:
            raise UnreadablePickle(f"unexpected storage description {describe(pid)}")
        if kind.untyped:  # torch's legacy loader asks the storage type for its dtype, which this one lacks
            raise UnreadablePickle(
                "a storage is an UntypedStorage, which torch.load cannot read from a legacy file (torch.save writes it "
                "for float8 and unsigned dtypes); save the checkpoint in the zip format"
            )
        if view is not None:
            raise UnreadablePickle("storage views of the oldest legacy files are not supported")
        ref = StorageRef(key, kind.dtype, numel)
        if declared.setdefault(key, ref) != ref:
            raise UnreadablePickle(f"storage {key!r} is declared twice, differently")
        return ref

    tree = load_next(head, path, storage)
    keys = load_next(head, path)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise MalformedContainer(path, "the legacy storage key list is damaged")
    if set(declared) - set(keys):
        raise MalformedContainer(path, f"storage {sorted(set(declared) - set(keys))[0]!r} is used but not stored")
    storages: dict[str, LegacyStorage] = {}
    position = head.tell()
    for key in keys:
        if position + 8 > file_size:
            raise TruncatedContainer(path, f"cut short before storage {key!r}")
        stream.seek(position)
        (numel,) = struct.unpack("<q", stream.read(8))
        ref = declared.get(key)
        if ref is None or numel != ref.numel:
            raise MalformedContainer(
                path, f"storage {key!r} holds {numel:,} elements, the pickle declares another count"
            )
        start = position + 8
        end = start + numel * (DTYPE_BITS[ref.dtype] // 8)
        if end > file_size:
            raise TruncatedContainer(path, f"cut short inside storage {key!r}: {file_size:,} of {end:,} bytes")
        storages[key] = LegacyStorage(start, end)
        position = end
    if position != file_size:
        raise MalformedContainer(path, f"{file_size - position:,} bytes after the last storage belong to nothing")
    # torch reads legacy storages as little-endian whatever the system information says (torch.load ignores
    # it; torch.save wrote them little-endian on every machine): so are they read here.
    return tree, storages, False
