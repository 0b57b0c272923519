"""Audit a mirror on the hub against a reference, with the least evidence that settles it.

Levels, cheapest first: the hub's metadata (sizes, and the sha256 the uploader's LFS pointer claims);
files kept in git, read whole (they are small); safetensors headers fetched by range request (names,
dtypes, shapes, offsets); sampled bytes (`spot_check` random chunks or tensors checked against the
manifest's chunk hashes or tensor digests); all bytes (`full`: every file streamed through the hasher,
nothing kept). Every report says which levels its verdict rests on.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from blake3 import blake3

from manifests.names import DEFAULT_IGNORE, is_ignored
from manifests.records import Checkpoint, FileFingerprint, Role, ShardIndex, TensorFingerprint, is_weights_file, role_of
from provenance._checks.common import finish, open_checked
from provenance._formats.detect import reader_for
from provenance._hashing.engine import HashPlan, hash_chunks, hash_file
from provenance._hashing.merkle import piece_hash
from provenance._hashing.scan import INDEX_CAP, parse_index, plan_against
from provenance._judging.compare import compare, file_status_of, is_inert
from provenance._sources.hub import Hub, HubFile, HubSnapshot, RepoRef
from provenance.errors import MalformedContainer, ProvenanceError
from provenance.report import FileResult, FileStatus, Report, TensorResult, TensorStatus, Verdict

HEAD_GUESS = 16 << 10  # first range request for a header; a longer one takes what the reader says it needs
MAX_SAMPLE = 16 << 20  # largest chunk or tensor fetched for one spot check
EVIDENCE_FULL = (
    "all bytes: every file streamed from the hub and hashed, nothing kept (containers indexed at their end "
    "are spooled to a temporary file while hashed)"
)


@dataclass(frozen=True, slots=True)
class AuditOptions:
    spot_check: int = 0  # random chunks or tensors to fetch and check
    full: bool = False  # stream every byte
    seed: int | None = None  # for reproducible spot checks


@dataclass
class _Audit:
    """What an audit of one mirror has established so far."""

    files: dict[str, FileResult] = field(default_factory=dict)
    tensors: list[TensorResult] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    headers: dict[str, tuple[TensorFingerprint, ...]] = field(default_factory=dict)  # candidate file -> tensors
    header_blake3: dict[str, str] = field(default_factory=dict)  # candidate file -> BLAKE3 of its header bytes
    suspect: set[str] = field(default_factory=set)  # files whose bytes differ by the hub's claim
    settled: set[str] = field(default_factory=set)  # weights files proven changed from their header
    weights_read: bool = False  # whether any bytes of weights were checked (samples)

    def level(self, text: str) -> None:
        if text not in self.levels:
            self.levels.append(text)


def audit_mirror(
    hub: Hub,
    ref: RepoRef,
    reference: Checkpoint,
    *,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    options: AuditOptions = AuditOptions(),
    reference_label: str = "reference",
) -> Report:
    """Audit one hub repository against a reference; raises HubError when it cannot be read."""
    snapshot = hub.snapshot(ref)
    offered = [f for f in snapshot.files if not is_ignored(f.path, ignore)]
    if options.full:
        report = _full(hub, snapshot, offered, reference, reference_label)
    else:
        report = _partial(hub, snapshot, offered, reference, options, reference_label)
    facts = {
        "mirror": {
            "repo": ref.repo_id,
            "revision": ref.revision or "main",
            "commit": snapshot.commit,
            "requests": hub.requests[ref.repo_id],
            "bytes": hub.received[ref.repo_id],
        }
    }
    return Report(
        verdict=report.verdict,
        reasons=report.reasons,
        files=report.files,
        tensors=report.tensors,
        reference=reference_label,
        candidate=str(ref),
        evidence=report.evidence,
        refetch=(),
        facts=facts,
    )


def _full(hub: Hub, snapshot: HubSnapshot, offered: list[HubFile], reference: Checkpoint, label: str) -> Report:
    plan = plan_against(reference)
    files: list[FileFingerprint] = []
    for f in offered:
        wanted = plan(f.path)
        if wanted.digests or wanted.parts:
            streamed = stream_fingerprint(hub, snapshot, f, wanted)
            if streamed.error is not None and streamed.digests:  # every byte came, but no valid container:
                streamed = dataclasses.replace(streamed, error=None)  # compared whole, it is a modified file
            files.append(streamed)
        else:  # a file the reference does not know and that cannot hold its tensors: listed, not read
            files.append(FileFingerprint(f.path, f.size, role_of(f.path, is_weights_file(f.path))))
    indexes = tuple(_index(hub, snapshot, f, offered) for f in offered if role_of(f.path, False) is Role.INDEX)
    weight_map = {e.tensor: e.path for index in indexes for e in index.entries if e.path is not None}
    candidate = Checkpoint(tuple(files), weight_map=weight_map, indexes=indexes)
    return compare(reference, candidate, reference_label=label, evidence=EVIDENCE_FULL)


def _index(hub: Hub, snapshot: HubSnapshot, f: HubFile, offered: list[HubFile]) -> ShardIndex:
    """A mirror's shard index, read whole (it is small and capped): a loading instruction to check."""
    if f.size is not None and f.size > INDEX_CAP:
        return ShardIndex(f.path, error=f"larger than {INDEX_CAP >> 20} MiB, not read")
    data = bytearray()
    for chunk in hub.stream(snapshot, f.path, f.size):
        data += chunk
        if len(data) > INDEX_CAP:
            return ShardIndex(f.path, error=f"larger than {INDEX_CAP >> 20} MiB, not read")
    present = {g.path for g in offered}
    return parse_index(f.path, bytes(data), present.__contains__)


def stream_fingerprint(hub: Hub, snapshot: HubSnapshot, f: HubFile, plan: HashPlan) -> FileFingerprint:
    """Fingerprint a hub file from its bytes as they stream, keeping nothing.

    safetensors (header first) is hashed on the fly; a container indexed elsewhere (PyTorch zip at its
    end, legacy pickles, GGUF) is written to a temporary file while it streams, hashed there as on disk,
    then deleted.
    """
    import tempfile
    from pathlib import Path

    if not (plan.parts and is_weights_file(f.path) and not _is_safetensors(f.path)):
        return hash_chunks(f.path, hub.stream(snapshot, f.path, f.size), f.size, plan)
    with tempfile.TemporaryDirectory(prefix="provenance-audit-") as tmp:
        target = Path(tmp) / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in hub.stream(snapshot, f.path, f.size):
                out.write(chunk)
        return hash_file(Path(tmp), f.path, plan, strict=False)


def _partial(
    hub: Hub, snapshot: HubSnapshot, offered: list[HubFile], reference: Checkpoint, options: AuditOptions, label: str
) -> Report:
    audit = _Audit()
    audit.level("metadata (sizes and the uploader's sha256 claims, not a proof)")
    by_path = {f.path: f for f in offered}
    unsettled: list[FileFingerprint] = []  # reference weights files whose bytes differ or moved
    for ref in reference.files:
        got = by_path.get(ref.path)
        if got is None:
            audit.files[ref.path] = FileResult(ref.path, FileStatus.MISSING, ref.role.value, None, ref.size)
            if ref.has_layout:
                unsettled.append(ref)
            continue
        status, detail = _by_metadata(hub, snapshot, ref, got, reference, audit)
        if status is FileStatus.MODIFIED and ref.has_layout:
            unsettled.append(ref)
        audit.files[ref.path] = FileResult(ref.path, status, ref.role.value, got.size, ref.size, detail)
    known = {f.path for f in reference.files}
    extra = [f for f in offered if f.path not in known]
    for f in extra:
        role = role_of(f.path, is_weights_file(f.path))
        audit.files[f.path] = FileResult(f.path, FileStatus.EXTRA, role.value, f.size, None, None)

    candidates = [f for f in offered if _is_safetensors(f.path) and (f.path not in known or _unsettled(f, unsettled))]
    if reference.tensor_level and (unsettled or candidates or options.spot_check):
        chunked = {f.path for f in reference.files if f.pieces is not None}
        wanted = [f for f in offered if _is_safetensors(f.path) and f.path not in chunked] if options.spot_check else []
        for f in {f.path: f for f in [*candidates, *wanted]}.values():
            _read_header(hub, snapshot, f, audit)
        if audit.headers:
            audit.level(f"safetensors headers of {len(audit.headers)} file(s)")
        _compare_headers(reference, unsettled, extra, audit)
    if options.spot_check:
        _spot_check(hub, snapshot, reference, by_path, options, audit)
    verdict = _decide(reference, audit, extra)
    return Report(
        verdict=verdict,
        reasons=tuple(audit.reasons),
        files=tuple(audit.files.values()),
        tensors=tuple(audit.tensors),
        reference=label,
        candidate=str(snapshot.ref),
        evidence="; ".join(audit.levels),
    )


def _is_safetensors(path: str) -> bool:
    """Whether a range request of the file's header gives its tensor table and its container digest (all
    the bytes outside the tensors are the header's): safetensors, of the formats read."""
    reader = reader_for(path)
    return reader is not None and reader.header_holds_container


def _unsettled(f: HubFile, unsettled: list[FileFingerprint]) -> bool:
    return any(u.path == f.path for u in unsettled)


def _by_metadata(
    hub: Hub, snapshot: HubSnapshot, ref: FileFingerprint, got: HubFile, reference: Checkpoint, audit: _Audit
) -> tuple[FileStatus, str | None]:
    if ref.size is not None and ref.size != got.size:
        audit.suspect.add(got.path)
        return FileStatus.MODIFIED, f"{got.size:,} bytes, expected {ref.size:,}"
    if not got.lfs:  # kept in git: small, so read whole (streamed, not kept) and hashed as `verify` would
        audit.level("files kept in git read whole")
        plan = plan_against(reference)(got.path)
        if "sha256" in ref.digests and not plan.digests:
            plan = HashPlan(frozenset({"sha256"}), parts=plan.parts)
        status, detail = file_status_of(
            ref, hash_chunks(got.path, hub.stream(snapshot, got.path, got.size), got.size, plan)
        )
        return status, detail
    claimed = ref.digests.get("sha256")
    if claimed is None:
        return FileStatus.UNDECIDED, "the release records no sha256 to hold the hub's claim against"
    if got.sha256 == claimed:
        return FileStatus.MATCH, "the hub's sha256 claim matches"
    audit.suspect.add(got.path)
    return FileStatus.MODIFIED, "the hub claims another sha256"


def _read_header(hub: Hub, snapshot: HubSnapshot, f: HubFile, audit: _Audit) -> None:
    """Record a safetensors file's tensor table from its header, or, when the header does not validate
    or promises more bytes than the file has, what that says about the file."""
    try:
        tensors, digest, expected = _header(hub, snapshot, f)
    except MalformedContainer as exc:
        _set(audit, f.path, FileStatus.MODIFIED, f"its safetensors header does not validate: {exc.reason}")
        audit.settled.add(f.path)
        return
    if expected > f.size:
        _set(audit, f.path, FileStatus.CORRUPT, f"cut short: {f.size:,} of {expected:,} bytes")
    audit.headers[f.path], audit.header_blake3[f.path] = tensors, digest


def _set(audit: _Audit, path: str, status: FileStatus, detail: str) -> None:
    previous = audit.files[path]
    audit.files[path] = dataclasses.replace(previous, status=status, detail=detail)


def _header(hub: Hub, snapshot: HubSnapshot, f: HubFile) -> tuple[tuple[TensorFingerprint, ...], str, int]:
    """A safetensors file's tensor table, from its header fetched by range request (values not read), the
    BLAKE3 of the header's bytes (in safetensors all the bytes outside the tensors, so they compare with
    the manifest's container_blake3), and the size the header promises."""
    import io

    reader = reader_for(f.path)
    head = b""
    need: int | None = min(f.size, HEAD_GUESS)
    while reader is not None and need is not None and need > len(head):  # fetch what the reader asks for
        head += hub.read_range(snapshot, f.path, len(head), need)
        need = reader.header_extent(head, f.size, f.path)
    if reader is None or need is None:  # not a file this is asked of (_is_safetensors)
        raise MalformedContainer(f.path, "its layout is not in its first bytes")
    layout = reader.read_layout(io.BytesIO(head[:need]), f.size, f.path)
    tensors = tuple(TensorFingerprint(t.name, t.dtype, t.shape, t.start, t.end, None) for t in layout.tensors)
    return tensors, blake3(head[:need]).hexdigest(), layout.expected_size


def _compare_headers(
    reference: Checkpoint, unsettled: list[FileFingerprint], extra: list[HubFile], audit: _Audit
) -> None:
    """Settle what headers can: a tensor removed, added, or with another dtype or shape is a change;
    the same table in another layout leaves the values undecided; a header that differs from the
    release's in a file whose sha256 claim matches shows the claim is false."""
    for ref in reference.files:
        result = audit.files.get(ref.path)
        if result is None or result.status is not FileStatus.MATCH or ref.path not in audit.headers:
            continue
        table = [(t.name, t.dtype, t.shape, t.start, t.end) for t in ref.tensors]
        same_table = table == [(t.name, t.dtype, t.shape, t.start, t.end) for t in audit.headers[ref.path]]
        if not same_table or audit.header_blake3[ref.path] != ref.container_blake3:
            _set(
                audit, ref.path, FileStatus.MODIFIED, "its header differs from the release's: the sha256 claim is false"
            )
            audit.settled.add(ref.path)
            unsettled = [*unsettled, ref]
    found: dict[str, tuple[str, TensorFingerprint]] = {}
    for path, tensors in audit.headers.items():
        for t in tensors:
            found.setdefault(t.name, (path, t))
    ref_names = {t.name for f in reference.files for t in f.tensors}
    lost = {f.path for f in unsettled if audit.files[f.path].status is FileStatus.MISSING}
    same = 0
    for ref in unsettled:
        for t in ref.tensors:
            hit = found.get(t.name)
            if hit is None:
                status = TensorStatus.MISSING
                audit.tensors.append(TensorResult(t.name, status, ref.path, t.dtype, t.shape))
                continue
            path, c = hit
            if (c.dtype, c.shape) != (t.dtype, t.shape):
                detail = f"dtype {c.dtype}, expected {t.dtype}" if c.dtype != t.dtype else f"shape {list(c.shape)}"
                audit.tensors.append(
                    TensorResult(t.name, TensorStatus.MODIFIED, ref.path, t.dtype, t.shape, None, path, detail)
                )
            else:
                same += 1
    added = [t.name for path in audit.headers for t in audit.headers[path] if t.name not in ref_names]
    for path, tensors in audit.headers.items():
        for t in tensors:
            if t.name not in ref_names:
                audit.tensors.append(TensorResult(t.name, TensorStatus.EXTRA, None, t.dtype, t.shape, None, path))
    for ref in unsettled:
        if ref.path in lost or ref.path in audit.settled or audit.header_blake3.get(ref.path) != ref.container_blake3:
            continue
        if audit.files[ref.path].status is not FileStatus.MODIFIED:
            continue
        offsets = [(t.name, t.start, t.end) for t in ref.tensors]
        if offsets == [(t.name, t.start, t.end) for t in audit.headers[ref.path]]:
            previous = audit.files[ref.path]
            detail = "same header, tensor bytes differ (by the hub's sha256)"
            audit.files[ref.path] = dataclasses.replace(previous, detail=detail)
            audit.settled.add(ref.path)
    missing = [t for t in audit.tensors if t.status is TensorStatus.MISSING]
    if missing and all(t.file in lost for t in missing) and not any(f.path.endswith(".safetensors") for f in extra):
        audit.reasons.append(f"{len(missing)} tensor(s) missing with their shard")
    if same:
        audit.reasons.append(
            f"{same} tensor(s) of the files that differ or moved agree by name, dtype and shape; "
            "their values were not read"
        )
    if added:
        audit.reasons.append(f"{len(added)} tensor(s) added: {', '.join(added[:3])}")


class _Unit(NamedTuple):
    """One range a spot check can fetch, and the hash it must have."""

    file: str
    start: int
    end: int
    expected: str
    kind: str  # "chunk", or the name of the tensor the range holds
    one_piece: bool = False
    piece_length: int = 0


def _units(reference: Checkpoint, by_path: dict[str, HubFile], audit: _Audit) -> list[_Unit]:
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
    for path, tensors in audit.headers.items():
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


def _spot_check(
    hub: Hub,
    snapshot: HubSnapshot,
    reference: Checkpoint,
    by_path: dict[str, HubFile],
    options: AuditOptions,
    audit: _Audit,
) -> None:
    units = _units(reference, by_path, audit)
    if not units:
        audit.reasons.append(
            "nothing to spot-check: the manifest has neither chunk hashes nor tensor digests to sample"
        )
        return
    chooser = random.Random(options.seed)
    suspect = [u for u in units if u.file in audit.suspect]  # where the metadata already says bytes differ
    rest = [u for u in units if u.file not in audit.suspect]
    chooser.shuffle(suspect)
    chooser.shuffle(rest)
    picked = (suspect + rest)[: options.spot_check]
    bad: list[str] = []
    for path, start, end, expected, kind, one_piece, piece_length in sorted(picked):
        body = hub.read_range(snapshot, path, start, end)
        actual = piece_hash(body, piece_length, one_piece) if kind == "chunk" else blake3(body).hexdigest()
        if actual == expected:
            continue
        bad.append(f"{path} bytes {start:,}-{end - 1:,}" + ("" if kind == "chunk" else f" ({kind})"))
        previous = audit.files.get(path)
        if previous is not None and previous.status is not FileStatus.MISSING:
            detail = "sampled bytes differ from the release"
            audit.files[path] = FileResult(
                path, FileStatus.MODIFIED, previous.role, previous.size, previous.expected_size, detail
            )
        if kind != "chunk":
            r = next(t for f in reference.files for t in f.tensors if t.name == kind)
            audit.tensors.append(
                TensorResult(
                    kind,
                    TensorStatus.MODIFIED,
                    _file_of(reference, kind),
                    r.dtype,
                    r.shape,
                    None,
                    path,
                    "sampled: values differ",
                )
            )
    kinds = {"chunks" if u.kind == "chunk" else "tensors" for u in picked}
    asked = f" of {options.spot_check} asked for" if len(picked) < options.spot_check else ""
    audit.level(f"{len(picked)}{asked} sampled {' and '.join(sorted(kinds))} ({len(picked) - len(bad)} matched)")
    audit.weights_read = bool(picked)
    if bad:
        audit.reasons.append(
            f"{len(bad)} of {len(picked)} sampled ranges differ from the release: {', '.join(bad[:3])}"
        )


def _file_of(reference: Checkpoint, tensor: str) -> str | None:
    return next((f.path for f in reference.files if any(t.name == tensor for t in f.tensors)), None)


def _decide(reference: Checkpoint, audit: _Audit, extra: Iterable[HubFile]) -> Verdict:
    files = list(audit.files.values())
    changed_tensors = [t for t in audit.tensors if t.status in (TensorStatus.MODIFIED, TensorStatus.EXTRA)]
    changed_files = [f for f in files if f.status is FileStatus.MODIFIED and f.role != Role.INDEX.value]
    header_settled = {f.path for f in reference.files if f.has_layout} if audit.headers else set()
    plain_changes = [
        f
        for f in changed_files
        if f.name not in header_settled
        or f.name in audit.settled
        or f.detail == "sampled bytes differ from the release"
    ]
    # Added files a loader or framework may pick up (code, configs, templates): the release has none of them.
    picked = [f.path for f in extra if not is_inert(f.path) and role_of(f.path, is_weights_file(f.path)) is Role.OTHER]
    if changed_tensors or plain_changes or picked:
        for f in plain_changes:
            audit.reasons.insert(0, f"{f.name}: {f.detail}")
        if picked:
            audit.reasons.append(f"the mirror adds {len(picked)} file(s) a loader may pick up: {', '.join(picked[:3])}")
        return Verdict.MODIFIED
    missing = [t for t in audit.tensors if t.status is TensorStatus.MISSING]
    lost = [f for f in files if f.status in (FileStatus.MISSING, FileStatus.CORRUPT) and f.role != Role.INDEX.value]
    moved = [
        f for f in files if f.name in header_settled and f.status is FileStatus.MODIFIED and f.name not in audit.settled
    ]
    added_weights = [f.path for f in extra if is_weights_file(f.path)]
    if missing and not lost:
        audit.reasons.append(f"{len(missing)} tensor(s) removed: {', '.join(t.name for t in missing[:3])}")
        return Verdict.MODIFIED
    undecided = [f for f in files if f.status is FileStatus.UNDECIDED]
    # A shard index is a loading instruction: one that is not the release's byte for byte is read under --full.
    indexes = [
        f.name for f in files if f.role == Role.INDEX.value and f.status in (FileStatus.MODIFIED, FileStatus.EXTRA)
    ]
    if moved or undecided or added_weights or indexes:
        if indexes:
            audit.reasons.append(
                f"the mirror's shard index ({', '.join(indexes[:3])}) is not the release's: --full reads it and "
                "decides where it sends each tensor"
            )
        if moved:
            audit.reasons.append(
                "the weights differ from the release's files in bytes or layout but not in their tensor table: "
                "--full streams every byte and decides (--spot-check only samples)"
            )
        if added_weights:
            audit.reasons.append(
                f"the mirror adds weights file(s) whose values were not read: {', '.join(added_weights[:3])}; "
                "--full decides"
            )
        if undecided:
            audit.reasons.append("the hub's metadata cannot be held against this reference: --full decides")
        return Verdict.UNDECIDED
    if lost or missing:
        for f in lost:
            audit.reasons.append(
                f"{f.name} is missing" if f.status is FileStatus.MISSING else f"{f.name} is {f.detail}"
            )
        return Verdict.INCOMPLETE
    if any(f.status not in (FileStatus.MATCH, FileStatus.EXTRA) and f.role != Role.INDEX.value for f in files):
        audit.reasons.append("some files could not be settled from what was read: --full decides")
        return Verdict.UNDECIDED
    audit.reasons.append(
        "every file of the release is on the mirror with the size and sha256 the release records"
        + ("" if audit.weights_read else " (the hub's claim: --spot-check or --full checks the bytes)")
    )
    return Verdict.IDENTICAL


@dataclass(frozen=True, slots=True)
class MirrorResult:
    """One mirror's report, or why it could not be audited."""

    ref: RepoRef
    report: Report | None
    error: str | None = None


def audit_mirrors(
    targets: list[str],
    manifest: str | Path,
    *,
    search: str | None = None,
    limit: int = 50,
    options: AuditOptions = AuditOptions(),
    keys: list[Path] | None = None,
    allow_older: bool = False,
    in_flight: int = 8,
    endpoint: str | None = None,
) -> list[MirrorResult]:
    """Audit hub mirrors (`hf://ORG/REPO[@REV]` targets, plus the models a `search` finds) against the
    reference `manifest` names, from the least evidence that settles each: metadata, headers, `options`'
    spot checks or every byte. The `provenance audit hf://...` operation.

    Every mirror is audited concurrently, at most `in_flight` requests open at once. A mirror that cannot
    be read gets its error in its MirrorResult, not a verdict (the command exits 2 then, else 1 when a
    verdict fails, else 0), unless it is the only one: then its error (a HubError, exit 2, when the hub
    cannot be read) is raised. Raises ProvenanceError (exit 2) when there is no mirror to audit;
    SignatureError (exit 3) for the reference, as `verify` does.
    """
    reference = open_checked(manifest, keys=keys, allow_older=allow_older)
    hub = Hub(endpoint, in_flight=in_flight)
    refs = [RepoRef.parse(t) for t in targets]
    if search:
        refs += [r for r in hub.search(search, limit) if r not in refs]
    if not refs:
        raise ProvenanceError("no mirror to audit: give hf://ORG/REPO targets or a --search that finds some")
    label = reference.label

    def one(ref: RepoRef) -> MirrorResult:
        try:
            report = audit_mirror(
                hub,
                ref,
                reference.manifest.checkpoint,
                ignore=reference.manifest.ignore_paths,
                options=options,
                reference_label=label,
            )
        except ProvenanceError as exc:
            if len(refs) == 1:
                raise
            return MirrorResult(ref, None, str(exc))
        return MirrorResult(ref, finish(report, reference))

    with ThreadPoolExecutor(max_workers=max(1, min(len(refs), in_flight))) as pool:
        return list(pool.map(one, refs))
