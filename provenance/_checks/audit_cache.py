"""`provenance audit cache`: the local hub cache, offline; blobs against their own ETags, snapshots against
the releases that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from manifests.reference import REGISTRY_PREFIX, Reference, registry_names
from provenance._checks.common import ReadOptions, finish, open_checked
from provenance._checks.verify import verify_checkpoint
from provenance._sources.hub_cache import BlobCheck, Revision, read_cache
from provenance.report import Report

# A snapshot's files are links into the cache's blobs: followed wherever they lead.
_SNAPSHOT = ReadOptions(allow_symlinks=True)


@dataclass(frozen=True, slots=True)
class CachedSnapshot:
    """One revision of one repository in the cache, and what checking it found."""

    repo_id: str
    repo_type: str
    commit: str
    refs: tuple[str, ...]
    path: Path
    files: tuple[str, ...]
    corrupt: tuple[tuple[str, str], ...] = ()  # (file, why) for blobs that do not hash to their own name
    report: Report | None = None  # against the reference that describes this snapshot, when one does
    reference: str | None = None

    @property
    def passes(self) -> bool:
        return not self.corrupt and (self.report is None or self.report.verdict.passes)


def audit_cache(
    cache_dir: Path | None,
    manifests: list[str] | None = None,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
    require_signature: bool = False,
) -> list[CachedSnapshot]:
    """Audit the local Hugging Face Hub cache (`cache_dir`, default huggingface_hub's), offline: every blob
    against the ETag it is stored under, and each snapshot against the given manifests (or, without any,
    the registry's) that describe it. The `provenance audit cache` operation.

    A snapshot `passes` when no blob is corrupt and its report (if a reference describes it) passes; the
    command exits 1 when one does not. Raises UnreadableInput (exit 2) when there is no readable cache;
    SignatureError (exit 3) and ProvenanceError (exit 2) for a reference, as `verify` does.
    """
    names = manifests if manifests else [f"{REGISTRY_PREFIX}{name}" for name in registry_names()]
    references = [open_checked(name, keys=keys, allow_older=allow_older, require=require_signature) for name in names]
    by_label = list({r.label: r for r in references}.values())  # one per label, the last opened
    contents = read_cache(cache_dir)
    blobs = BlobCheck()
    results = [_audited(revision, blobs.corrupt(revision), by_label) for revision in contents.revisions]
    for repo_path, why in contents.damaged:  # a repository the scanner found damaged (a missing blob, a bad ref)
        results.append(CachedSnapshot("(unreadable)", "", "", (), repo_path, (), (("", why),)))
    return results


def _audited(revision: Revision, corrupt: tuple[tuple[str, str], ...], references: list[Reference]) -> CachedSnapshot:
    """A revision with its corrupt blobs, verified against the reference that describes it, if one does."""
    match = _best_reference(revision.files, references)
    report = None
    if match is not None:
        manifest = match.manifest
        checked = verify_checkpoint(
            revision.path,
            manifest.checkpoint,
            reference_label=match.label,
            options=_SNAPSHOT,
            ignore=manifest.ignore_paths,
        )
        report = finish(checked, match)
    return CachedSnapshot(
        revision.repo_id,
        revision.repo_type,
        revision.commit,
        revision.refs,
        revision.path,
        revision.files,
        corrupt,
        report,
        match.label if match is not None else None,
    )


def _best_reference(names: tuple[str, ...], references: list[Reference]) -> Reference | None:
    """The reference sharing the most files with the snapshot, if it shares at least half of its own."""
    have = set(names)
    best: tuple[int, Reference] | None = None
    for reference in references:
        wanted = {f.path for f in reference.manifest.checkpoint.files}
        shared = len(wanted & have)
        if shared * 2 >= len(wanted) and shared and (best is None or shared > best[0]):
            best = (shared, reference)
    return best[1] if best else None
