"""The container of PyTorch's zip checkpoints (`.pt`, `.pth`, `.bin`): validated before anything is trusted.

`torch.save` writes an uncompressed zip: `<prefix>/data.pkl` (the object tree), `<prefix>/data/<key>`
(one entry per storage), `<prefix>/byteorder`, `<prefix>/version`. This module reads the central
directory and checks every entry against its local header, so that the byte range of each storage is
known exactly and no trick of the format can make two readers see different files: duplicate names,
compressed or encrypted data entries, local headers that disagree with the central directory, entries
that overlap or run past the end of the file are all refused.
"""

from __future__ import annotations

import itertools
import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from provenance.errors import MalformedContainer, TruncatedContainer

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_SIGNATURE = b"PK\x03\x04"
MAX_ENTRIES = 1_000_000


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One stored entry: its bytes are file[start:end]; `header_start` is where its local header begins."""

    name: str
    header_start: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TorchArchive:
    """A validated torch zip: the common prefix, the pickle entry, and the storages by key."""

    prefix: str
    pickle: ZipEntry
    storages: dict[str, ZipEntry]
    entries: tuple[ZipEntry, ...]  # every entry, in file order
    byteorder: str


def is_zip(head: bytes) -> bool:
    return head.startswith(LOCAL_SIGNATURE)


def read_archive(stream: BinaryIO, file_size: int, path: str) -> TorchArchive:
    """Validate a torch zip checkpoint's structure and locate its pickle and storages."""
    try:
        archive = zipfile.ZipFile(stream)
        infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        reason = str(exc)
        if "not a zip file" in reason.lower() or "truncated" in reason.lower():
            raise TruncatedContainer(path, f"the zip directory is missing or cut short ({reason})") from None
        raise MalformedContainer(path, f"damaged zip directory ({reason})") from None
    except (ValueError, OverflowError, struct.error, OSError, EOFError) as exc:
        raise MalformedContainer(path, f"damaged zip directory ({type(exc).__name__})") from None
    if len(infos) > MAX_ENTRIES:
        raise MalformedContainer(path, f"{len(infos):,} zip entries; no checkpoint has that many")
    names: set[str] = set()
    entries: list[ZipEntry] = []
    for info in infos:
        if info.filename in names:
            raise MalformedContainer(path, f"zip entry {info.filename!r} appears twice: readers would disagree")
        names.add(info.filename)
        entries.append(_entry(stream, file_size, path, info))
    entries.sort(key=lambda e: e.header_start)
    for before, after in itertools.pairwise(entries):
        if after.header_start < before.end:
            raise MalformedContainer(path, f"zip entries {before.name!r} and {after.name!r} overlap")
    return _torch_layout(entries, stream, path)


def _entry(stream: BinaryIO, file_size: int, path: str, info: zipfile.ZipInfo) -> ZipEntry:
    name = info.filename
    if info.flag_bits & 0x1:
        raise MalformedContainer(path, f"zip entry {name!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise MalformedContainer(path, f"zip entry {name!r} is compressed; torch.save stores entries uncompressed")
    if info.header_offset + LOCAL_HEADER.size > file_size:
        raise TruncatedContainer(path, f"zip entry {name!r} starts past the end of the file")
    stream.seek(info.header_offset)
    fields = LOCAL_HEADER.unpack(stream.read(LOCAL_HEADER.size))
    signature, _, flags, method, _, _, _, size_c, size_u, name_len, extra_len = fields
    if signature != LOCAL_SIGNATURE:
        raise MalformedContainer(path, f"zip entry {name!r}: no local header where the directory says")
    local_name = stream.read(name_len)
    if local_name != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace"):
        raise MalformedContainer(path, f"zip entry {name!r}: its local header names {local_name[:60]!r}")
    if method != info.compress_type or (flags & 0x1):
        raise MalformedContainer(path, f"zip entry {name!r}: local header and directory disagree")
    if not flags & 0x8 and size_c != 0xFFFFFFFF and (size_c, size_u) != (info.compress_size, info.file_size):
        raise MalformedContainer(path, f"zip entry {name!r}: local header and directory disagree on its size")
    start = info.header_offset + LOCAL_HEADER.size + name_len + extra_len
    return ZipEntry(name, info.header_offset, start, start + info.file_size)


def _torch_layout(entries: list[ZipEntry], stream: BinaryIO, path: str) -> TorchArchive:
    pickles = [e for e in entries if e.name.endswith("/data.pkl") and e.name.count("/") == 1]
    if len(pickles) != 1:
        raise MalformedContainer(path, "not a torch checkpoint: no single <prefix>/data.pkl entry")
    prefix = pickles[0].name[: -len("/data.pkl")]
    data_dir = f"{prefix}/data/"
    storages = {e.name[len(data_dir) :]: e for e in entries if e.name.startswith(data_dir)}
    byteorder = "little"
    order_entry = next((e for e in entries if e.name == f"{prefix}/byteorder"), None)
    if order_entry is not None:
        stream.seek(order_entry.start)
        value = stream.read(min(16, order_entry.end - order_entry.start)).decode("ascii", "replace")
        if value not in ("little", "big"):
            raise MalformedContainer(path, f"byteorder is {value!r}, not little or big")
        byteorder = value
    return TorchArchive(prefix, pickles[0], storages, tuple(entries), byteorder)
