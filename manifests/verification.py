"""Verify a download against a named reference: open it, check its signature, compare."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import provenance
from manifests.model import Manifest
from manifests.reference import open_reference
from manifests.trust import SeenReleases, load_trust
from provenance.report import FileStatus, Report
from provenance.scan import ProgressReporter


def verify_download(
    target: Path,
    manifest: str | Path,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
    allow_symlinks: bool = False,
    progress: ProgressReporter | None = None,
) -> Report:
    """The `provenance verify` operation: the report carries the verdict and the signature status.

    With `keys`, the manifest must be signed by one of them (else SignatureError, exit 3); without, the
    trusted-keys folders and the trust policy decide.
    """
    reference = open_reference(manifest, trust=load_trust(keys), seen=SeenReleases(), allow_older=allow_older)
    manifest_path = Path(manifest)
    report = provenance.verify(
        target,
        reference.manifest.checkpoint,
        reference_label=f"{reference.manifest.release.name} ({reference.source})",
        allow_symlinks=allow_symlinks,
        exclude=frozenset({manifest_path}) if manifest_path.exists() else frozenset(),
        ignore=reference.manifest.ignore_paths,
        progress=progress,
    )
    weak = [
        f.name
        for f in report.files
        if f.status is FileStatus.MATCH and set(_digests(reference.manifest, f.name)) == {"md5"}
    ]
    warnings = reference.warnings
    if weak:
        warnings += (
            f"{len(weak)} file(s) matched by md5 alone ({', '.join(weak[:3])}): md5 collisions are practical, "
            "so this is weak evidence; a sha256 or tensor-level manifest would be strong",
        )
    return dataclasses.replace(report, signature=reference.signature, warnings=warnings)


def _digests(manifest: Manifest, path: str) -> dict[str, str]:
    found = manifest.checkpoint.file(path)
    return {} if found is None or found.has_layout else found.digests
