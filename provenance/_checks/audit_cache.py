"""`provenance audit cache`: the local hub cache, offline; blobs against their own ETags, snapshots against
the releases that describe them."""

from __future__ import annotations

from pathlib import Path

from manifests.records import Checkpoint
from manifests.reference import REGISTRY_PREFIX, registry_names
from provenance._checks.common import finish, open_checked
from provenance._checks.verify import verify_checkpoint
from provenance._sources.hub_cache import CachedSnapshot, check_cache
from provenance.report import Report


def audit_cache(
    cache_dir: Path | None,
    manifests: list[str] | None = None,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
) -> list[CachedSnapshot]:
    """Audit the local Hugging Face Hub cache (`cache_dir`, default huggingface_hub's), offline: every blob
    against the ETag it is stored under, and each snapshot against the given manifests (or, without any,
    the registry's) that describe it. The `provenance audit cache` operation.

    A snapshot `passes` when no blob is corrupt and its report (if a reference describes it) passes; the
    command exits 1 when one does not. Raises UnreadableInput (exit 2) when there is no readable cache;
    SignatureError (exit 3) and ProvenanceError (exit 2) for a reference, as `verify` does.
    """
    names = manifests if manifests else [f"{REGISTRY_PREFIX}{name}" for name in registry_names()]
    references = [open_checked(name, keys=keys, allow_older=allow_older) for name in names]
    by_label = {r.label: r for r in references}

    def check(root: Path, checkpoint: Checkpoint, label: str, ignore: tuple[str, ...]) -> Report:
        report = verify_checkpoint(root, checkpoint, reference_label=label, allow_symlinks=True, ignore=ignore)
        return finish(report, by_label[label])

    return check_cache(
        cache_dir,
        [(label, r.manifest.checkpoint, r.manifest.ignore_paths) for label, r in by_label.items()],
        verify=check,
    )
