"""The single streaming pass: one sequential read per file feeds every digest that file needs.

Files are read through bounded, read-only mmap windows (no copy into Python buffers, memory flat
whatever the checkpoint's size), each byte handed once to each algorithm: SHA-256 over the whole file
when asked, BLAKE3 over each tensor, and one BLAKE3 over the bytes between tensors. Several files are
hashed at once: hashlib and blake3 release the GIL, so threads use every core.

A mapped page past the end of a file that shrank raises SIGBUS, which no Python code can catch. So a
file is mapped only while this process holds a read lease on it (Linux F_SETLEASE): another process
that opens it for writing or truncates it then waits until the lease is given up, which happens before
the next window, with the file reported as changed. Where no lease can be had (a file of another user,
a file system without leases, a file open for writing right now), windows are read with readinto
instead: slower by a copy, but a file cut short only ends a read early.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import mmap
import os
import signal
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blake3 import blake3

from manifests.dtypes import DTYPE_BITS
from manifests.records import FileFingerprint, TensorFingerprint, role_of
from provenance._formats.detect import reader_for
from provenance._formats.interface import Layout, ViewRecord
from provenance._formats.unpickler import DisallowedGlobal
from provenance._hashing.merkle import PiecesHasher
from provenance._hashing.sketch import FLOAT_DTYPES, SketchBuilder
from provenance.errors import (
    FileChanged,
    MalformedContainer,
    RefusedContainer,
    TruncatedContainer,
    UnreadableInput,
    UnsafePath,
)

WINDOW = 64 << 20  # bytes mapped at a time per file: bounds memory, large enough to amortise syscalls
COPY_WINDOW = 8 << 20  # bytes read at a time where a file cannot be leased: a buffer that stays in cache
PARALLEL_TENSOR = 16 << 20  # tensors at least this large use BLAKE3's own threads, when a file has cores to spare
ALGORITHMS = ("sha256", "blake3", "md5")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class HashPlan:
    """What to compute for one file: whole-file digests, and per-tensor parts for weights files."""

    digests: frozenset[str] = frozenset()
    parts: bool = False
    pieces: int = 0  # BEP 52 piece length for a pieces root and piece layer; 0 for none
    sketches: bool = False  # a sketch of every float tensor (casts, moments, sample), in the same read
    only_if_size: int | None = None  # hash only a file of this size: any other size already decides its status


def _new_hasher(algorithm: str, threads: int) -> Any:
    if algorithm == "blake3":
        return blake3(max_threads=threads)
    return hashlib.new(algorithm)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class _PartHashers:
    """BLAKE3 per tensor plus one BLAKE3 of every byte outside the tensors, fed window by window."""

    def __init__(self, layout: Layout, threads: int = 1, sketches: bool = False, size: int | None = None) -> None:
        self.layout = layout
        # A sketch only for a tensor the file holds in full: a tensor past the end gets no digest either,
        # and its claimed element count (2**62 x 32 in a hostile header) is not one a sampler can take.
        self.builders: list[SketchBuilder | None] = [
            SketchBuilder(t.name, t.dtype, t.shape)
            if sketches and t.dtype in FLOAT_DTYPES and (size is None or t.end <= size)
            else None
            for t in layout.tensors
        ]
        self.threads = threads  # BLAKE3 threads for one large tensor: 1 when other files keep the cores busy
        segments: list[tuple[int, int, int]] = []  # (start, end, tensor index or -1 for container bytes)
        cursor = 0
        for index, tensor in enumerate(layout.tensors):
            if tensor.start > cursor:
                segments.append((cursor, tensor.start, -1))
            segments.append((tensor.start, tensor.end, index))
            cursor = max(cursor, tensor.end)
        if layout.expected_size > cursor:
            segments.append((cursor, layout.expected_size, -1))
        self.segments = segments
        self.next = 0
        self.container = blake3()
        self.open: Any = None  # hasher of a tensor that continues into the next window
        self.digests: list[str | None] = [None] * len(layout.tensors)

    def feed(self, view: memoryview, base: int) -> None:
        limit = base + len(view)
        segments, digests, container = self.segments, self.digests, self.container
        i, count = self.next, len(segments)
        while i < count:
            start, end, index = segments[i]
            if start >= base and end <= limit:  # the common case: the whole segment is in this window
                piece = view[start - base : end - base]
                if index < 0:
                    container.update(piece)
                    i += 1
                    continue
                if self.threads > 1 and end - start >= PARALLEL_TENSOR:
                    digests[index] = blake3(piece, max_threads=self.threads).hexdigest()
                else:
                    digests[index] = blake3(piece).hexdigest()
                builder = self.builders[index]
                if builder is not None:
                    builder.update(piece)
                i += 1
                continue
            if start >= limit:
                break
            piece = view[max(start, base) - base : min(end, limit) - base]
            if index < 0:
                container.update(piece)
            else:
                if self.open is None:
                    self.open = blake3(max_threads=self.threads)
                self.open.update(piece)
                builder = self.builders[index]
                if builder is not None:
                    builder.update(piece)
                if end <= limit:
                    digests[index] = self.open.hexdigest()
                    self.open = None
            if end > limit:
                break
            i += 1
        self.next = i

    def finish(self, size: int) -> tuple[tuple[TensorFingerprint, ...], str | None]:
        empty = memoryview(b"")
        self.feed(empty, size)  # empty tensors that sit at the very end of the file
        digests = self.digests
        builders = self.builders
        tensors = tuple(
            [
                TensorFingerprint(
                    t.name,
                    t.dtype,
                    t.shape,
                    t.start,
                    t.end,
                    digests[i] if t.end <= size else None,
                    sketch=b.finish() if (b := builders[i]) is not None and t.end <= size else None,
                    path=t.path,
                )
                for i, t in enumerate(self.layout.tensors)
            ]
        )
        whole = size >= self.layout.expected_size
        return tensors, self.container.hexdigest() if whole else None


def hash_file(
    root: Path,
    path: str,
    plan: HashPlan,
    *,
    strict: bool = True,
    progress: Progress | None = None,
    window: int = WINDOW,
    threads: int = 1,
    allow_symlinks: bool = True,
) -> FileFingerprint:
    """Hash one file of a checkpoint in one sequential pass.

    With `strict`, a malformed weights file raises MalformedContainer; without it (verifying a download),
    the fingerprint records the error and the comparison reports the file as corrupt. `threads` is how
    many cores this file may use: more than one only when fewer files than cores are being read. Without
    `allow_symlinks`, a path that resolves outside `root` when opened (repointed since it was listed) is refused.
    """
    full = root / path
    reader = reader_for(path)
    role = role_of(path, reader is not None)
    stream = _open_listed(root, full, allow_symlinks)
    with stream:
        leased = _take_lease(stream.fileno())
        before = os.fstat(stream.fileno())
        size = before.st_size
        parts: _PartHashers | None = None
        expected: int | None = None
        if plan.only_if_size is not None and size != plan.only_if_size:
            if progress:
                progress(size)
            return FileFingerprint(path, size, role)  # its size alone differs from the reference's
        if plan.parts and reader is not None:
            try:
                layout = reader.read_layout(stream, size, path)
                _check_views(layout, size, path)
            except (MalformedContainer, DisallowedGlobal) as exc:
                if strict:
                    raise
                if progress:
                    progress(size)
                if isinstance(exc, DisallowedGlobal):  # a pickle that would run code: named, and a change
                    return FileFingerprint(path, size, role, format=reader.name, error="refused", hazard=str(exc))
                hazard = exc.reason if isinstance(exc, RefusedContainer) else None  # deliberate, not damage
                return FileFingerprint(path, size, role, format=reader.name, error=exc.reason, hazard=hazard)
            parts = _PartHashers(layout, 1 if plan.pieces else threads, plan.sketches, size)
            if layout.expected_size != size:
                expected = layout.expected_size
                if strict:
                    raise TruncatedContainer(path, f"cut short: {size:,} of {expected:,} bytes")
        hashers = {name: _new_hasher(name, threads) for name in ALGORITHMS if name in plan.digests}
        pieces = PiecesHasher(plan.pieces) if plan.pieces else None
        if hashers or parts or pieces:
            companion = ThreadPoolExecutor(1, "hash-whole") if threads > 1 and hashers and parts else None
            try:
                _stream_windows(
                    stream.fileno(),
                    size,
                    before,
                    full,
                    list(hashers.values()),
                    parts,
                    pieces,
                    progress,
                    window,
                    companion,
                    leased,
                )
            finally:
                if companion is not None:
                    companion.shutdown()
        elif progress:
            progress(size)
        views = _digest_views(stream.fileno(), size, parts.layout.views, full) if parts and parts.layout.views else ()
        if _stat_key(os.fstat(stream.fileno())) != _stat_key(before) or (leased and not _lease_held(stream.fileno())):
            raise FileChanged(f"{full} changed while it was being read; wait until nothing writes it, then retry")
    tensors: tuple[TensorFingerprint, ...] = ()
    container = None
    error = None
    if parts is not None:
        tensors, container = parts.finish(size)
        tensors += views
        if expected is not None and size < expected:
            error = f"cut short: {size:,} of {expected:,} bytes"
    return FileFingerprint(
        path=path,
        size=size,
        role=role,
        format=reader.name if reader and plan.parts else None,
        digests={name: h.hexdigest() for name, h in hashers.items()},
        tensors=tensors,
        container_blake3=container,
        expected_size=expected,
        error=error,
        pieces=pieces.finish() if pieces else None,
    )


def _open_listed(root: Path, full: Path, allow_symlinks: bool) -> io.FileIO:
    """Open a listed file without blocking or following a swap: a FIFO, device or folder put in its place
    since the listing, or a symlink repointed outside the checkpoint, is reported as a changed file.

    O_NONBLOCK keeps a FIFO's open from waiting for a writer; O_NOFOLLOW refuses a symlink as the last
    component, and only a path that is a symlink is opened again following it, then resolved once more:
    the resolved file must be the one opened (same device and inode) and, unless symlinks may leave the
    checkpoint, inside it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(full, flags | os.O_NOFOLLOW)
            linked = False
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = os.open(full, flags)
            linked = True
    except OSError as exc:
        raise UnreadableInput(f"cannot open {full}: {exc.strerror}; check the path and its permissions") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise FileChanged(f"{full} is no longer a regular file (replaced since it was listed); check who writes it")
        if linked:
            target = Path(os.path.realpath(full))
            try:
                resolved = target.stat()
            except OSError:
                resolved = None
            if resolved is None or (resolved.st_dev, resolved.st_ino) != (opened.st_dev, opened.st_ino):
                raise FileChanged(f"{full} was repointed while it was being opened; check who changes it, then retry")
            if not allow_symlinks and not target.is_relative_to(root.resolve()):
                raise UnsafePath(
                    f"{full} is a symlink that now leaves the checkpoint (to {target}), changed since it was "
                    "listed; check who changes it"
                )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb", closefd=True)


def _take_lease(fd: int) -> bool:
    """A read lease on the file, so that nobody can truncate it under a mapped window; False if refused.

    The lease-break signal is set to SIGURG, ignored unless handled: the default SIGIO would kill us.
    """
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return False
    return True


def _lease_held(fd: int) -> bool:
    """False once another process asked to write or truncate the file (the lease is being broken)."""
    return bool(fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK)


@contextlib.contextmanager
def _window(fd: int, offset: int, length: int, leased: bool, full: Path) -> Any:
    """The bytes [offset, offset + length) of the file: mapped under a lease, else copied by readinto."""
    if leased:
        if not _lease_held(fd):
            raise FileChanged(f"{full} is being written or truncated by another process; wait until it is done")
        with mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=offset) as window:
            window.madvise(mmap.MADV_SEQUENTIAL)
            view = memoryview(window)
            try:
                yield view
            finally:
                view.release()
        return
    buffer = bytearray(length)
    view = memoryview(buffer)
    try:
        got = os.preadv(fd, [view], offset)
        while 0 < got < length:
            more = os.preadv(fd, [view[got:]], offset + got)
            if more == 0:
                break
            got += more
        if got != length:
            raise FileChanged(f"{full} was cut short while it was being read; wait until nothing writes it")
        yield view
    finally:
        view.release()


def _stream_windows(
    fd: int,
    size: int,
    before: os.stat_result,
    full: Path,
    hashers: list[Any],
    parts: _PartHashers | None,
    pieces: PiecesHasher | None,
    progress: Progress | None,
    window_size: int,
    companion: ThreadPoolExecutor | None,
    leased: bool,
) -> None:
    offset = 0
    if not leased:
        window_size = min(window_size, COPY_WINDOW)
    while offset < size:
        if os.fstat(fd).st_size != before.st_size:
            raise FileChanged(f"{full} changed size while it was being read; wait until nothing writes it")
        length = min(window_size, size - offset)
        with _window(fd, offset, length, leased, full) as view:
            if companion is not None and parts is not None:
                # One file alone: whole-file digests on a second core while this one digests the parts
                # (and the BEP 52 tree, when asked: two SHA-256 passes on one core would be the bottleneck).
                pending = companion.submit(_update_all, hashers, view)
                parts.feed(view, offset)
                if pieces is not None:
                    pieces.update(view)
                pending.result()
            else:
                _update_all(hashers, view)
                if pieces is not None:
                    pieces.update(view)
                if parts is not None:
                    parts.feed(view, offset)
        offset += length
        if progress:
            progress(length)


GATHER = 16 << 20  # bytes of a strided view copied at a time to make them contiguous
VIEW_SLACK = 1 << 30  # bytes views may read beyond the file's size (expanded tensors, tied weights)


def _check_views(layout: Layout, size: int, path: str) -> None:
    """Refuse views whose gathering would cost far more than reading the file: a stride-0 or overlapping
    view can claim terabytes of elements over a storage of a few bytes."""
    total = 0
    for view in layout.views:
        count = 1
        for dim in view.shape:
            count *= dim
        total += count * DTYPE_BITS[view.dtype] // 8
        if total > 2 * size + VIEW_SLACK:
            raise MalformedContainer(
                path,
                f"its views (strided or shared tensors) read {total:,} bytes or more from a file of {size:,}; "
                "refusing to gather them",
            )


def _digest_views(fd: int, size: int, views: Sequence[ViewRecord], full: Path) -> tuple[TensorFingerprint, ...]:
    """Digest tensors that are strided, shared or big-endian views of a storage, in bounded memory.

    The storage is mapped read-only and its elements gathered in row-major order a block of rows at a
    time, byte-swapped to little-endian where needed: the same digest as the tensor saved contiguously.
    """
    import numpy as np  # only checkpoints with views pay for numpy

    return tuple(
        TensorFingerprint(
            view.name,
            view.dtype,
            view.shape,
            view.storage_start,
            view.storage_end,
            _gather_digest(fd, view, np, full) if view.storage_end <= size else None,
            True,
            path=view.path,
        )
        for view in views
    )


def _gather_digest(fd: int, view: ViewRecord, np: Any, full: Path) -> str:
    itemsize = DTYPE_BITS[view.dtype] // 8
    hasher = blake3()
    count = 1
    for dim in view.shape:
        count *= dim
    if count == 0 or view.storage_end == view.storage_start:
        return hasher.hexdigest()
    if os.fstat(fd).st_size < view.storage_end:  # a mapped page past a new end of file would fault
        raise FileChanged(f"{full} was cut short while it was being read; wait until nothing writes it")
    aligned = view.storage_start - view.storage_start % mmap.ALLOCATIONGRANULARITY
    length = view.storage_end - aligned
    unit = itemsize // 2 if view.dtype == "C64" else itemsize  # a complex is two floats
    with mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=aligned) as mapped:
        raw = np.frombuffer(
            mapped, dtype=np.uint8, count=view.storage_end - view.storage_start, offset=view.storage_start - aligned
        )
        elements = raw.view(np.dtype(f"V{itemsize}"))
        strided = np.lib.stride_tricks.as_strided(
            elements[view.offset :],
            shape=view.shape or (1,),
            strides=tuple(s * itemsize for s in view.stride) or (itemsize,),
            writeable=False,
        )
        for part in _blocks(strided, GATHER):
            block = np.ascontiguousarray(part)
            data = block.view(np.uint8).reshape(-1, unit)
            if view.big_endian and unit > 1:
                data = data[:, ::-1]
            hasher.update(np.ascontiguousarray(data).tobytes())
            del block, data, part
        del strided, elements, raw
    return hasher.hexdigest()


def _blocks(array: Any, limit: int) -> Iterator[Any]:
    """Consecutive slices of `array` in row-major order, each of at most `limit` bytes (or one element):
    whole rows at a time where rows are small, each row cut up in turn where one row is larger."""
    if array.nbytes <= limit or array.ndim == 0:
        yield array
        return
    if array.ndim == 1:
        step = max(1, limit // array.itemsize)
        for first in range(0, array.shape[0], step):
            yield array[first : first + step]
        return
    row = array[0].nbytes
    if row <= limit:
        step = max(1, limit // max(1, row))
        for first in range(0, array.shape[0], step):
            yield array[first : first + step]
        return
    for index in range(array.shape[0]):
        yield from _blocks(array[index], limit)


def _update_all(hashers: list[Any], view: memoryview) -> None:
    for hasher in hashers:
        hasher.update(view)


def hash_chunks(
    path: str, chunks: Iterable[bytes], size: int, plan: HashPlan, progress: Progress | None = None
) -> FileFingerprint:
    """Hash a file that arrives as a stream (a download that is not kept), as hash_file hashes one on disk.

    Tensor parts need the layout before the data, so only safetensors (header first) gets them; any other
    weights file gets its SHA-256, which every manifest records. A stream that ends early or a header
    that does not validate is recorded as the file's error, as for a damaged download; the whole-file
    digests of a complete stream are kept either way.
    """
    from provenance._formats.safetensors import HEADER_CAP, SafetensorsReader

    reader = reader_for(path)
    role = role_of(path, reader is not None)
    streamed_parts = plan.parts and isinstance(reader, SafetensorsReader)
    digests = set(plan.digests) | ({"sha256"} if plan.parts else set())
    hashers = {name: _new_hasher(name, 1) for name in ALGORITHMS if name in digests}
    pieces = PiecesHasher(plan.pieces) if plan.pieces else None
    parts: _PartHashers | None = None
    head: bytearray | None = bytearray() if streamed_parts else None
    error: str | None = None
    offset = 0
    for chunk in chunks:
        view = memoryview(chunk)
        _update_all(list(hashers.values()), view)
        if pieces is not None:
            pieces.update(view)
        if parts is not None:
            parts.feed(view, offset)
        elif head is not None:
            head += view
            need = 8 + int.from_bytes(head[:8], "little") if len(head) >= 8 else None
            if need is not None and (len(head) >= need or need > HEADER_CAP + 8):
                try:
                    assert reader is not None
                    layout = reader.read_layout(io.BytesIO(bytes(head[:need])), size, path)
                except MalformedContainer as exc:
                    error = exc.reason
                else:
                    parts = _PartHashers(layout)
                    parts.feed(memoryview(head), 0)
                head = None
        offset += len(view)
        if progress:
            progress(len(view))
    if offset != size:
        error = error or f"the stream ended at {offset:,} of {size:,} bytes"
    tensors: tuple[TensorFingerprint, ...] = ()
    container = None
    if parts is not None:
        tensors, container = parts.finish(offset)
    return FileFingerprint(
        path=path,
        size=offset,
        role=role,
        format=reader.name if parts is not None and reader is not None else None,
        digests={name: h.hexdigest() for name, h in hashers.items()} if offset == size else {},
        tensors=tensors,
        container_blake3=container if error is None else None,
        expected_size=size if offset != size else None,
        error=error,
        pieces=pieces.finish() if pieces is not None and error is None else None,
    )


def hash_files(
    root: Path,
    jobs: Sequence[tuple[str, HashPlan]],
    *,
    strict: bool = True,
    progress: Progress | None = None,
    workers: int | None = None,
    sizes: dict[str, int] | None = None,
    allow_symlinks: bool = True,
) -> list[FileFingerprint]:
    """Hash many files of one checkpoint in parallel; results come back in the order of `jobs`.

    `sizes` (from file_sizes, when the caller already needed them for a progress total) saves a stat each.
    """
    if not jobs:
        return []
    cores = os.cpu_count() or 1
    workers = workers or min(len(jobs), cores)
    sizes = sizes or file_sizes(root, [path for path, _ in jobs])
    # Files in parallel keep the cores busy with one thread each; a lone large file (a 13 GB
    # consolidated.00.pth) gets the spare cores for its own hashing instead.
    large = sum(1 for size in sizes.values() if size >= WINDOW)
    threads = max(1, cores // max(1, min(large, workers)))
    order = sorted(range(len(jobs)), key=lambda i: -sizes[jobs[i][0]])  # largest first: even finish
    results: list[FileFingerprint | None] = [None] * len(jobs)

    def run(i: int) -> FileFingerprint:
        path, plan = jobs[i]
        # A small file gets one thread: BLAKE3 with more builds a thread pool per hasher, which costs more
        # than the file (and 100,000 of them at once exhaust memory).
        cores_here = threads if sizes[path] >= PARALLEL_TENSOR else 1
        return hash_file(
            root, path, plan, strict=strict, progress=progress, threads=cores_here, allow_symlinks=allow_symlinks
        )

    if workers == 1:
        for i in order:
            results[i] = run(i)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash") as pool:
            futures = {i: pool.submit(run, i) for i in order}
            for i, future in futures.items():
                results[i] = future.result()
    return [r for r in results if r is not None]


def file_sizes(root: Path, paths: Sequence[str]) -> dict[str, int]:
    """The size of each file, for ordering the work and for a progress bar's total."""
    sizes: dict[str, int] = {}
    for path in paths:
        try:
            sizes[path] = (root / path).stat().st_size
        except OSError as exc:
            raise UnreadableInput(
                f"cannot read {root / path}: {exc.strerror}; check the path and its permissions"
            ) from None
    return sizes
