"""Partial downloads: tell damage a download leaves (zero-filled ranges, a short file, a missing one)
from a modification, and list the byte ranges that must be fetched again.

Torrent clients preallocate files and write pieces as they arrive, so an unfinished download reads as
zeros where pieces are missing. A manifest with chunk hashes (the BEP 52 piece layer, written by
`fingerprint --torrent-v2`) locates each damaged chunk: those ranges are re-read (only those), and a
chunk that differs and holds a zero-filled 16 KiB block is taken for one not yet downloaded. Without
chunk hashes the unit is the tensor (and the bytes between tensors), or the whole file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from functools import cache
from pathlib import Path

from blake3 import blake3

from provenance.fingerprint import Checkpoint, FileFingerprint, TensorFingerprint
from provenance.merkle import BLOCK, piece_hash
from provenance.report import FileStatus, Refetch, Report

ZERO_FILLED = "zero-filled: not downloaded yet"
_ZERO_BLOCK = bytes(BLOCK)
_ZEROS = bytes(1 << 20)

Ranges = list[tuple[int, int]]


@cache
def zero_digest(algorithm: str, length: int) -> str:
    """The digest of `length` zero bytes: a damaged part equal to it was never written."""
    hasher = blake3() if algorithm == "blake3" else hashlib.new(algorithm)
    while length > 0:
        step = min(length, len(_ZEROS))
        hasher.update(memoryview(_ZEROS)[:step])
        length -= step
    return str(hasher.hexdigest())


@dataclasses.dataclass(frozen=True, slots=True)
class Damage:
    """What the second look at damaged files found: candidate with damage marked, and chunk ranges."""

    candidate: Checkpoint
    chunks: dict[str, Ranges]  # file -> ranges of reference chunks that differ (from the chunk hashes)


def _same_layout(ref: FileFingerprint, cand: FileFingerprint) -> bool:
    if not (ref.tensors and cand.tensors) or len(ref.tensors) != len(cand.tensors):
        return False
    return all(
        (a.name, a.start, a.end) == (b.name, b.start, b.end) for a, b in zip(ref.tensors, cand.tensors, strict=True)
    )


def _parts_differ(ref: FileFingerprint, cand: FileFingerprint) -> Ranges:
    """Ranges (reference offsets) of a same-layout file whose parts differ; None digests count as differing."""
    ranges: Ranges = [(r.start, r.end) for r, c in zip(ref.tensors, cand.tensors, strict=True) if r.blake3 != c.blake3]
    if cand.container_blake3 != ref.container_blake3:
        cursor = 0
        for t in sorted(ref.tensors, key=lambda t: t.start):
            if t.start > cursor:
                ranges.append((cursor, t.start))
            cursor = max(cursor, t.end)
        if ref.size is not None and ref.size > cursor:
            ranges.append((cursor, ref.size))
    return _merge(ranges)


def _merge(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _zero_tensor(ref: TensorFingerprint | None, cand: TensorFingerprint) -> bool:
    return (
        ref is not None
        and not cand.view
        and cand.blake3 is not None
        and cand.blake3 != ref.blake3
        and cand.end > cand.start
        and cand.blake3 == zero_digest("blake3", cand.end - cand.start)
    )


def _scan_chunks(path: Path, ref: FileFingerprint, size: int, suspect: Ranges) -> tuple[Ranges, bool]:
    """Re-read the chunks that overlap `suspect` and return those that differ, and whether all of them
    look like a download's holes (past the end of the file, or holding a zero-filled 16 KiB block)."""
    assert ref.pieces is not None and ref.size is not None
    length = ref.pieces.piece_length
    one_piece = not ref.pieces.layer
    indexes = sorted({i for start, end in suspect for i in range(start // length, -(-end // length))})
    bad: Ranges = []
    holes = True
    with open(path, "rb", buffering=0) as stream:
        for i in indexes:
            start, end = i * length, min((i + 1) * length, ref.size)
            if end > size:
                bad.append((start, end))
                continue
            data = os.pread(stream.fileno(), end - start, start)
            if len(data) != end - start or piece_hash(data, length, one_piece) != ref.pieces.chunk_hash(i):
                bad.append((start, end))
                view = memoryview(data)
                blocks = range(0, len(data) - BLOCK + 1, BLOCK)
                holes = holes and any(view[b : b + BLOCK] == _ZERO_BLOCK for b in blocks)
    return _merge(bad), holes


def inspect_damage(root: Path, reference: Checkpoint, candidate: Checkpoint) -> Damage:
    """Mark what in a candidate is a download's damage rather than a change, before it is compared."""
    ref_by_path = {f.path: f for f in reference.files}
    files: list[FileFingerprint] = []
    chunks: dict[str, Ranges] = {}
    for cand in candidate.files:
        ref = ref_by_path.get(cand.path)
        if ref is None or cand.size is None:
            files.append(cand)
            continue
        same = _same_layout(ref, cand)
        tensors = cand.tensors
        if same:  # tensors of nothing but zeros, known from their digests without reading again
            tensors = tuple(
                t._replace(blake3=None, damage=ZERO_FILLED) if _zero_tensor(r, t) else t
                for r, t in zip(ref.tensors, cand.tensors, strict=True)
            )
        error = cand.error
        suspect = _suspect_ranges(ref, cand, same)
        if suspect and ref.pieces is not None:
            bad, holes = _scan_chunks(root / cand.path, ref, cand.size, suspect)
            chunks[cand.path] = bad
            if bad and holes:
                error = error or f"{sum(e - s for s, e in bad):,} bytes in damaged chunks, {ZERO_FILLED}"
                if same:
                    tensors = tuple(
                        t._replace(blake3=None, damage=ZERO_FILLED) if t.intact and t.blake3 != r.blake3 else t
                        for r, t in zip(ref.tensors, tensors, strict=True)
                    )
        elif error is None and same and cand.container_blake3 == ref.container_blake3:
            damaged = sum(1 for t in tensors if t.damage)
            differing = sum(1 for r, t in zip(ref.tensors, tensors, strict=True) if t.blake3 != r.blake3)
            if damaged and damaged == differing:
                error = f"{damaged} tensor(s) {ZERO_FILLED}"
        elif error is None and not ref.has_layout and cand.size and ref.size in (None, cand.size):
            differing_algs = [a for a in ref.digests if a in cand.digests and ref.digests[a] != cand.digests[a]]
            if differing_algs and all(cand.digests[a] == zero_digest(a, cand.size) for a in differing_algs):
                error = f"all {cand.size:,} bytes {ZERO_FILLED}"
        files.append(dataclasses.replace(cand, tensors=tensors, error=error))
    return Damage(dataclasses.replace(candidate, files=tuple(files)), chunks)


def _suspect_ranges(ref: FileFingerprint, cand: FileFingerprint, same: bool) -> Ranges:
    """Where a candidate file may differ from the reference, in reference offsets; [] when it matches."""
    if ref.size is None:
        return []
    if same:
        return _parts_differ(ref, cand)
    if ref.has_layout and cand.has_layout:
        return [] if _parts_match(ref, cand) else [(0, ref.size)]
    matches = [a for a in ref.digests if a in cand.digests and ref.digests[a] == cand.digests[a]]
    if matches and cand.size == ref.size:
        return []
    return [(0, ref.size)]


def _parts_match(ref: FileFingerprint, cand: FileFingerprint) -> bool:
    return (
        ref.size == cand.size
        and ref.container_blake3 == cand.container_blake3
        and [(t.start, t.end, t.blake3) for t in ref.tensors] == [(t.start, t.end, t.blake3) for t in cand.tensors]
    )


def plan_refetch(
    reference: Checkpoint, candidate: Checkpoint, report: Report, chunks: dict[str, Ranges]
) -> tuple[Refetch, ...]:
    """The byte ranges of each reference file that a partial download must fetch again."""
    ref_by_path = {f.path: f for f in reference.files}
    cand_by_path = {f.path: f for f in candidate.files}
    plans: list[Refetch] = []
    for result in report.files:
        ref = ref_by_path.get(result.name)
        if ref is None or result.status not in (FileStatus.MISSING, FileStatus.CORRUPT, FileStatus.MODIFIED):
            continue
        cand = cand_by_path.get(result.name)
        whole = ((0, ref.size),) if ref.size else ()
        if ref.size is None:
            plans.append(Refetch(ref.path, (), "the whole file (the manifest records no size)"))
        elif cand is None:
            plans.append(Refetch(ref.path, whole, "missing: the whole file"))
        elif result.name in chunks:
            size = ref.pieces.piece_length if ref.pieces else 0
            plans.append(Refetch(ref.path, tuple(chunks[result.name]), f"chunks of {size:,} bytes that differ"))
        elif _same_layout(ref, cand):
            plans.append(Refetch(ref.path, tuple(_parts_differ(ref, cand)), "tensors and container bytes that differ"))
        elif not ref.has_layout and cand.size is not None and cand.size < ref.size:
            plans.append(
                Refetch(ref.path, ((cand.size, ref.size),), "the missing tail; the rest is checked once it is whole")
            )
        else:
            plans.append(Refetch(ref.path, whole, "the whole file (no finer evidence in the manifest)"))
    return tuple(p for p in plans if p.ranges or ref_by_path[p.file].size is None)
