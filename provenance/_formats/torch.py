"""PyTorch checkpoints as tensor layouts: the object tree from the restricted unpickler, placed on storages.

Plain contiguous little-endian tensors are byte ranges the engine streams; strided views, tensors over
bytes another tensor covers (shared storage, tied weights) and big-endian data become views that the
engine gathers from the storage. The container (zip or legacy) only says where each storage's bytes are.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol

from manifests.dtypes import DTYPE_BITS
from manifests.records import WEIGHTS_SUFFIXES, TreePath
from provenance._formats.interface import Layout, TensorRecord, ViewRecord
from provenance._formats.torch_legacy import is_legacy, read_legacy
from provenance._formats.torch_zip import is_zip, read_archive
from provenance._formats.unpickler import (
    ALLOWED,
    PICKLE_CAP,
    DisallowedGlobal,
    RefusedPickle,
    TensorRef,
    UnreadablePickle,
    checked_tensor,
    describe,
    list_globals,
    load_restricted,
    walk_paths,
)
from provenance.errors import MalformedContainer, RefusedContainer


class Span(Protocol):
    """Where a storage's bytes are: file[start:end]."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides: list[int] = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    return all(d == 1 or s == r for d, s, r in zip(shape, stride, _row_major(shape), strict=True))


def _refuse_other(stream: BinaryIO, file_size: int, path: str) -> None:
    """Neither format: if it is a bare pickle (which torch.load would run), name what it would import."""
    stream.seek(0)
    data = stream.read(min(file_size, PICKLE_CAP))
    for name in list_globals(data):
        module, _, attr = name.rpartition(".")
        if (module, attr) not in ALLOWED and not name.startswith("("):
            raise DisallowedGlobal(path, module, attr)
    raise MalformedContainer(path, "not a PyTorch checkpoint (neither the zip nor the legacy format)")


def _summary(leaf: Any) -> str:
    """What a non-tensor leaf of the tree is, in a bounded line (a string's own text, else a short repr)."""
    text = leaf[:80] if type(leaf) is str else describe(leaf)
    return f"{type(leaf).__name__} {text}"


Leaf = tuple[str, TreePath | None, Any]  # dotted name, keys when nested, the tensor (checked) or other value


class _Tree(NamedTuple):
    """The object tree's leaves, and where the container keeps each storage's bytes."""

    leaves: list[Leaf]
    lookup: Callable[[str], Span | None]
    spans: list[Span]
    big_endian: bool


def _read_tree(stream: BinaryIO, file_size: int, path: str) -> _Tree:
    """The container read (zip or legacy, else refused) and its pickle run through the restricted unpickler."""
    stream.seek(0)
    head = stream.read(16)
    try:
        if is_zip(head):
            archive = read_archive(stream, file_size, path)
            stream.seek(archive.pickle.start)
            tree = load_restricted(stream.read(archive.pickle.end - archive.pickle.start), path)
            lookup: Callable[[str], Span | None] = archive.storage
            spans: list[Span] = list(archive.storages.values())
            big_endian = archive.byteorder == "big"
        elif is_legacy(head):
            tree, legacy, big_endian = read_legacy(stream, file_size, path)
            lookup, spans = legacy.get, list(legacy.values())
        else:
            _refuse_other(stream, file_size, path)
        leaves = [
            (name, parts if len(parts) > 1 else None, checked_tensor(leaf) if type(leaf) is TensorRef else leaf)
            for name, parts, leaf in walk_paths(tree)
        ]
    except UnreadablePickle as exc:  # damaged bytes (a preallocated download): the file is corrupt
        refused = RefusedContainer if isinstance(exc, RefusedPickle) else MalformedContainer
        raise refused(path, str(exc).removeprefix(f"{path}: ")) from None
    return _Tree(leaves, lookup, spans, big_endian)


def _shared_view(record: TensorRecord, spans: list[Span]) -> ViewRecord:
    """A contiguous tensor over bytes another tensor already covers (shared storage), as a view of its storage."""
    entry = next(e for e in spans if e.start <= record.start <= e.end)
    offset = (record.start - entry.start) // (DTYPE_BITS[record.dtype] // 8)
    return ViewRecord(
        record.name,
        record.dtype,
        record.shape,
        entry.start,
        entry.end,
        offset,
        _row_major(record.shape),
        False,
        record.path,
    )


class TorchReader:
    """Reader for PyTorch checkpoints, zip (torch.save since 1.6) and legacy, without torch or executing them."""

    name = "torch"
    header_holds_container = False

    def claims(self, path: str) -> bool:
        return path.endswith(WEIGHTS_SUFFIXES["torch"])

    def header_extent(self, head: bytes, file_size: int, path: str) -> int | None:
        """None: a zip's directory is at its end, and a legacy file's storage records run through it."""
        return None

    def read_layout(self, stream: BinaryIO, file_size: int, path: str) -> Layout:
        tree = _read_tree(stream, file_size, path)
        candidates: list[TensorRecord] = []
        views: list[ViewRecord] = []
        metadata: dict[str, str] = {}
        expanded = 0
        for name, nesting, leaf in tree.leaves:
            if type(leaf) is not TensorRef:
                metadata[name] = _summary(leaf)
                continue
            entry = self._storage(tree.lookup, leaf, path, name)
            expanded += self._expansion(leaf, entry, file_size, expanded, path, name)
            if not tree.big_endian and _contiguous(leaf.shape, leaf.stride):
                start = entry.start + leaf.offset * (DTYPE_BITS[leaf.dtype] // 8)
                end = start + _count(leaf.shape) * (DTYPE_BITS[leaf.dtype] // 8)
                candidates.append(TensorRecord(name, leaf.dtype, leaf.shape, start, end, nesting))
            else:
                views.append(self._view(name, leaf, entry, tree.big_endian, nesting))
        plain: list[TensorRecord] = []
        cursor = 0
        for record in sorted(candidates, key=lambda r: (r.start, r.end)):
            if record.start >= cursor or record.start == record.end == cursor:
                plain.append(record)
                cursor = max(cursor, record.end)
            else:  # bytes another tensor already covers (shared storage): digested as a view
                views.append(_shared_view(record, tree.spans))
        return Layout(
            format=self.name, expected_size=file_size, tensors=tuple(plain), metadata=metadata, views=tuple(views)
        )

    @staticmethod
    def _expansion(leaf: TensorRef, entry: Span, file_size: int, expanded: int, path: str, name: str) -> int:
        """The bytes the tensor's elements take, refused when it reaches past its storage or when it (or all
        the tensors so far with it) expands far beyond the file: stride 0 repeats elements without storing them."""
        itemsize = DTYPE_BITS[leaf.dtype] // 8
        count = _count(leaf.shape)
        last = leaf.offset + sum((d - 1) * s for d, s in zip(leaf.shape, leaf.stride, strict=True))
        if count and (last + 1) * itemsize > entry.end - entry.start:
            raise MalformedContainer(path, f"tensor {name!r} reaches past the end of its storage")
        if count * itemsize > max(file_size, 1) * 4:
            raise MalformedContainer(
                path, f"tensor {name!r} expands to {count * itemsize:,} bytes from a {file_size:,}-byte file"
            )
        if expanded + count * itemsize > max(file_size, 1) * 4:  # many views of one storage: bounded together too
            raise MalformedContainer(
                path,
                f"the tensors expand to over {expanded + count * itemsize:,} bytes together from a "
                f"{file_size:,}-byte file",
            )
        return count * itemsize

    @staticmethod
    def _storage(lookup: Callable[[str], Span | None], leaf: TensorRef, path: str, name: str) -> Span:
        entry = lookup(leaf.storage.key)
        if entry is None:
            raise MalformedContainer(
                path, f"tensor {name!r} uses storage {describe(leaf.storage.key)}, which is not in the file"
            )
        itemsize = DTYPE_BITS[leaf.storage.dtype] // 8
        if entry.end - entry.start != leaf.storage.numel * itemsize:
            raise MalformedContainer(
                path,
                f"storage {leaf.storage.key!r} declares {leaf.storage.numel:,} {leaf.storage.dtype} elements but holds "
                f"{entry.end - entry.start:,} bytes",
            )
        return entry

    @staticmethod
    def _view(name: str, leaf: TensorRef, entry: Span, big_endian: bool, nesting: TreePath | None) -> ViewRecord:
        return ViewRecord(
            name, leaf.dtype, leaf.shape, entry.start, entry.end, leaf.offset, leaf.stride, big_endian, nesting
        )


def pickle_globals(stream: BinaryIO, file_size: int, path: str) -> list[tuple[str, bool]]:
    """Every global a PyTorch file's pickles name, and whether the allow-list admits it.

    Read from the opcodes without executing anything: what auditors want to see before trusting a file.
    Zip checkpoints have one pickle; legacy files a run of them; a bare pickle is listed as it is.
    """
    import io

    stream.seek(0)
    head = stream.read(16)
    if is_zip(head):
        archive = read_archive(stream, file_size, path)
        stream.seek(archive.pickle.start)
        names = list_globals(stream.read(archive.pickle.end - archive.pickle.start))
    else:
        stream.seek(0)
        data = io.BytesIO(stream.read(min(file_size, PICKLE_CAP)))
        names = []
        for _ in range(5 if is_legacy(head) else 1):  # magic, protocol, system info, object tree, keys
            start = data.tell()
            found = list_globals(data.getvalue()[start:])
            names.extend(found)
            try:
                for _op in pickletools.genops(data):
                    pass
            except (ValueError, EOFError):
                break
            if data.tell() == start:
                break
    return [(name, tuple(name.rsplit(".", 1)) in ALLOWED) for name in dict.fromkeys(names)]


def checkpoint_globals(target: Path, *, allow_symlinks: bool = False) -> list[tuple[str, str, bool | None]]:
    """(file, global, allowed) for every PyTorch file of a checkpoint, read without executing anything.

    A file whose container cannot be read gives one row with the reason in place of a global and None.
    What `provenance fingerprint --list-globals` prints; raises UnreadableInput or UnsafePath (exit 2) for a
    path that cannot be read or leaves the checkpoint.
    """
    from provenance._hashing.paths import list_files

    root, files = list_files(target, allow_symlinks=allow_symlinks)
    rows: list[tuple[str, str, bool | None]] = []
    for name in files:
        if not TorchReader().claims(name):
            continue
        full = root / name
        try:
            with open(full, "rb") as stream:
                found = pickle_globals(stream, full.stat().st_size, name)
        except MalformedContainer as exc:
            rows.append((name, exc.reason, None))
            continue
        rows.extend((name, global_name, allowed) for global_name, allowed in found)
    return rows
