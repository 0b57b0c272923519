"""Reading and writing documents: capped reads, atomic writes that never clobber without --force."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manifests.errors import ManifestError, OutputExists, UnreadableInput

DOCUMENT_CAP = 128 << 20  # a manifest of 100,000 tensors is ~21 MB; anything near this cap is hostile
# What parsing a document may cost in Python objects, estimated from above before parsing (parse_cost).
# Our own fingerprint writes ~210 bytes per tensor (~5 KB of estimated cost) without sketches and
# ~1.8 KB (~4.5 KB estimated cost) with them, so this admits ~90,000 sketched tensors or ~400,000 bare
# ones (a 405B Llama has ~9,000 in Meta's 8 shards): a 128 MB document of `[{}, {}, ...]` would take 4 GB.
PARSE_BUDGET = 384 << 20


def refuse_overwrite(path: Path, force: bool) -> None:
    """Fail before any work when an output already exists and --force was not given: OutputExists (exit 2),
    or UnreadableInput (exit 2) when `path` is a directory."""
    if path.is_dir():
        raise UnreadableInput(f"{path} is a directory; give a file name to write")
    if path.exists() and not force:
        raise OutputExists(f"{path} already exists; pass --force to overwrite it")


def write_atomic(path: Path, data: bytes, *, force: bool = False, mode: int = 0o644) -> None:
    """Write `data` to `path` in one step: readers see the old file or the new one, never a torn one.

    Without `force` an existing file is never replaced, even one created while we were writing: raises
    OutputExists (exit 2); UnreadableInput (exit 2) when the folder is missing or cannot be written.
    """
    refuse_overwrite(path, force)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UnreadableInput(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UnreadableInput(f"cannot write in {folder}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except FileExistsError:
        raise OutputExists(f"{path} already exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise UnreadableInput(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _link_new(tmp: str, path: Path) -> None:
    """Give the written file its name only if the name is free: a hard link fails if it appeared meanwhile."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system (some network and FUSE mounts)
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(tmp, path)


class NotASmallFile(Exception):
    """Why a path cannot be read as a small input file; `too_large` tells a size over the cap apart."""

    def __init__(self, reason: str, *, too_large: bool = False, failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large
        self.failed = failed  # the system refused to open or read it (the reason is its strerror)


def small_file_bytes(path: Path, cap: int) -> bytes:
    """The bytes of a small input file, never more than `cap` of them, whatever the path names.

    A size from stat() proves nothing for /dev/zero or a FIFO (0), and a FIFO blocks open() until a
    writer comes: the file is opened without blocking, must be a regular file by fstat() of that very
    descriptor, and is read to at most cap + 1 bytes (it may grow after the check).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NotASmallFile(exc.strerror or type(exc).__name__, failed=True) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotASmallFile("a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file")
        if info.st_size > cap:
            raise NotASmallFile(f"{info.st_size:,} bytes, over the {cap:,}-byte cap", too_large=True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            raw = stream.read(cap + 1)
    except OSError as exc:
        raise NotASmallFile(exc.strerror or type(exc).__name__, failed=True) from None
    finally:
        os.close(fd)
    if len(raw) > cap:
        raise NotASmallFile(f"over the {cap:,}-byte cap", too_large=True)
    return raw


def read_bounded(
    path: Path,
    cap: int,
    what: str,
    too_large: Callable[[str], Exception] = ManifestError,
) -> bytes:
    """small_file_bytes, failing with UnreadableInput or `too_large` in a line naming `what` and the path
    that says nothing of what to do: callers add that."""
    name = f"{what} {path}".lstrip()
    try:
        return small_file_bytes(path, cap)
    except NotASmallFile as exc:
        if exc.too_large:
            raise too_large(f"{name} is {exc.reason}") from None
        if exc.failed:
            raise UnreadableInput(f"cannot read {name}: {exc.reason}") from None
        raise UnreadableInput(f"{name} is {exc.reason}") from None


def read_json(path: Path, what: str = "manifest", cap: int = DOCUMENT_CAP) -> Any:
    """Parse a JSON document of bounded size, with one clear line for every way it can fail."""
    return read_json_digest(path, what, cap)[0]


def read_json_digest(path: Path, what: str = "manifest", cap: int = DOCUMENT_CAP) -> tuple[Any, str]:
    """A JSON document as `read_json` parses it, and the SHA-256 of the very bytes parsed (read once)."""
    try:
        raw = read_bounded(path, cap, what)
    except ManifestError as exc:
        raise ManifestError(f"{exc}; refusing it") from None
    check_parse_cost(raw, f"{what} {path}", ManifestError)
    try:
        return json.loads(raw), hashlib.sha256(raw).hexdigest()
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ManifestError(f"{what} {path} is not valid JSON; is it the right file?") from None


def parse_cost(raw: bytes) -> int:
    """An upper estimate of the bytes that parsing `raw` as JSON allocates, found without parsing it.

    Every value after the first opens a container or follows a comma (commas inside strings count too:
    the estimate errs high); measured with CPython, an object costs at most ~150 bytes with its first
    member (an empty one ~70), and every further member, list or scalar at most ~50.
    """
    return 150 * raw.count(b"{") - 80 * raw.count(b"{}") + 50 * (raw.count(b"[") + raw.count(b","))


def check_parse_cost(raw: bytes, what: str, error: type[Exception], budget: int = PARSE_BUDGET) -> None:
    """Refuse, before parsing, a JSON document whose parse would cost more than `budget` bytes."""
    cost = parse_cost(raw)
    if cost > budget:
        raise error(
            f"{what} holds too many JSON values (parsing would take ~{cost >> 20:,} MiB, over "
            f"{budget >> 20:,} MiB); refusing it"
        )


def dump_json(document: Any) -> bytes:
    """Indented JSON for people, with each flat object (a tensor entry) on one line.

    json.dumps(indent=...) falls back to the pure-Python encoder, which takes seconds on a manifest of
    100,000 tensors; flat objects are encoded here by the C encoder, one call each.
    """
    out: list[str] = []
    chunks: list[bytes] = []
    _emit(document, 0, out, chunks)
    out.append("\n")
    chunks.append("".join(out).encode("utf-8"))
    return b"".join(chunks)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def _is_flat(value: Any) -> bool:
    """Scalars, or lists of scalars, all the way down one level: such a value fits on one line."""
    items = value.values() if type(value) is dict else value
    for item in items:
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is not list:
            return False
        for element in item:
            if type(element) not in _SCALARS:
                return False
    return True


_CHUNK = 1 << 14  # pieces joined into bytes at a time: millions of small strings at once would take a gigabyte


def _emit(value: Any, depth: int, out: list[str], chunks: list[bytes]) -> None:
    if not isinstance(value, (dict, list)) or not value or (_is_flat(value) and (isinstance(value, list) or depth > 1)):
        out.append(_encode(value))
        return
    pad = "  " * (depth + 1)
    if isinstance(value, dict):
        out.append("{\n")
        for k, (key, item) in enumerate(value.items()):
            out.append(f"{pad}{_encode(key)}: ")  # the shared encoder: json.dumps makes one per call
            _emit(item, depth + 1, out, chunks)
            out.append(",\n" if k < len(value) - 1 else "\n")
        out.append("  " * depth + "}")
    else:
        out.append("[\n")
        for k, item in enumerate(value):
            out.append(pad)
            _emit(item, depth + 1, out, chunks)
            out.append(",\n" if k < len(value) - 1 else "\n")
            if len(out) > _CHUNK:
                chunks.append("".join(out).encode("utf-8"))
                out.clear()
        out.append("  " * depth + "]")
