"""One file of a download: received in order, staged, repaired where it arrived damaged, then committed
or rejected. The operation around it is `download`."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from manifests.records import FileFingerprint
from provenance._hashing.plan import HashPlan
from provenance._hashing.scan import ProgressReporter
from provenance._hashing.streamed import hash_chunks
from provenance._sources.cache_layout import Destination
from provenance._sources.receiving import SEGMENT, ReadRange, receive, segments
from provenance.errors import HubError, ProvenanceError

RETRIES = 3  # rounds of fetching damaged ranges again before the bytes are taken as what the server serves


@dataclass(frozen=True)
class Origin:
    """Where bytes come from: a hub repository at a commit, or a plain folder URL."""

    label: str
    read_range: ReadRange
    size_of: Callable[[str], int | None]
    etag: Callable[[str, FileFingerprint, Path], str]  # the cache's blob name for verified bytes
    received: Callable[[], int]


@dataclass(frozen=True)
class Outcome:
    path: str
    fingerprint: FileFingerprint | None  # None: the source has no such file
    kind: str  # "reused", "committed", "rejected", "missing"
    refetched: int = 0


def receive_file(
    origin: Origin,
    destination: Destination,
    entry: FileFingerprint,
    fetching: tuple[int, int],
    keep: Path | None,
    progress: ProgressReporter | None,
) -> Outcome:
    """One file of the release: reused when already in place and matching, else received, repaired, and
    committed or rejected."""
    advance = progress.advance if progress is not None else None
    size = origin.size_of(entry.path)
    if size is None:
        return Outcome(entry.path, None, "missing")
    if size != entry.size:  # no byte of it can match: its size alone is the verdict's evidence
        destination.discard(entry.path)
        return Outcome(entry.path, FileFingerprint(entry.path, size, entry.role), "rejected")
    plan = HashPlan(frozenset(entry.digests) | {"sha256"}, parts=entry.has_layout)
    present = destination.existing(entry.path)
    if present is not None:
        with present.open("rb") as stream:
            fingerprint = hash_chunks(entry.path, local_chunks(stream, 0, size), size, plan, advance)
        if same_bytes(entry, fingerprint):
            return Outcome(entry.path, fingerprint, "reused")
    staged = destination.staging(entry.digests.get("sha256") or blake3(entry.path.encode()).hexdigest())
    with _locked(staged) as out:
        fingerprint = hash_chunks(entry.path, _received(out, origin, entry.path, size, fetching), size, plan, advance)
        fingerprint, rounds = _repair(out, origin, entry, fingerprint, plan, fetching)
    if same_bytes(entry, fingerprint):
        destination.commit_file(entry.path, staged, origin.etag(entry.path, fingerprint, staged))
        return Outcome(entry.path, fingerprint, "committed", rounds)
    if keep is not None:
        kept = keep / entry.path
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, kept)
    else:
        staged.unlink(missing_ok=True)
    destination.discard(entry.path)
    return Outcome(entry.path, fingerprint, "rejected", rounds)


class _Staged:
    """A staging file opened for update and locked, so that two downloads never write the same one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> BinaryIO:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ProvenanceError(
                f"another download is writing {self.path}; wait until it ends, then run this one again"
            ) from None
        self.stream = os.fdopen(fd, "r+b")
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.close()  # closing the descriptor releases the lock


def _locked(path: Path) -> _Staged:
    return _Staged(path)


def local_chunks(stream: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of a file on disk, in segments."""
    stream.seek(start)
    position = start
    while position < end:
        chunk = stream.read(min(SEGMENT, end - position))
        if not chunk:
            return
        position += len(chunk)
        yield chunk


def _received(out: BinaryIO, origin: Origin, path: str, size: int, fetching: tuple[int, int]) -> Iterator[bytes]:
    """The file's bytes in order: those an earlier run staged (read from disk), then the rest as it arrives,
    each written to the staging file before it is hashed."""
    out.seek(0, os.SEEK_END)
    kept = out.tell()
    if kept > size:  # not a prefix of this file: start again
        out.truncate(0)
        kept = 0
    yield from local_chunks(out, 0, kept)
    position = kept
    try:
        connections, segment = fetching
        for body in receive(origin.read_range, path, segments(kept, size, segment), connections=connections):
            out.seek(position)
            out.write(body)
            position += len(body)
            yield body
    except HubError as exc:
        out.flush()
        raise HubError(
            f"{exc}; {position:,} of {size:,} bytes of {path} are kept: run the same command again to resume"
        ) from None


def _repair(
    out: BinaryIO,
    origin: Origin,
    entry: FileFingerprint,
    fingerprint: FileFingerprint,
    plan: HashPlan,
    fetching: tuple[int, int],
) -> tuple[FileFingerprint, int]:
    """Fetch again the ranges that arrived unlike the release's, until the file matches, the server sends
    the same bytes again (what it serves), or RETRIES rounds are spent. Returns the fingerprint of the bytes
    staged and how many ranges were fetched again."""
    refetched = 0
    size = entry.size or 0
    for _ in range(RETRIES):
        if same_bytes(entry, fingerprint):
            break
        spans = damaged_spans(entry, fingerprint)
        refetched += len(spans)
        connections, segment = fetching
        pieces = [s for start, end in spans for s in segments(start, end, segment)]
        changed = False
        again = receive(origin.read_range, entry.path, pieces, connections=connections)
        for (start, end), body in zip(pieces, again, strict=True):
            out.seek(start)
            if out.read(end - start) != body:
                out.seek(start)
                out.write(body)
                changed = True
        if not changed:
            break  # the same bytes twice: not damage in transit
        out.flush()
        fingerprint = hash_chunks(entry.path, local_chunks(out, 0, size), size, plan)
    return fingerprint, refetched


def same_bytes(entry: FileFingerprint, got: FileFingerprint) -> bool:
    """Whether received bytes are the release's file: its size, every whole-file digest both have, and
    its tensors and container bytes when both sides have them; at least one digest in common."""
    if got.error is not None or got.size != entry.size:
        return False
    common = [name for name in entry.digests if name in got.digests]
    if any(entry.digests[name] != got.digests[name] for name in common):
        return False
    if entry.has_layout and got.tensors:
        ours = {(t.name, t.dtype, t.shape, t.start, t.end, t.blake3) for t in got.tensors}
        theirs = {(t.name, t.dtype, t.shape, t.start, t.end, t.blake3) for t in entry.tensors}
        return ours == theirs and got.container_blake3 == entry.container_blake3
    return bool(common)


def damaged_spans(entry: FileFingerprint, got: FileFingerprint) -> list[tuple[int, int]]:
    """The byte ranges of the release's file that arrived otherwise: tensors whose digest differs, the
    bytes between tensors when their digest differs; the whole file when the layout tells nothing."""
    size = entry.size or 0
    if not entry.tensors or not got.tensors:
        return [(0, size)]
    found = {(t.name, t.start, t.end): t.blake3 for t in got.tensors}
    tensors = sorted((t for t in entry.tensors if not t.view), key=lambda t: t.start)
    spans = [(t.start, t.end) for t in tensors if found.get((t.name, t.start, t.end)) != t.blake3]
    if got.container_blake3 != entry.container_blake3:
        edge = 0
        for t in tensors:
            if t.start > edge:
                spans.append((edge, t.start))
            edge = max(edge, t.end)
        if edge < size:
            spans.append((edge, size))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged or [(0, size)]


def git_oid(path: Path) -> str:
    """The git blob id of a file kept in git itself, when the hub's metadata did not give it."""
    import hashlib

    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as stream:
        for chunk in local_chunks(stream, 0, path.stat().st_size):
            digest.update(chunk)
    return digest.hexdigest()
