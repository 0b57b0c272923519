"""`provenance audit cache`: the local hub cache, offline; blobs against their own ETags, snapshots against
the releases that describe them."""

from __future__ import annotations

from pathlib import Path

from manifests.records import Checkpoint
from manifests.reference import REGISTRY_PREFIX, registry_names
from provenance._checks.common import finish, open_checked
from provenance._checks.verify import verify
from provenance._sources.hub_cache import CachedSnapshot, audit_cache
from provenance.report import Report


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
    references = [open_checked(name, keys=keys, allow_older=allow_older) for name in names]
    by_label = {r.label: r for r in references}

    def check(root: Path, checkpoint: Checkpoint, label: str, ignore: tuple[str, ...]) -> Report:
        report = verify(root, checkpoint, reference_label=label, allow_symlinks=True, ignore=ignore)
        return finish(report, by_label[label])

    return audit_cache(
        cache_dir,
        [(label, r.manifest.checkpoint, r.manifest.ignore_paths) for label, r in by_label.items()],
        verify=check,
    )
