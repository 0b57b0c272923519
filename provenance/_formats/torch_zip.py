"""The container of PyTorch's zip checkpoints (`.pt`, `.pth`, `.bin`): validated before anything is trusted.

`torch.save` writes an uncompressed zip: `<prefix>/data.pkl` (the object tree), `<prefix>/data/<key>`
(one entry per storage), `<prefix>/byteorder`, `<prefix>/version`. This module reads the central
directory and checks every entry against its local header, so that the byte range of each storage is
known exactly and no trick of the format can make two readers see different files: duplicate names,
compressed or encrypted data entries, local headers that disagree with the central directory, entries
that overlap or run past the end of the file are all refused.

torch's reader (PyTorchStreamReader, over miniz) finds records by name ignoring ASCII case, takes the
archive's folder from the first entry of the central directory and refuses any entry outside it, needs a
`version` record, and reads offsets as they are written (no bytes before the archive). Names are matched
here as torch matches them, and any archive where that matching could pick another record is refused.
"""

from __future__ import annotations

import itertools
import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from provenance.errors import MalformedContainer, RefusedContainer, TruncatedContainer

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
    folded: bytes  # the raw name with ASCII letters lowered: what torch's reader matches


def fold(name: bytes) -> bytes:
    """A record name as torch's reader compares it: ASCII letters lowered, every other byte as it is."""
    return name.lower()  # bytes.lower() lowers ASCII letters only


@dataclass(frozen=True, slots=True)
class TorchArchive:
    """A validated torch zip: the common prefix, the pickle entry, and the storages by key."""

    prefix: str
    pickle: ZipEntry
    storages: dict[bytes, ZipEntry]  # by key (the name after `<prefix>/data/`), folded
    entries: tuple[ZipEntry, ...]  # every entry, in file order
    byteorder: str

    def storage(self, key: str) -> ZipEntry | None:
        """The record torch reads for storage `key`: `<prefix>/data/<key>`, matched as torch matches it."""
        return self.storages.get(fold(key.encode("utf-8", "surrogatepass")))


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
    except NotImplementedError as exc:  # "zip file version 12.8", a feature zipfile does not read
        raise MalformedContainer(
            path, f"a zip feature this reader does not take ({exc}); torch.save never writes it"
        ) from None
    except (ValueError, OverflowError, struct.error, OSError, EOFError, KeyError, IndexError) as exc:
        raise MalformedContainer(path, f"damaged zip directory ({type(exc).__name__})") from None
    if len(infos) > MAX_ENTRIES:
        raise MalformedContainer(path, f"{len(infos):,} zip entries; no checkpoint has that many")
    _check_end_record(stream, file_size, path, archive.start_dir, len(infos))
    folded: dict[bytes, int] = {}
    casefolded: dict[str, int] = {}
    entries: list[ZipEntry] = []
    for index, info in enumerate(infos):
        entry = _entry(stream, file_size, path, info)
        other = folded.setdefault(entry.folded, index)
        other = other if other != index else casefolded.setdefault(info.filename.casefold(), index)
        if other != index:
            raise RefusedContainer(
                path,
                f"zip entries {infos[other].filename!r} and {info.filename!r} are one name to torch, which matches "
                "names ignoring case (or the same name twice): readers would disagree",
            )
        entries.append(entry)
    first = entries[0] if entries else None
    entries.sort(key=lambda e: e.header_start)
    for before, after in itertools.pairwise(entries):
        if after.header_start < before.end:
            raise MalformedContainer(path, f"zip entries {before.name!r} and {after.name!r} overlap")
    return _torch_layout(first, entries, stream, path)


END_RECORD = struct.Struct("<4sHHHHIIH")
END_SIGNATURE = b"PK\x05\x06"
ZIP64_LOCATOR = struct.Struct("<4sIQI")
ZIP64_END = struct.Struct("<4sQHHIIQQQQ")


def _check_end_record(stream: BinaryIO, file_size: int, path: str, start_dir: int, count: int) -> None:
    """The central directory is where the end record says, and holds as many entries as it says.

    Python's zipfile shifts every offset when bytes precede the archive (or the end record points
    elsewhere); torch's reader does not, so such an archive holds a second reading: refused.
    """
    tail_start = max(0, file_size - END_RECORD.size - 0xFFFF)
    stream.seek(tail_start)
    tail = stream.read(file_size - tail_start)
    at = tail.rfind(END_SIGNATURE, 0, len(tail) - END_RECORD.size + len(END_SIGNATURE))
    if at < 0:
        raise MalformedContainer(path, "the zip end record is missing")
    _, _, _, _, entries, _, offset, _ = END_RECORD.unpack_from(tail, at)
    if offset == 0xFFFFFFFF or entries == 0xFFFF:
        locator_at = tail_start + at - ZIP64_LOCATOR.size
        stream.seek(max(0, locator_at))
        locator = stream.read(ZIP64_LOCATOR.size)
        if locator_at < 0 or len(locator) != ZIP64_LOCATOR.size or not locator.startswith(b"PK\x06\x07"):
            raise MalformedContainer(path, "the zip64 end record locator is missing")
        end_at = ZIP64_LOCATOR.unpack(locator)[2]
        if end_at + ZIP64_END.size > file_size:
            raise MalformedContainer(path, "the zip64 end record locator points past the end of the file")
        stream.seek(end_at)
        record = stream.read(ZIP64_END.size)
        if len(record) != ZIP64_END.size or not record.startswith(b"PK\x06\x06"):
            raise MalformedContainer(path, "the zip64 end record is missing")
        fields = ZIP64_END.unpack(record)
        entries, offset = fields[7], fields[9]
    if offset != start_dir:
        raise MalformedContainer(
            path,
            f"the zip's offsets are shifted by {start_dir - offset:,} bytes (bytes before the archive, or an end "
            "record pointing elsewhere): torch would read other records than Python's zipfile",
        )
    if entries != count:
        raise MalformedContainer(path, f"the zip end record counts {entries:,} entries, its directory holds {count:,}")


def _entry(stream: BinaryIO, file_size: int, path: str, info: zipfile.ZipInfo) -> ZipEntry:
    name = info.filename
    if info.flag_bits & 0x1:
        raise MalformedContainer(path, f"zip entry {name!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise MalformedContainer(path, f"zip entry {name!r} is compressed; torch.save stores entries uncompressed")
    if info.header_offset < 0:  # zipfile shifts offsets by what it takes for bytes before the archive
        raise MalformedContainer(path, f"zip entry {name!r} starts before the archive (offset {info.header_offset:,})")
    if info.header_offset + LOCAL_HEADER.size > file_size:
        raise TruncatedContainer(path, f"zip entry {name!r} starts past the end of the file")
    stream.seek(info.header_offset)
    fields = LOCAL_HEADER.unpack(stream.read(LOCAL_HEADER.size))
    signature, _, flags, method, _, _, _, size_c, size_u, name_len, extra_len = fields
    if signature != LOCAL_SIGNATURE:
        raise MalformedContainer(path, f"zip entry {name!r}: no local header where the directory says")
    local_name = stream.read(name_len)
    raw_name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
    if local_name != raw_name:
        raise MalformedContainer(path, f"zip entry {name!r}: its local header names {local_name[:60]!r}")
    if method != info.compress_type or (flags & 0x1):
        raise MalformedContainer(path, f"zip entry {name!r}: local header and directory disagree")
    if not flags & 0x8 and size_c != 0xFFFFFFFF and (size_c, size_u) != (info.compress_size, info.file_size):
        raise MalformedContainer(path, f"zip entry {name!r}: local header and directory disagree on its size")
    start = info.header_offset + LOCAL_HEADER.size + name_len + extra_len
    return ZipEntry(name, info.header_offset, start, start + info.file_size, fold(raw_name))


def _torch_layout(first: ZipEntry | None, entries: list[ZipEntry], stream: BinaryIO, path: str) -> TorchArchive:
    """Records as torch finds them: the folder of the first directory entry, then names matched ignoring case."""
    if first is None or "/" not in first.name:
        raise MalformedContainer(path, "not a torch checkpoint: its first zip entry is not in a folder")
    prefix = first.name.split("/", 1)[0]
    raw_prefix = first.folded.split(b"/", 1)[0] + b"/"
    outside = next((e for e in entries if not e.name.startswith(f"{prefix}/")), None)
    if outside is not None:
        raise MalformedContainer(
            path, f"zip entry {outside.name!r} is outside the archive's folder {prefix!r}/ (torch refuses the file)"
        )
    by_name = {e.folded: e for e in entries}
    pickle_entry = by_name.get(raw_prefix + b"data.pkl")
    if pickle_entry is None:
        raise MalformedContainer(path, f"not a torch checkpoint: no {prefix}/data.pkl entry")
    if by_name.get(raw_prefix + b".data/version") is None and by_name.get(raw_prefix + b"version") is None:
        raise MalformedContainer(path, "not a torch checkpoint: no version record (torch refuses the file)")
    data_dir = raw_prefix + b"data/"
    storages = {key[len(data_dir) :]: e for key, e in by_name.items() if key.startswith(data_dir)}
    byteorder = "little"
    order_entry = by_name.get(raw_prefix + b"byteorder")
    if order_entry is not None:
        stream.seek(order_entry.start)
        value = stream.read(min(16, order_entry.end - order_entry.start)).decode("ascii", "replace")
        if value not in ("little", "big"):
            raise MalformedContainer(path, f"byteorder is {value!r}, not little or big")
        byteorder = value
    return TorchArchive(prefix, pickle_entry, storages, tuple(entries), byteorder)
