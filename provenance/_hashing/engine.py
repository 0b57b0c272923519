"""The single streaming pass: one sequential read per file feeds every digest that file needs.

Each byte of a file is handed once to each algorithm: SHA-256 over the whole file when asked, BLAKE3
over each tensor, and one BLAKE3 over the bytes between tensors (`parts`), read through leased mmap
windows (`reading`). Several files are hashed at once: hashlib and blake3 release the GIL, so threads
use every core. A file that arrives as a stream rather than from disk is hashed by `streamed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, BinaryIO

from manifests.records import FileFingerprint, Role, TensorFingerprint, role_of
from provenance._formats.detect import reader_for
from provenance._formats.interface import FormatReader
from provenance._formats.unpickler import DisallowedGlobal
from provenance._hashing.cluster import cluster_executor
from provenance._hashing.merkle import PiecesHasher
from provenance._hashing.parts import PARALLEL_TENSOR, PartHashers
from provenance._hashing.plan import HashPlan, Progress, update_all, whole_file_hashers
from provenance._hashing.reading import WINDOW, lease_held, open_listed, read_windows, stat_key, take_lease
from provenance._hashing.streamed import hash_chunks
from provenance._hashing.views import check_views, digest_views
from provenance.errors import FileChanged, MalformedContainer, RefusedContainer, TruncatedContainer, UnreadableInput


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
    with open_listed(root, full, allow_symlinks) as stream:
        fd = stream.fileno()
        leased = take_lease(fd)
        before = os.fstat(fd)
        size = before.st_size
        parts: PartHashers | None = None
        if plan.only_if_size is not None and size != plan.only_if_size:
            # Its size alone differs from the reference's: that decides its status.
            return _unread(FileFingerprint(path, size, role), size, progress)
        if plan.parts and reader is not None:
            found = _parts_of(stream, size, (path, role), reader, plan, threads, strict)
            if isinstance(found, FileFingerprint):
                return _unread(found, size, progress)
            parts = found
        hashers = whole_file_hashers(plan, threads)
        pieces = PiecesHasher(plan.pieces) if plan.pieces else None
        if hashers or parts or pieces:
            _read(fd, size, full, (hashers, parts, pieces), progress, window, threads, leased)
        elif progress:
            progress(size)
        views = digest_views(fd, size, parts.layout.views, full) if parts and parts.layout.views else ()
        if stat_key(os.fstat(fd)) != stat_key(before) or (leased and not lease_held(fd)):
            raise FileChanged(f"{full} changed while it was being read; wait until nothing writes it, then retry")
    return _fingerprint(path, size, role, reader.name if reader and plan.parts else None, hashers, parts, views, pieces)


def _unread(fingerprint: FileFingerprint, size: int, progress: Progress | None) -> FileFingerprint:
    """A file settled without reading its bytes: they still count as done for the progress bar."""
    if progress:
        progress(size)
    return fingerprint


def _parts_of(
    stream: BinaryIO,
    size: int,
    named: tuple[str, Role],
    reader: FormatReader,
    plan: HashPlan,
    threads: int,
    strict: bool,
) -> PartHashers | FileFingerprint:
    """The part hashers for the file's layout, or (not strict) a fingerprint recording why it has none."""
    path, role = named
    try:
        layout = reader.read_layout(stream, size, path)
        check_views(layout, size, path)
    except (MalformedContainer, DisallowedGlobal) as exc:
        if strict:
            raise
        if isinstance(exc, DisallowedGlobal):  # a pickle that would run code: named, and a change
            return FileFingerprint(path, size, role, format=reader.name, error="refused", hazard=str(exc))
        hazard = exc.reason if isinstance(exc, RefusedContainer) else None  # deliberate, not damage
        return FileFingerprint(path, size, role, format=reader.name, error=exc.reason, hazard=hazard)
    if strict and layout.expected_size != size:
        raise TruncatedContainer(path, f"cut short: {size:,} of {layout.expected_size:,} bytes")
    return PartHashers(layout, 1 if plan.pieces else threads, plan.sketches, size, quants=plan.quants)


Sinks = tuple[dict[str, Any], PartHashers | None, PiecesHasher | None]


def _read(
    fd: int,
    size: int,
    full: Path,
    sinks: Sinks,
    progress: Progress | None,
    window: int,
    threads: int,
    leased: bool,
) -> None:
    """Read the file once, window by window, into every hasher it feeds."""
    hashers, parts, pieces = sinks
    whole = list(hashers.values())
    companion = ThreadPoolExecutor(1, "hash-whole") if threads > 1 and whole and parts else None
    try:
        read_windows(fd, size, full, window, leased, _consumer(whole, parts, pieces, companion), progress)
    finally:
        if companion is not None:
            companion.shutdown()


def _consumer(
    whole: list[Any], parts: PartHashers | None, pieces: PiecesHasher | None, companion: ThreadPoolExecutor | None
) -> Callable[[memoryview, int], None]:
    """What each window is handed to, chosen once per file rather than tested once per window."""
    if companion is not None and parts is not None:

        def in_parallel(view: memoryview, offset: int) -> None:
            # One file alone: whole-file digests on a second core while this one digests the parts (and
            # the BEP 52 tree, when asked: two SHA-256 passes on one core would be the bottleneck).
            pending = companion.submit(update_all, whole, view)
            parts.feed(view, offset)
            if pieces is not None:
                pieces.update(view)
            pending.result()

        return in_parallel

    def in_turn(view: memoryview, offset: int) -> None:
        update_all(whole, view)
        if pieces is not None:
            pieces.update(view)
        if parts is not None:
            parts.feed(view, offset)

    return in_turn


def _fingerprint(
    path: str,
    size: int,
    role: Role,
    format_name: str | None,
    hashers: dict[str, Any],
    parts: PartHashers | None,
    views: tuple[TensorFingerprint, ...],
    pieces: PiecesHasher | None,
) -> FileFingerprint:
    tensors: tuple[TensorFingerprint, ...] = ()
    container = expected = error = None
    if parts is not None:
        tensors, container = parts.finish(size)
        tensors += views
        if parts.layout.expected_size != size:
            expected = parts.layout.expected_size
            if size < expected:
                error = f"cut short: {size:,} of {expected:,} bytes"
    return FileFingerprint(
        path=path,
        size=size,
        role=role,
        format=format_name,
        digests={name: h.hexdigest() for name, h in hashers.items()},
        tensors=tensors,
        container_blake3=container,
        expected_size=expected,
        error=error,
        pieces=pieces.finish() if pieces else None,
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

    remote = cluster_executor()
    if remote is not None:  # one task per file, on the worker that takes it: the path is the same there
        return _on_cluster(remote, root, jobs, sizes, (strict, allow_symlinks), progress)
    if workers == 1:
        for i in order:
            results[i] = run(i)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash") as pool:
            futures = {i: pool.submit(run, i) for i in order}
            for i, future in futures.items():
                results[i] = future.result()
    return [r for r in results if r is not None]


def _on_cluster(
    remote: Executor,
    root: Path,
    jobs: Sequence[tuple[str, HashPlan]],
    sizes: dict[str, int],
    flags: tuple[bool, bool],
    progress: Progress | None,
) -> list[FileFingerprint]:
    """Each file hashed by a cluster worker (its cores its own), in the order of `jobs`; progress as files end."""
    strict, allow_symlinks = flags
    futures = {
        remote.submit(hash_file, root, path, plan, strict=strict, threads=1, allow_symlinks=allow_symlinks): i
        for i, (path, plan) in enumerate(jobs)
    }
    results: list[FileFingerprint | None] = [None] * len(jobs)
    for future in as_completed(futures):
        i = futures[future]
        results[i] = future.result()
        if progress:
            progress(sizes[jobs[i][0]])
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


__all__ = ["WINDOW", "HashPlan", "Progress", "file_sizes", "hash_chunks", "hash_file", "hash_files"]
