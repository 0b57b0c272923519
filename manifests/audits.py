"""Audits against a reference: mirrors on the hub, the local hub cache, and hub repositories fingerprinted
into manifests. Each opens its reference (signature, trust, rollback) exactly as `verify` does."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import provenance
from manifests.model import Manifest, build_manifest
from manifests.reference import REGISTRY_PREFIX, Reference, open_reference, registry_names
from manifests.trust import SeenReleases, load_trust
from provenance.audit import AuditOptions, audit_mirror, stream_fingerprint
from provenance.engine import HashPlan
from provenance.errors import HubError, ProvenanceError
from provenance.fingerprint import Checkpoint, FileFingerprint, role_of
from provenance.formats.detect import is_weights_file
from provenance.identify import Candidate
from provenance.paths import DEFAULT_IGNORE, is_ignored
from provenance.report import Report
from provenance.scan import ProgressReporter, fingerprint_plan
from provenance.sources.cache import CachedSnapshot, audit_cache
from provenance.sources.hub import Hub, RepoRef


@dataclass(frozen=True, slots=True)
class MirrorResult:
    """One mirror's report, or why it could not be audited."""

    ref: RepoRef
    report: Report | None
    error: str | None = None


def _reference(manifest: str | Path, keys: list[Path] | None, allow_older: bool) -> Reference:
    return open_reference(manifest, trust=load_trust(keys), seen=SeenReleases(), allow_older=allow_older)


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
    """The `provenance audit hf://...` operation: every mirror audited concurrently, at most `in_flight`
    requests open at once. A mirror that cannot be read gets its error, not a verdict."""
    reference = _reference(manifest, keys, allow_older)
    hub = Hub(endpoint, in_flight=in_flight)
    refs = [RepoRef.parse(t) for t in targets]
    if search:
        refs += [r for r in hub.search(search, limit) if r not in refs]
    if not refs:
        raise ProvenanceError("no mirror to audit: give hf://ORG/REPO targets or a --search that finds some")
    label = f"{reference.manifest.release.name} ({reference.source})"

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
        return MirrorResult(
            ref, dataclasses.replace(report, signature=reference.signature, warnings=reference.warnings)
        )

    with ThreadPoolExecutor(max_workers=max(1, min(len(refs), in_flight))) as pool:
        return list(pool.map(one, refs))


def audit_local_cache(
    cache_dir: Path | None,
    manifests: list[str] | None = None,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
) -> list[CachedSnapshot]:
    """The `provenance audit cache` operation, offline: blobs against their own ETags, and each snapshot
    against the given manifests (or, without any, the registry's) that describe it."""
    names = manifests if manifests else [f"{REGISTRY_PREFIX}{name}" for name in registry_names()]
    references = [_reference(name, keys, allow_older) for name in names]
    by_label = {f"{r.manifest.release.name} ({r.source})": r for r in references}

    def verify(root: Path, checkpoint: Checkpoint, label: str, ignore: tuple[str, ...]) -> Report:
        report = provenance.verify(root, checkpoint, reference_label=label, allow_symlinks=True, ignore=ignore)
        ref = by_label[label]
        return dataclasses.replace(report, signature=ref.signature, warnings=ref.warnings)

    return audit_cache(
        cache_dir,
        [(label, r.manifest.checkpoint, r.manifest.ignore_paths) for label, r in by_label.items()],
        verify=verify,
    )


def fingerprint_hub(
    spec: str, name: str | None = None, *, full: bool = False, piece_length: int = 0, endpoint: str | None = None
) -> Manifest:
    """A manifest of a hub repository: from its metadata (file level: sizes and the LFS sha256 the hub
    claims; files kept in git are read whole), or with `full`, from every byte streamed (tensor level)."""
    ref = RepoRef.parse(spec)
    hub = Hub(endpoint)
    snapshot = hub.snapshot(ref)
    plan = fingerprint_plan(piece_length)
    files: list[FileFingerprint] = []
    for f in snapshot.files:
        if is_ignored(f.path, DEFAULT_IGNORE):  # .gitattributes and the like, as a local fingerprint leaves them out
            continue
        if full or not f.lfs:
            fingerprint = stream_fingerprint(
                hub, snapshot, f, plan(f.path) if full else HashPlan(frozenset({"sha256", "blake3"}))
            )
            if fingerprint.error is not None:
                raise HubError(f"{ref}: {f.path}: {fingerprint.error}")
            files.append(fingerprint)
        else:
            assert f.sha256 is not None
            files.append(
                FileFingerprint(f.path, f.size, role_of(f.path, is_weights_file(f.path)), digests={"sha256": f.sha256})
            )
    if not files:
        raise HubError(f"{ref}: the repository holds no files")
    return build_manifest(Checkpoint(tuple(files)), name or f"{ref.repo_id}@{snapshot.commit[:12]}")


def identify_path(
    target: Path,
    registries: list[Path] | None = None,
    *,
    patterns: tuple[str, ...] = (),
    allow_older: bool = False,
    progress: ProgressReporter | None = None,
) -> list[Candidate]:
    """The `provenance identify` operation: the checkpoint against every registry manifest (bundled, the
    user's, and each `registries` folder), best first. Signatures are checked as `verify` checks them,
    without requiring one, rollback included: a signed manifest older than one verified before is refused
    (exit 3) without `allow_older`."""
    from provenance.identify import identify, read_for_identify

    specs: list[str | Path] = [f"{REGISTRY_PREFIX}{name}" for name in registry_names()]
    for folder in registries or []:
        if not folder.is_dir():
            raise ProvenanceError(f"{folder} is not a folder of manifests; give --registry DIR")
        specs += sorted(p for p in folder.iterdir() if p.suffix in (".json", ".sig") and p.is_file())
    references = []
    for spec in specs:
        reference = _reference(spec, None, allow_older)
        references.append((reference.manifest.release.name, reference.source, reference.manifest.checkpoint))
    if not references:
        raise ProvenanceError("no registered release to compare with: add manifests with --registry DIR")
    root = target if target.is_dir() else target.parent
    return identify(read_for_identify(target, patterns=patterns, progress=progress), references, root)
