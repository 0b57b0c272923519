"""What a mirror audit below --full establishes, and what that finds.

`MirrorAudit` holds what the levels read so far: the hub's metadata (sizes, the uploader's sha256
claims, files kept in git read whole), safetensors headers (read in audit_mirror.py), and sampled bytes
(`spot_check` chunks or tensors against the manifest's chunk hashes or tensor digests). `findings`
translates it into findings for the one verdict function.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from blake3 import blake3

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint, is_weights_file, role_of
from provenance._hashing.engine import HashPlan, hash_chunks
from provenance._hashing.merkle import piece_hash
from provenance._hashing.scan import plan_against
from provenance._judging.collisions import find_collisions, present
from provenance._judging.compare import file_status_of
from provenance._judging.loading import may_pick_up
from provenance._judging.verdict import Findings
from provenance._judging.wording import plural
from provenance._sources.hub import Mirror
from provenance._sources.hub_refs import HubFile
from provenance.report import FileResult, FileStatus, TensorResult, TensorStatus

MAX_SAMPLE = 16 << 20  # largest chunk or tensor fetched for one spot check
SAMPLED_DIFFER = "sampled bytes differ from the release"  # a file's detail when a spot check caught it
SAMPLED_TENSOR = "sampled: values differ"  # a tensor's detail when a spot check caught it


@dataclass
class MirrorAudit:
    """What an audit of one mirror has established so far."""

    files: dict[str, FileResult] = field(default_factory=dict)
    tensors: list[TensorResult] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # facts the headers and samples showed
    changes: list[str] = field(default_factory=list)  # changes the samples showed
    headers: dict[str, tuple[TensorFingerprint, ...]] = field(default_factory=dict)  # candidate file -> tensors
    header_blake3: dict[str, str] = field(default_factory=dict)  # candidate file -> BLAKE3 of its header bytes
    suspect: set[str] = field(default_factory=set)  # files whose bytes differ by the hub's claim
    settled: set[str] = field(default_factory=set)  # weights files proven changed from their header
    weights_read: bool = False  # whether any bytes of weights were checked (samples)

    def level(self, text: str) -> None:
        if text not in self.levels:
            self.levels.append(text)

    def set(self, path: str, status: FileStatus, detail: str) -> None:
        """A file's status and detail, as a later level settles them."""
        self.files[path] = dataclasses.replace(self.files[path], status=status, detail=detail)

    def record(self, sampled: SpotCheck) -> None:
        """What the samples showed: the files and tensors they caught, and the level read."""
        if sampled.level is None:
            if sampled.note is not None:
                self.reasons.append(sampled.note)
            return
        for path in sampled.differ:
            previous = self.files.get(path)
            if previous is not None and previous.status is not FileStatus.MISSING:
                self.set(path, FileStatus.MODIFIED, SAMPLED_DIFFER)
        self.tensors.extend(sampled.tensors)
        self.level(sampled.level)
        self.weights_read = sampled.read
        if sampled.change is not None:
            self.changes.append(sampled.change)


# ---------------------------------------------------------------- metadata


class ByMetadata(NamedTuple):
    """What the hub's metadata says of one release file present on the mirror."""

    status: FileStatus
    detail: str | None
    suspect: bool = False  # its bytes differ by the hub's own claim
    read_whole: bool = False  # kept in git, so read whole and hashed


def by_metadata(mirror: Mirror, ref: FileFingerprint, got: HubFile, reference: Checkpoint) -> ByMetadata:
    """Sizes and the uploader's sha256 claim; a file kept in git is small, so it is read whole (streamed,
    not kept) and hashed as `verify` would."""
    if ref.size is not None and ref.size != got.size:
        return ByMetadata(FileStatus.MODIFIED, f"{got.size:,} bytes, expected {ref.size:,}", suspect=True)
    if not got.lfs:
        plan = plan_against(reference)(got.path)
        if "sha256" in ref.digests and not plan.digests:
            plan = HashPlan(frozenset({"sha256"}), parts=plan.parts)
        status, detail = file_status_of(ref, hash_chunks(got.path, mirror.stream(got.path, got.size), got.size, plan))
        return ByMetadata(status, detail, read_whole=True)
    claimed = ref.digests.get("sha256")
    if claimed is None:
        return ByMetadata(FileStatus.UNDECIDED, "the release records no sha256 to hold the hub's claim against")
    if got.sha256 == claimed:
        return ByMetadata(FileStatus.MATCH, "the hub's sha256 claim matches")
    return ByMetadata(FileStatus.MODIFIED, "the hub claims another sha256", suspect=True)


def metadata(
    mirror: Mirror, reference: Checkpoint, by_path: dict[str, HubFile], audit: MirrorAudit
) -> list[FileFingerprint]:
    """Each release file by the hub's metadata; returns the weights files whose bytes differ or moved."""
    unsettled: list[FileFingerprint] = []
    for ref in reference.files:
        got = by_path.get(ref.path)
        if got is None:
            audit.files[ref.path] = FileResult(ref.path, FileStatus.MISSING, ref.role.value, None, ref.size)
            if ref.has_layout:
                unsettled.append(ref)
            continue
        seen = by_metadata(mirror, ref, got, reference)
        if seen.read_whole:
            audit.level("files kept in git read whole")
        if seen.suspect:
            audit.suspect.add(got.path)
        if seen.status is FileStatus.MODIFIED and ref.has_layout:
            unsettled.append(ref)
        audit.files[ref.path] = FileResult(ref.path, seen.status, ref.role.value, got.size, ref.size, seen.detail)
    return unsettled


# ---------------------------------------------------------------- sampled bytes


class _Unit(NamedTuple):
    """One range a spot check can fetch, and the hash it must have."""

    file: str
    start: int
    end: int
    expected: str
    kind: str  # "chunk", or the name of the tensor the range holds
    one_piece: bool = False
    piece_length: int = 0


@dataclass(frozen=True, slots=True)
class SpotCheck:
    """What sampled ranges showed: the evidence line, the files and tensors caught, and the sentence."""

    level: str | None  # None: nothing could be sampled
    differ: tuple[str, ...] = ()  # files whose sampled bytes differ from the release's
    tensors: tuple[TensorResult, ...] = ()  # tensors whose sampled bytes differ
    change: str | None = None  # why the samples make the mirror modified
    note: str | None = None  # why nothing was sampled
    read: bool = False  # whether any bytes of weights were checked


def _units(
    reference: Checkpoint, by_path: dict[str, HubFile], headers: dict[str, tuple[TensorFingerprint, ...]]
) -> list[_Unit]:
    """Everything a spot check can fetch: the manifest's chunks where it has them, else whole tensors."""
    units: list[_Unit] = []
    ref_tensors = {t.name: t for f in reference.files for t in f.tensors}
    for ref in reference.files:
        got = by_path.get(ref.path)
        pieces = ref.pieces
        if got is None or pieces is None or ref.size != got.size or pieces.piece_length > MAX_SAMPLE:
            continue
        for i in range(pieces.chunk_count(got.size)):
            start, end = i * pieces.piece_length, min((i + 1) * pieces.piece_length, got.size)
            units.append(
                _Unit(ref.path, start, end, pieces.chunk_hash(i), "chunk", not pieces.layer, pieces.piece_length)
            )
    chunked = {u.file for u in units}
    for path, tensors in headers.items():
        if path in chunked:
            continue
        for t in tensors:
            r = ref_tensors.get(t.name)
            if (
                r is not None
                and r.blake3
                and (r.dtype, r.shape) == (t.dtype, t.shape)
                and t.end - t.start <= MAX_SAMPLE
            ):
                units.append(_Unit(path, t.start, t.end, r.blake3, t.name))
    return units


def spot_check(
    mirror: Mirror,
    reference: Checkpoint,
    by_path: dict[str, HubFile],
    headers: dict[str, tuple[TensorFingerprint, ...]],
    count: int,
    seed: int | None,
    suspect: Iterable[str],
) -> SpotCheck:
    """`count` random chunks or tensors fetched and hashed, those of files the metadata already suspects
    first; reproducible with a `seed`."""
    units = _units(reference, by_path, headers)
    if not units:
        return SpotCheck(
            None, note="nothing to spot-check: the manifest has neither chunk hashes nor tensor digests to sample"
        )
    chooser = random.Random(seed)
    doubted = set(suspect)
    first = [u for u in units if u.file in doubted]  # where the metadata already says bytes differ
    rest = [u for u in units if u.file not in doubted]
    chooser.shuffle(first)
    chooser.shuffle(rest)
    picked = (first + rest)[:count]
    bad: list[str] = []
    differ: list[str] = []
    tensors: list[TensorResult] = []
    for path, start, end, expected, kind, one_piece, piece_length in sorted(picked):
        body = mirror.read_range(path, start, end)
        actual = piece_hash(body, piece_length, one_piece) if kind == "chunk" else blake3(body).hexdigest()
        if actual == expected:
            continue
        bad.append(f"{path} bytes {start:,}-{end - 1:,}" + ("" if kind == "chunk" else f" ({kind})"))
        differ.append(path)
        if kind != "chunk":
            tensors.append(_sampled_tensor(reference, kind, path))
    kinds = {"chunks" if u.kind == "chunk" else "tensors" for u in picked}
    asked = f" of {count} asked for" if len(picked) < count else ""
    level = f"{len(picked)}{asked} sampled {' and '.join(sorted(kinds))} ({len(picked) - len(bad)} matched)"
    change = f"{len(bad)} of {len(picked)} sampled ranges differ from the release: {', '.join(bad[:3])}"
    return SpotCheck(level, tuple(differ), tuple(tensors), change if bad else None, read=bool(picked))


def _sampled_tensor(reference: Checkpoint, name: str, path: str) -> TensorResult:
    """A release tensor whose sampled bytes on the mirror differ from its digest."""
    home, r = next((f.path, t) for f in reference.files for t in f.tensors if t.name == name)
    return TensorResult(name, TensorStatus.MODIFIED, home, r.dtype, r.shape, None, path, SAMPLED_TENSOR)


# ---------------------------------------------------------------- what it all establishes


def findings(reference: Checkpoint, audit: MirrorAudit, extra: list[HubFile]) -> Findings:
    """What the levels read establish, for the one verdict function."""
    changes = _changes(reference, audit, _any_lost(audit), extra)
    collisions = find_collisions([*present(audit.files.values()), *(f.path for f in extra)], audit.files.values())
    audit.files = {f.name: f for f in collisions.files}  # marked after the changes: said once, by the reason
    files = list(audit.files.values())
    lost = [f for f in files if f.status in (FileStatus.MISSING, FileStatus.CORRUPT) and f.role != Role.INDEX.value]
    losses = [
        f"{f.name} is missing" if f.status is FileStatus.MISSING else f"{f.name} cannot be read: {f.detail}"
        for f in lost
    ]
    identity = "every file of the release is on the mirror with the size and sha256 the release records"
    if not audit.weights_read:
        identity += " (the hub's claim: --spot-check or --full checks the bytes)"
    return Findings(
        changes=(*((collisions.change,) if collisions.change else ()), *changes),
        facts=tuple(audit.reasons),
        losses=tuple(losses),
        doubts=tuple(_doubts(reference, audit, extra)),
        identity=identity,
    )


def _any_lost(audit: MirrorAudit) -> bool:
    """Whether a release file other than an index is missing or cut short on the mirror."""
    return any(
        f.status in (FileStatus.MISSING, FileStatus.CORRUPT) and f.role != Role.INDEX.value
        for f in audit.files.values()
    )


def _header_settled(reference: Checkpoint, audit: MirrorAudit) -> set[str]:
    """The release's weights files, when headers were read: their changes are settled by the headers."""
    return {f.path for f in reference.files if f.has_layout} if audit.headers else set()


def _changes(reference: Checkpoint, audit: MirrorAudit, lost: bool, extra: list[HubFile]) -> list[str]:
    """Files and tensors shown changed, tensors removed from files that are whole, and added files a
    loader may pick up (the release has none of them)."""
    header_settled = _header_settled(reference, audit)
    changes = [
        f"{f.name}: {f.detail}"
        for f in audit.files.values()
        if f.status is FileStatus.MODIFIED
        and f.role != Role.INDEX.value
        and (f.name not in header_settled or f.name in audit.settled or f.detail == SAMPLED_DIFFER)
    ]
    changes += audit.changes
    reshaped = [t for t in audit.tensors if t.status is TensorStatus.MODIFIED and t.detail != SAMPLED_TENSOR]
    if reshaped:
        shown = ", ".join(f"{t.name} ({t.detail})" for t in reshaped[:3])
        changes.append(f"{plural(len(reshaped), 'tensor')} with another dtype or shape than the release's: {shown}")
    added = [t.name for t in audit.tensors if t.status is TensorStatus.EXTRA]
    if added:  # the sentence the headers' comparison says it in
        changes.append(f"{plural(len(added), 'tensor')} added: {', '.join(added[:3])}")
    missing = [t.name for t in audit.tensors if t.status is TensorStatus.MISSING]
    if missing and not lost:
        changes.append(f"{plural(len(missing), 'tensor')} removed: {', '.join(missing[:3])}")
    picked = [f.path for f in extra if may_pick_up(f.path, role_of(f.path, is_weights_file(f.path)))]
    if picked:
        changes.append(f"the mirror adds {plural(len(picked), 'file')} a loader may pick up: {', '.join(picked[:3])}")
    return changes


def _doubts(reference: Checkpoint, audit: MirrorAudit, extra: list[HubFile]) -> list[str]:
    """What only more evidence (--full) can settle: shard indexes, weights that moved, added weights,
    and sha256 claims the release cannot be held against."""
    header_settled = _header_settled(reference, audit)
    files = list(audit.files.values())
    # A shard index is a loading instruction: one that is not the release's byte for byte is read under --full.
    indexes = [
        f.name for f in files if f.role == Role.INDEX.value and f.status in (FileStatus.MODIFIED, FileStatus.EXTRA)
    ]
    doubts: list[str] = []
    if indexes:
        doubts.append(
            f"the mirror's shard index ({', '.join(indexes[:3])}) is not the release's: --full reads it and "
            "decides where it sends each tensor"
        )
    if any(f.name in header_settled and f.status is FileStatus.MODIFIED and f.name not in audit.settled for f in files):
        doubts.append(
            "the weights differ from the release's files in bytes or layout but not in their tensor table: "
            "--full streams every byte and decides (--spot-check only samples)"
        )
    added_weights = [f.path for f in extra if is_weights_file(f.path)]
    if added_weights:
        doubts.append(
            f"the mirror adds {plural(len(added_weights), 'weights file')} whose values were not read: "
            f"{', '.join(added_weights[:3])}; "
            "--full decides"
        )
    if any(f.status is FileStatus.UNDECIDED for f in files):
        doubts.append("the hub's metadata cannot be held against this reference: --full decides")
    return doubts
