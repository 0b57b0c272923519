"""Partial downloads: tell the damage a download leaves (zero-filled ranges, a short file, a missing
one) from a change, and list the byte ranges that must be fetched again.

Torrent clients preallocate files and write pieces as they arrive, so an unfinished download reads as
zeros where pieces are missing. A manifest with chunk hashes (the BEP 52 piece layer, written by
`fingerprint --torrent-v2`) locates each damaged chunk: the chunks under the parts that differ are read
again (only those, in bounded slices), and a chunk that differs and is all zeros is one not yet
downloaded. Without chunk hashes the unit is the tensor (and the bytes between tensors), or the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from functools import cache
from pathlib import Path

from blake3 import blake3

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance._hashing.merkle import leaf_hashes, piece_root
from provenance._judging.wording import plural
from provenance.report import FileStatus, Refetch, Report

ZERO_FILLED = "zero-filled: not downloaded yet"
READ = 4 << 20  # bytes read at a time when a chunk is hashed again: memory stays flat whatever the piece length
SCAN_LIMIT = 64  # differing chunks that are not holes before a file is taken for changed, not unfinished
_ZEROS = bytes(READ)
ZERO_BLOCKS = "zero-filled ranges at piece-aligned offsets: looks not downloaded yet"
BLOCK = 16 << 10  # the smallest torrent piece (BEP 52): a client's unwritten pieces are zeros on these bounds
SAMPLE = 4096  # bytes looked at (start, middle, end) before a part is hashed as zeros

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


def _is_zero(data: bytes) -> bool:
    return data == _ZEROS[: len(data)] if len(data) <= len(_ZEROS) else data.count(0) == len(data)


def _looks_zero(fd: int, start: int, end: int) -> bool:
    """Whether the start, middle and end of file[start:end] are zeros: a cheap test before a full one."""
    spots = {start, max(start, (start + end) // 2 - SAMPLE // 2), max(start, end - SAMPLE)}
    return all(_is_zero(os.pread(fd, min(SAMPLE, end - spot), spot)) for spot in spots)


@dataclasses.dataclass(frozen=True, slots=True)
class Damage:
    """What the second look at damaged files found: the candidate with damage marked, and chunk ranges."""

    candidate: Checkpoint
    chunks: dict[str, Ranges]  # file -> ranges of the reference's chunks that differ (from chunk hashes)


@dataclasses.dataclass(frozen=True, slots=True)
class _Chunk:
    start: int
    end: int
    hole: bool  # all zeros, or past the end of the file: not downloaded (yet)


def _same_layout(ref: FileFingerprint, cand: FileFingerprint) -> bool:
    if not (ref.tensors and cand.tensors) or len(ref.tensors) != len(cand.tensors):
        return False
    pairs = zip(ref.tensors, cand.tensors, strict=True)
    return all((a.name, a.start, a.end) == (b.name, b.start, b.end) for a, b in pairs)


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


def _zero_tensor(fd: int, ref: TensorFingerprint, cand: TensorFingerprint) -> bool:
    return (
        not cand.view
        and cand.blake3 is not None
        and cand.blake3 != ref.blake3
        and cand.end > cand.start
        and _looks_zero(fd, cand.start, cand.end)
        and cand.blake3 == zero_digest("blake3", cand.end - cand.start)
    )


def _holed_tensor(fd: int, ref: TensorFingerprint, cand: TensorFingerprint) -> bool:
    """A differing tensor holding whole piece-aligned blocks of zeros (file offsets, as a preallocating
    torrent client leaves them) that cannot be the release's own zeros: its sketch, when the manifest has
    one, counts fewer zeros than the blocks hold. Not a pass: the tensor is to be fetched again."""
    same_kind = (cand.dtype, cand.shape) == (ref.dtype, ref.shape)
    if cand.view or cand.blake3 is None or cand.blake3 == ref.blake3 or not same_kind:
        return False
    first = -(-cand.start // BLOCK) * BLOCK
    zero_bytes = 0
    for block in range(first, cand.end - BLOCK + 1, BLOCK):
        if _looks_zero(fd, block, block + BLOCK) and _is_zero(os.pread(fd, BLOCK, block)):
            zero_bytes += BLOCK
    if not zero_bytes:
        return False
    sketch = ref.sketch
    if sketch is None or not sketch.count:
        return True
    itemsize = max(1, (ref.end - ref.start) // sketch.count)
    found = zero_bytes // itemsize
    stride = max(1, sketch.moments_stride)
    if stride == 1:
        return sketch.zeros < found
    # zeros are counted over every stride-th element: the release's own zeros are about zeros x stride, and
    # only a count well short of the blocks' (half) says they were never written rather than kept
    return 2 * sketch.zeros * stride < found


def _hash_chunk(fd: int, start: int, end: int, piece_length: int, one_piece: bool) -> tuple[str, bool]:
    """A chunk's hash and whether it is all zeros, read in bounded slices."""
    leaves: list[bytes] = []
    zero = True
    for offset in range(start, end, READ):
        data = os.pread(fd, min(READ, end - offset), offset)
        leaves += leaf_hashes(data)
        zero = zero and _is_zero(data)
    return piece_root(leaves, piece_length, one_piece), zero


def _scan_chunks(path: Path, ref: FileFingerprint, size: int, suspect: Ranges) -> list[_Chunk] | None:
    """Read again the chunks under `suspect` and return those that differ; None when so many differ
    without being holes that the file was changed, not left unfinished (the scan stops there)."""
    assert ref.pieces is not None and ref.size is not None
    length = ref.pieces.piece_length
    indexes = sorted({i for start, end in suspect for i in range(start // length, -(-end // length))})
    bad: list[_Chunk] = []
    changed = 0
    with open(path, "rb", buffering=0) as stream:
        for i in indexes:
            start, end = i * length, min((i + 1) * length, ref.size)
            if end > size:  # past the end of a short file
                bad.append(_Chunk(start, end, True))
                continue
            digest, zero = _hash_chunk(stream.fileno(), start, end, length, not ref.pieces.layer)
            if digest != ref.pieces.chunk_hash(i):
                bad.append(_Chunk(start, end, zero))
                changed += not zero
                if changed >= SCAN_LIMIT:
                    return None
    return bad


def inspect_damage(reference: Checkpoint, candidate: Checkpoint) -> Damage:
    """Mark what in a candidate is a download's damage rather than a change, before it is compared; the
    suspect parts are read again from the candidate's root."""
    root = candidate.require_root("inspecting damage")
    ref_by_path = {f.path: f for f in reference.files}
    files: list[FileFingerprint] = []
    chunks: dict[str, Ranges] = {}
    for cand in candidate.files:
        ref = ref_by_path.get(cand.path)
        suspect = _suspect_ranges(ref, cand) if ref is not None and cand.size else []
        if ref is None or not cand.size or not (suspect or _differing_digests(ref, cand)):
            files.append(cand)
            continue
        with open(root / cand.path, "rb", buffering=0) as stream:
            marked, error = _mark(stream.fileno(), ref, cand)
        if ref.pieces is not None and suspect:
            scanned = _scan_chunks(root / cand.path, ref, cand.size, suspect)
            if scanned is not None:
                chunks[cand.path] = _merge([(c.start, c.end) for c in scanned])
                marked, error = _mark_chunks(ref, cand, marked, scanned, error)
        files.append(dataclasses.replace(cand, tensors=marked, error=error))
    return Damage(dataclasses.replace(candidate, files=tuple(files)), chunks)


def _mark(fd: int, ref: FileFingerprint, cand: FileFingerprint) -> tuple[tuple[TensorFingerprint, ...], str | None]:
    """Tensors (or a whole file) of nothing but zeros, found from their digests."""
    assert cand.size is not None
    if _same_layout(ref, cand):
        tensors = tuple(
            t._replace(blake3=None, damage=ZERO_FILLED)
            if _zero_tensor(fd, r, t)
            else t._replace(blake3=None, damage=ZERO_BLOCKS)
            if _holed_tensor(fd, r, t)
            else t
            for r, t in zip(ref.tensors, cand.tensors, strict=True)
        )
        damaged = sum(1 for t in tensors if t.damage)
        differing = sum(1 for r, t in zip(ref.tensors, tensors, strict=True) if t.blake3 != r.blake3)
        whole_damage = damaged and damaged == differing and cand.container_blake3 == ref.container_blake3
        return tensors, cand.error or (f"{plural(damaged, 'tensor')} {ZERO_FILLED}" if whole_damage else None)
    if cand.error is None and not ref.has_layout and ref.size in (None, cand.size):
        algorithms = _differing_digests(ref, cand)
        if (
            algorithms
            and _looks_zero(fd, 0, cand.size)
            and all(cand.digests[a] == zero_digest(a, cand.size) for a in algorithms)
        ):
            return cand.tensors, f"all {cand.size:,} bytes {ZERO_FILLED}"
    return cand.tensors, cand.error


def _mark_chunks(
    ref: FileFingerprint,
    cand: FileFingerprint,
    tensors: tuple[TensorFingerprint, ...],
    bad: list[_Chunk],
    error: str | None,
) -> tuple[tuple[TensorFingerprint, ...], str | None]:
    """A differing tensor whose differing chunks are all holes was not downloaded whole; the file is
    unfinished, not changed, when every differing chunk is a hole."""
    if not bad:
        return tensors, error
    if _same_layout(ref, cand):

        def unfinished(t: TensorFingerprint) -> bool:
            under = [c for c in bad if c.start < t.end and c.end > t.start]
            return bool(under) and all(c.hole for c in under)

        tensors = tuple(
            t._replace(blake3=None, damage=ZERO_FILLED) if t.intact and t.blake3 != r.blake3 and unfinished(t) else t
            for r, t in zip(ref.tensors, tensors, strict=True)
        )
    if all(c.hole for c in bad):
        holes = sum(c.end - c.start for c in bad)
        error = error or f"{holes:,} bytes {ZERO_FILLED}"
    return tensors, error


def _differing_digests(ref: FileFingerprint, cand: FileFingerprint) -> list[str]:
    return [a for a in ref.digests if a in cand.digests and ref.digests[a] != cand.digests[a]]


def _suspect_ranges(ref: FileFingerprint, cand: FileFingerprint) -> Ranges:
    """Where a candidate file may hold a download's damage, in reference offsets; [] when it matches or
    is a well-formed container of another layout (a re-serialized copy, compared tensor by tensor)."""
    if ref.size is None:
        return []
    if _same_layout(ref, cand):
        return _parts_differ(ref, cand)
    if ref.has_layout and cand.has_layout:
        return []
    if cand.size == ref.size and not _differing_digests(ref, cand) and set(ref.digests) & set(cand.digests):
        return []
    return [(0, ref.size)]


def plan_refetch(
    reference: Checkpoint, candidate: Checkpoint, report: Report, chunks: dict[str, Ranges]
) -> tuple[Refetch, ...]:
    """What each damaged reference file needs to become whole: byte ranges to fetch, and a length to cut
    it to when it is longer than the release's."""
    ref_by_path = {f.path: f for f in reference.files}
    cand_by_path = {f.path: f for f in candidate.files}
    plans: list[Refetch] = []
    for result in report.files:
        ref = ref_by_path.get(result.name)
        if ref is None or result.status not in (FileStatus.MISSING, FileStatus.CORRUPT, FileStatus.MODIFIED):
            continue
        cand = cand_by_path.get(result.name)
        if ref.size is None:
            plans.append(Refetch(ref.path, (), "the whole file (the manifest records no size)"))
            continue
        whole = ((0, ref.size),) if ref.size else ()
        cut = ref.size if cand is not None and cand.size is not None and cand.size > ref.size else None
        if cand is None:
            plans.append(
                Refetch(ref.path, whole, "missing: the whole file" if ref.size else "missing: create it empty")
            )
        elif result.name in chunks:
            size = ref.pieces.piece_length if ref.pieces else 0
            plans.append(Refetch(ref.path, tuple(chunks[result.name]), f"chunks of {size:,} bytes that differ", cut))
        elif _same_layout(ref, cand):
            ranges = _parts_differ(ref, cand)
            plans.append(Refetch(ref.path, tuple(ranges), "tensors and container bytes that differ", cut))
        elif not ref.has_layout and ref.role is Role.WEIGHTS and cand.size is not None and cand.size < ref.size:
            detail = "the missing tail; the rest is checked once it is whole"
            plans.append(Refetch(ref.path, ((cand.size, ref.size),), detail))
        else:
            plans.append(Refetch(ref.path, whole, "the whole file (no finer evidence in the manifest)", cut))
    return tuple(plans)
