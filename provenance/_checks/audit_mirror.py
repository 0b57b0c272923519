"""Audit a mirror on the hub against a reference, with the least evidence that settles it.

Levels, cheapest first: the hub's metadata (sizes, and the sha256 the uploader's LFS pointer claims);
files kept in git, read whole (they are small); safetensors headers fetched by range request (names,
dtypes, shapes, offsets); sampled bytes (`spot_check` random chunks or tensors checked against the
manifest's chunk hashes or tensor digests); all bytes (`full`: every file streamed through the hasher,
nothing kept). Every report says which levels its verdict rests on. The metadata and sampled levels are
in mirror_evidence.py; what they established is translated into findings here and decided once.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from manifests.names import DEFAULT_IGNORE, is_ignored
from manifests.records import Checkpoint, FileFingerprint, Role, ShardIndex, TensorFingerprint, is_weights_file, role_of
from manifests.reference import Reference
from provenance._checks.common import finish, open_checked
from provenance._checks.mirror_evidence import MirrorAudit as _Audit  # the name the header level is written against
from provenance._checks.mirror_evidence import findings, metadata, spot_check
from provenance._formats.detect import reader_for
from provenance._hashing.cluster import scheduler_from
from provenance._hashing.engine import HashPlan, hash_chunks, hash_file
from provenance._hashing.scan import INDEX_CAP, ProgressReporter, parse_index, plan_against
from provenance._judging.compare import judge
from provenance._judging.verdict import Judgement, decide
from provenance._judging.wording import plural
from provenance._sources.hub import Hub, Mirror
from provenance._sources.hub_refs import HubFile, HubSnapshot, RepoRef
from provenance.errors import MalformedContainer, ProvenanceError
from provenance.report import FileResult, FileStatus, Report, TensorResult, TensorStatus

HEAD_GUESS = 16 << 10  # first range request for a header; a longer one takes what the reader says it needs
EVIDENCE_FULL = (
    "all bytes: every file streamed from the hub and hashed, nothing kept (containers indexed at their end "
    "are spooled to a temporary file while hashed)"
)


@dataclass(frozen=True, slots=True)
class AuditOptions:
    spot_check: int = 0  # random chunks or tensors to fetch and check
    full: bool = False  # stream every byte
    seed: int | None = None  # for reproducible spot checks


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
    mirror = Mirror.open(hub, ref)
    offered = [f for f in mirror.snapshot.files if not is_ignored(f.path, ignore)]
    if options.full:
        judgement, evidence = _full(mirror, offered, reference), EVIDENCE_FULL
    else:
        judgement, evidence = _partial(mirror, offered, reference, options)
    facts = {
        "mirror": {
            "repo": ref.repo_id,
            "revision": ref.revision or "main",
            "commit": mirror.snapshot.commit,
            "requests": hub.requests[ref.repo_id],
            "bytes": hub.received[ref.repo_id],
        }
    }
    return judgement.report(reference=reference_label, candidate=str(ref), evidence=evidence, facts=facts)


def _full(mirror: Mirror, offered: list[HubFile], reference: Checkpoint) -> Judgement:
    """Every file the reference can judge streamed and fingerprinted, then compared as on disk."""
    plan = plan_against(reference)
    files: list[FileFingerprint] = []
    for f in offered:
        wanted = plan(f.path)
        if wanted.digests or wanted.parts:
            streamed = stream_fingerprint(mirror, f, wanted)
            if streamed.error is not None and streamed.digests:  # every byte came, but no valid container:
                streamed = dataclasses.replace(streamed, error=None)  # compared whole, it is a modified file
            files.append(streamed)
        else:  # a file the reference does not know and that cannot hold its tensors: listed, not read
            files.append(FileFingerprint(f.path, f.size, role_of(f.path, is_weights_file(f.path))))
    indexes = tuple(_index(mirror, f, offered) for f in offered if role_of(f.path, False) is Role.INDEX)
    weight_map = {e.tensor: e.path for index in indexes for e in index.entries if e.path is not None}
    return judge(reference, Checkpoint(tuple(files), weight_map=weight_map, indexes=indexes))


def _index(mirror: Mirror, f: HubFile, offered: list[HubFile]) -> ShardIndex:
    """A mirror's shard index, read whole (it is small and capped): a loading instruction to check."""
    if f.size is not None and f.size > INDEX_CAP:
        return ShardIndex(f.path, error=f"larger than {INDEX_CAP >> 20} MiB, not read")
    data = bytearray()
    for chunk in mirror.stream(f.path, f.size):
        data += chunk
        if len(data) > INDEX_CAP:
            return ShardIndex(f.path, error=f"larger than {INDEX_CAP >> 20} MiB, not read")
    present = {g.path for g in offered}
    return parse_index(f.path, bytes(data), present.__contains__)


def stream_fingerprint(mirror: Mirror, f: HubFile, plan: HashPlan) -> FileFingerprint:
    """Fingerprint a hub file from its bytes as they stream, keeping nothing.

    safetensors (header first) is hashed on the fly; a container indexed elsewhere (PyTorch zip at its
    end, legacy pickles, GGUF) is written to a temporary file while it streams, hashed there as on disk,
    then deleted.
    """
    import tempfile

    if not (plan.parts and is_weights_file(f.path) and not _is_safetensors(f.path)):
        return hash_chunks(f.path, mirror.stream(f.path, f.size), f.size, plan)
    with tempfile.TemporaryDirectory(prefix="provenance-audit-") as tmp:
        target = Path(tmp) / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in mirror.stream(f.path, f.size):
                out.write(chunk)
        return hash_file(Path(tmp), f.path, plan, strict=False)


def _partial(
    mirror: Mirror, offered: list[HubFile], reference: Checkpoint, options: AuditOptions
) -> tuple[Judgement, str]:
    """Metadata, then headers where they can settle something, then samples: the judgement and the levels
    it rests on."""
    audit = _Audit()
    audit.level("metadata (sizes and the uploader's sha256 claims, not a proof)")
    by_path = {f.path: f for f in offered}
    unsettled = metadata(mirror, reference, by_path, audit)
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
            _read_header(mirror.hub, mirror.snapshot, f, audit)
        if audit.headers:
            audit.level(f"safetensors headers of {plural(len(audit.headers), 'file')}")
        _compare_headers(reference, unsettled, extra, audit)
    if options.spot_check:
        sampled = spot_check(mirror, reference, by_path, audit.headers, options.spot_check, options.seed, audit.suspect)
        audit.record(sampled)
    verdict, reasons = decide(findings(reference, audit, extra))
    judgement = Judgement(verdict, reasons, tuple(audit.files.values()), tuple(audit.tensors))
    return judgement, "; ".join(audit.levels)


def _is_safetensors(path: str) -> bool:
    """Whether a range request of the file's header gives its tensor table and its container digest (all
    the bytes outside the tensors are the header's): safetensors, of the formats read."""
    reader = reader_for(path)
    return reader is not None and reader.header_holds_container


def _unsettled(f: HubFile, unsettled: list[FileFingerprint]) -> bool:
    return any(u.path == f.path for u in unsettled)


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
    audit.set(path, status, detail)


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
    unsettled = _disproved_claims(reference, unsettled, audit)
    ref_names = {t.name for f in reference.files for t in f.tensors}
    lost = {f.path for f in unsettled if audit.files[f.path].status is FileStatus.MISSING}
    same = _tensors_by_header(unsettled, audit)
    added = [t.name for path in audit.headers for t in audit.headers[path] if t.name not in ref_names]
    for path, tensors in audit.headers.items():
        for t in tensors:
            if t.name not in ref_names:
                audit.tensors.append(TensorResult(t.name, TensorStatus.EXTRA, None, t.dtype, t.shape, None, path))
    _same_headers(unsettled, lost, audit)
    missing = [t for t in audit.tensors if t.status is TensorStatus.MISSING]
    if missing and all(t.file in lost for t in missing) and not any(f.path.endswith(".safetensors") for f in extra):
        audit.reasons.append(f"{plural(len(missing), 'tensor')} missing with their shard")
    if same:
        audit.reasons.append(
            f"{plural(same, 'tensor')} of the files that differ or moved agree by name, dtype and shape; "
            "their values were not read"
        )
    if added:
        audit.reasons.append(f"{plural(len(added), 'tensor')} added: {', '.join(added[:3])}")


def _disproved_claims(reference: Checkpoint, unsettled: list[FileFingerprint], audit: _Audit) -> list[FileFingerprint]:
    """Files whose sha256 claim matches but whose header is not the release's: the claim is false, the file
    changed; they join the unsettled files to be compared tensor by tensor."""
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
    return unsettled


def _tensors_by_header(unsettled: list[FileFingerprint], audit: _Audit) -> int:
    """Each tensor of the unsettled files looked up in the mirror's headers by name: missing, or changed in
    dtype or shape, recorded; how many agree is returned."""
    found: dict[str, tuple[str, TensorFingerprint]] = {}
    for path, tensors in audit.headers.items():
        for t in tensors:
            found.setdefault(t.name, (path, t))
    same = 0
    for ref in unsettled:
        for t in ref.tensors:
            hit = found.get(t.name)
            if hit is None:
                audit.tensors.append(TensorResult(t.name, TensorStatus.MISSING, ref.path, t.dtype, t.shape))
                continue
            path, c = hit
            if (c.dtype, c.shape) != (t.dtype, t.shape):
                detail = f"dtype {c.dtype}, expected {t.dtype}" if c.dtype != t.dtype else f"shape {list(c.shape)}"
                audit.tensors.append(
                    TensorResult(t.name, TensorStatus.MODIFIED, ref.path, t.dtype, t.shape, None, path, detail)
                )
            else:
                same += 1
    return same


def _same_headers(unsettled: list[FileFingerprint], lost: set[str], audit: _Audit) -> None:
    """A file that differs by the hub's sha256 but whose header is the release's byte for byte: its tensor
    bytes differ, so it is settled as changed."""
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


@dataclass(frozen=True, slots=True)
class MirrorResult:
    """One mirror's report, or why it could not be audited."""

    ref: RepoRef
    report: Report | None
    error: str | None = None
    attempts: int = 1  # on a cluster: more than 1 when its worker died and it ran again on another


def audit_mirrors(
    targets: list[str],
    manifest: str | Path,
    *,
    search: str | None = None,
    limit: int = 50,
    options: AuditOptions = AuditOptions(),
    keys: list[Path] | None = None,
    allow_older: bool = False,
    require_signature: bool = False,
    in_flight: int = 8,
    endpoint: str | None = None,
    scheduler: str | None = None,
    progress: ProgressReporter | None = None,
) -> list[MirrorResult]:
    """Audit hub mirrors (`hf://ORG/REPO[@REV]` targets, plus the models a `search` finds) against the
    reference `manifest` names, from the least evidence that settles each: metadata, headers, `options`'
    spot checks or every byte. The `provenance audit hf://...` operation.

    Every mirror is audited concurrently, at most `in_flight` requests open at once. A mirror that cannot
    be read gets its error in its MirrorResult, not a verdict (the command exits 2 then, else 1 when a
    verdict fails, else 0), unless it is the only one: then its error (a HubError, exit 2, when the hub
    cannot be read) is raised. Raises ProvenanceError (exit 2) when there is no mirror to audit;
    SignatureError (exit 3) for the reference, as `verify` does. With `scheduler` (or
    $DASK_SCHEDULER_ADDRESS), each mirror is one task on that Dask cluster, each with its own `in_flight`
    bound toward the hub; the results are those of one process, in the same order, and a mirror whose
    worker died and which ran again elsewhere says so (`attempts`). `progress` counts mirrors as they end.
    """
    reference = open_checked(manifest, keys=keys, allow_older=allow_older, require=require_signature)
    hub = Hub(endpoint, in_flight=in_flight)
    refs = [RepoRef.parse(t) for t in targets]
    if search:
        refs += [r for r in hub.search(search, limit) if r not in refs]
    if not refs:
        raise ProvenanceError("no mirror to audit: give hf://ORG/REPO targets or a --search that finds some")
    if progress is not None:
        progress.begin(len(refs), "auditing mirrors")
    try:
        if scheduler_from(scheduler) is not None:
            from provenance._checks.audit_cluster import audit_on_cluster

            return audit_on_cluster(scheduler, refs, reference, options, (hub.endpoint, in_flight), progress)

        def one(ref: RepoRef) -> MirrorResult:
            result = audit_one(hub, ref, reference, options, single=len(refs) == 1)
            if progress is not None:
                progress.advance(1)
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(len(refs), in_flight))) as pool:
            return list(pool.map(one, refs))
    finally:
        if progress is not None:
            progress.end()


def audit_one(hub: Hub, ref: RepoRef, reference: Reference, options: AuditOptions, *, single: bool) -> MirrorResult:
    """One mirror's result: its report, or (among several) why it could not be audited."""
    try:
        report = audit_mirror(
            hub,
            ref,
            reference.manifest.checkpoint,
            ignore=reference.manifest.ignore_paths,
            options=options,
            reference_label=reference.label,
        )
    except ProvenanceError as exc:
        if single:
            raise
        return MirrorResult(ref, None, str(exc))
    return MirrorResult(ref, finish(report, reference))
