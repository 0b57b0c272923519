"""Read a .torrent (BEP 3 v1, BEP 52 v2, or hybrid) into the files it would download and their hashes.

Nothing in a torrent is trusted: bencode is decoded by bencode2, which accepts only canonical bencode
(sorted, unique keys; no leading zeros) and caps nesting, so the info dictionary re-encodes to the exact
bytes its infohash is taken over. Every name, length and hash is then checked before use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manifests.names import check_relative
from manifests.pieces import check_piece_length, layer_root
from provenance.errors import TorrentError, UnreadableInput, UnsafePath

MAX_TORRENT = 64 << 20  # bytes; a torrent's metadata for a multi-terabyte release is a few MiB
MAX_LENGTH = 1 << 62
MAX_DEPTH = 64  # folders a path may nest (a v2 file tree, a v1 path list)
MAX_VALUES = 2_000_000  # bencode values decoded at most (~200 MiB of Python objects); a release needs far fewer
MAX_FILES = 50_000  # files a torrent may list; model releases have tens to thousands
MAX_NAME = 255  # bytes in one file or folder name (NAME_MAX of Linux, macOS and Windows file systems)
MAX_PATH = 4096  # bytes in a whole path inside the torrent (PATH_MAX of Linux)


@dataclass(frozen=True, slots=True)
class TorrentFile:
    """One file a torrent downloads, by its path inside the torrent's folder."""

    path: str
    length: int
    pieces_root: str | None = None  # v2 only; None for an empty file
    piece_layer: tuple[str, ...] = ()  # v2 only, for files longer than one piece


@dataclass(frozen=True, slots=True)
class Torrent:
    name: str
    piece_length: int
    files: tuple[TorrentFile, ...]
    infohash_v1: str | None  # SHA-1 of the info dictionary, when the torrent has a v1 part
    infohash_v2: str | None  # SHA-256 of the info dictionary, when it has a v2 part
    single_file: bool

    @property
    def kind(self) -> str:
        if self.infohash_v1 and self.infohash_v2:
            return "hybrid"
        return "v2" if self.infohash_v2 else "v1"

    @property
    def total_size(self) -> int:
        return sum(f.length for f in self.files)


def _bad(source: str, why: str) -> TorrentError:
    return TorrentError(f"{source} is not a valid torrent: {why}; get the .torrent again from its publisher")


def read_torrent(path: Path) -> Torrent:
    """Parse and validate a .torrent file; any damage or hostile content raises TorrentError (exit 2)."""
    from manifests.io import read_bounded

    too_large = f"it is larger than the {MAX_TORRENT >> 20} MiB a torrent may take"
    try:
        raw = read_bounded(path, MAX_TORRENT, "", lambda _: _bad(str(path), too_large))
    except UnreadableInput as exc:
        raise UnreadableInput(f"{exc}; give the .torrent file") from None
    return parse_torrent(raw, str(path))


def parse_torrent(raw: bytes, source: str = "the torrent") -> Torrent:
    import bencode2

    # Every value but a string ends in "e", every string holds ":": an upper bound on what decoding would
    # allocate, counted at memory speed before a single object is made.
    if raw.count(b"e") + raw.count(b":") > MAX_VALUES:
        raise _bad(source, f"it holds more than {MAX_VALUES:,} bencode values, more than any release needs")
    try:
        document = bencode2.bdecode(raw)
    except (bencode2.BencodeDecodeError, ValueError, OverflowError, RecursionError, TypeError) as exc:
        raise _bad(source, f"bencode: {str(exc).splitlines()[0][:120]}") from None
    top = _dict(document, "the document", source)
    info = _dict(top.get(b"info"), "info", source)
    encoded = bencode2.bencode(info)
    if b"4:info" + encoded not in raw:  # cannot happen with canonical input; the infohash depends on it
        raise _bad(source, "the info dictionary is not in canonical form, so its infohash is ambiguous")
    name = _component(_utf8(info.get(b"name.utf-8", info.get(b"name")), "name", source), source)
    piece_length = _int(info.get(b"piece length"), "piece length", source)
    if piece_length <= 0:
        raise _bad(source, "piece length must be positive")
    has_v1 = b"pieces" in info
    has_v2 = info.get(b"meta version") == 2 and b"file tree" in info
    if b"meta version" in info and info.get(b"meta version") != 2:
        raise _bad(source, f"meta version {info.get(b'meta version')!r} is not supported (only 2, BEP 52)")
    if not has_v1 and not has_v2:
        raise _bad(source, "it has neither v1 pieces nor a v2 file tree")
    v1_files = _v1_files(info, name, piece_length, source) if has_v1 else None
    v2_files: list[TorrentFile] | None = None
    single = False
    if has_v2:
        try:
            check_piece_length(piece_length)
        except ValueError as exc:
            raise _bad(source, str(exc)) from None
        layers = _dict(top.get(b"piece layers", {}), "piece layers", source)
        v2_files, single = _v2_files(_dict(info[b"file tree"], "file tree", source), name, piece_length, layers, source)
    if (
        v1_files is not None
        and v2_files is not None
        and sorted((f.path, f.length) for f in v1_files) != sorted((f.path, f.length) for f in v2_files)
    ):
        raise _bad(source, "its v1 and v2 parts describe different files (a hybrid torrent must not)")
    if v1_files is not None and v2_files is None:
        single = b"files" not in info
    files = v2_files if v2_files is not None else v1_files
    assert files is not None
    _check_unique(files, source)
    return Torrent(
        name=name,
        piece_length=piece_length,
        files=tuple(sorted(files, key=lambda f: f.path)),
        infohash_v1=hashlib.sha1(encoded, usedforsecurity=False).hexdigest() if has_v1 else None,
        infohash_v2=hashlib.sha256(encoded).hexdigest() if has_v2 else None,
        single_file=single,
    )


def _too_many(source: str) -> TorrentError:
    return _bad(source, f"it lists more than {MAX_FILES:,} files, more than any release holds")


def _dict(value: Any, where: str, source: str) -> dict[bytes, Any]:
    if not isinstance(value, dict):
        raise _bad(source, f"{where} is not a dictionary")
    return value


def _int(value: Any, where: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(source, f"{where} is not an integer")
    if not -MAX_LENGTH <= value <= MAX_LENGTH:
        raise _bad(source, f"{where} is out of range")
    return value


def _length(value: Any, where: str, source: str) -> int:
    length = _int(value, where, source)
    if length < 0:
        raise _bad(source, f"{where} is negative")
    return length


def _utf8(value: Any, where: str, source: str) -> str:
    if not isinstance(value, bytes):
        raise _bad(source, f"{where} is not a string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(source, f"{where} is not UTF-8 ({value[:40]!r})") from None


def _component(text: str, source: str) -> str:
    if len(text) > MAX_NAME or len(text.encode("utf-8")) > MAX_NAME:  # printed whole, it would flood the terminal
        raise _bad(source, f"a file or folder name is longer than {MAX_NAME} bytes ({text[:40]!r}...)")
    if text in ("", ".", "..") or "/" in text or "\\" in text or "\x00" in text:
        raise _bad(source, f"file or folder name {text!r} is empty, '.', '..' or holds a separator")
    return text


def _join(parts: list[str], source: str) -> str:
    path = "/".join(parts)
    if len(path.encode("utf-8")) > MAX_PATH:
        raise _bad(source, f"a path is longer than {MAX_PATH} bytes ({path[:40]!r}...)")
    try:
        return check_relative(path)
    except UnsafePath as exc:
        raise _bad(source, str(exc)) from None


def _attr(entry: dict[bytes, Any], where: str, source: str) -> bytes:
    attr = entry.get(b"attr", b"")
    if not isinstance(attr, bytes):
        raise _bad(source, f"{where}: attr is not a string")
    if b"l" in attr:
        raise _bad(source, f"{where} is a symlink (BEP 47); a release does not download links")
    return attr


def _v1_files(info: dict[bytes, Any], name: str, piece_length: int, source: str) -> list[TorrentFile]:
    pieces = info.get(b"pieces")
    if not isinstance(pieces, bytes) or len(pieces) % 20:
        raise _bad(source, "pieces is not a string of 20-byte SHA-1 hashes")
    files: list[TorrentFile] = []
    total = 0
    if b"files" in info:
        if b"length" in info:
            raise _bad(source, "it has both length and files")
        entries = info[b"files"]
        if not isinstance(entries, list) or not entries:
            raise _bad(source, "files is not a non-empty list")
        if len(entries) > MAX_FILES:
            raise _too_many(source)
        for i, raw_entry in enumerate(entries):
            entry = _dict(raw_entry, f"files[{i}]", source)
            length = _length(entry.get(b"length"), f"files[{i}].length", source)
            total += length
            raw_path = entry.get(b"path.utf-8", entry.get(b"path"))
            if not isinstance(raw_path, list) or not raw_path:
                raise _bad(source, f"files[{i}].path is not a non-empty list")
            if len(raw_path) > MAX_DEPTH:
                raise _bad(source, f"files[{i}].path is nested more than {MAX_DEPTH} deep")
            parts = [_component(_utf8(p, f"files[{i}].path", source), source) for p in raw_path]
            path = _join(parts, source)
            if b"p" in _attr(entry, path, source):  # BEP 47 padding: piece alignment, not content
                continue
            files.append(TorrentFile(path, length))
    else:
        length = _length(info.get(b"length"), "length", source)
        total = length
        files.append(TorrentFile(_join([name], source), length))
    if total > MAX_LENGTH:
        raise _bad(source, "its files add up to an impossible size")
    if len(pieces) // 20 != -(-total // piece_length):
        raise _bad(source, f"{len(pieces) // 20} piece hashes for {total:,} bytes in pieces of {piece_length:,}")
    return files


def _v2_files(
    tree: dict[bytes, Any], name: str, piece_length: int, layers: dict[bytes, Any], source: str
) -> tuple[list[TorrentFile], bool]:
    files: list[TorrentFile] = []
    checked: dict[tuple[bytes, int], tuple[str, ...]] = {}  # a layer many files name is hashed once, kept once
    stack: list[tuple[list[str], dict[bytes, Any]]] = [([], tree)]
    while stack:
        parts, node = stack.pop()
        if len(parts) > MAX_DEPTH:
            raise _bad(source, f"its file tree is nested more than {MAX_DEPTH} deep")
        for key, child in node.items():
            child = _dict(child, "a file tree node", source)
            part = _component(_utf8(key, "a file tree name", source), source)
            if b"" in child:
                if len(child) != 1:
                    raise _bad(source, f"{part!r} is both a file and a folder")
                if len(files) == MAX_FILES:
                    raise _too_many(source)
                path = _join([*parts, part], source)
                files.append(_v2_file(path, child[b""], piece_length, layers, checked, source))
            elif not child:
                raise _bad(source, f"folder {part!r} is empty")
            else:
                stack.append(([*parts, part], child))
    if not files:
        raise _bad(source, "its file tree holds no files")
    single = len(files) == 1 and files[0].path == name
    return files, single


def _v2_file(
    path: str,
    raw: Any,
    piece_length: int,
    layers: dict[bytes, Any],
    checked: dict[tuple[bytes, int], tuple[str, ...]],
    source: str,
) -> TorrentFile:
    entry = _dict(raw, path, source)
    length = _length(entry.get(b"length"), f"{path}: length", source)
    if b"p" in _attr(entry, path, source):
        raise _bad(source, f"{path} is a padding file inside a v2 file tree")
    if length == 0:
        return TorrentFile(path, 0)
    root = entry.get(b"pieces root")
    if not isinstance(root, bytes) or len(root) != 32:
        raise _bad(source, f"{path}: pieces root is not a 32-byte SHA-256")
    layer: tuple[str, ...] = ()
    if length > piece_length:
        count = -(-length // piece_length)
        known = checked.get((root, count))
        if known is None:
            known = checked[(root, count)] = _piece_layer(path, root, count, piece_length, layers, source)
        layer = known
    return TorrentFile(path, length, root.hex(), layer)


def _piece_layer(
    path: str, root: bytes, count: int, piece_length: int, layers: dict[bytes, Any], source: str
) -> tuple[str, ...]:
    hashes = layers.get(root)
    if not isinstance(hashes, bytes) or len(hashes) != 32 * count:
        raise _bad(source, f"{path}: its piece layer is missing or does not hold {count} hashes")
    nodes = [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
    if layer_root(nodes, piece_length) != root:
        raise _bad(source, f"{path}: its piece layer does not hash to its pieces root")
    return tuple(h.hex() for h in nodes)


def _check_unique(files: list[TorrentFile], source: str) -> None:
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise _bad(source, f"it lists {f.path!r} twice")
        seen.add(f.path)
    for f in files:  # paths are at most MAX_DEPTH parts deep: this walk is linear in the torrent's size
        folder = f.path
        while "/" in folder:
            folder = folder.rsplit("/", 1)[0]
            if folder in seen:
                raise _bad(source, f"{folder!r} is both a file and a folder")


__all__ = ["Torrent", "TorrentFile", "parse_torrent", "read_torrent"]
