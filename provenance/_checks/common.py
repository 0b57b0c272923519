"""What every check does around its comparison: read a checkpoint on disk with the options the user gave,
open the reference the user named the same way, and finish the report the same way (the reference's
signature and warnings attached once)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from manifests.reference import Reference, open_reference
from manifests.trust import SeenReleases, load_trust
from provenance.report import Report


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How the user asked a checkpoint on disk to be read: the same for every check that reads one, so
    they travel together (from the command line to the scan) instead of one argument each."""

    allow_symlinks: bool = False  # follow file symlinks that leave the checkpoint's folder
    patterns: tuple[str, ...] = ()  # the user's --ignore globs: the files they match are set aside, and listed


def open_checked(
    spec: str | Path, *, keys: list[Path] | None = None, allow_older: bool = False, require: bool = False
) -> Reference:
    """The reference a user named, its signature checked against `keys` (required then) or the trusted keys
    and the trust policy (or `require`: --require-signature), and refused when older than one verified
    before unless `allow_older`."""
    return open_reference(spec, trust=load_trust(keys, require=require), seen=SeenReleases(), allow_older=allow_older)


def finish(report: Report, *references: Reference) -> Report:
    """The report as a user reads it: the first reference's signature, every reference's warnings first."""
    if not references:
        return report
    warnings = tuple(w for ref in references for w in ref.warnings)
    first = references[0]
    document = {"source": first.source, "digest": first.digest, "subject": first.manifest.subject_digest}
    return dataclasses.replace(
        report,
        signature=first.signature,
        warnings=(*warnings, *report.warnings),
        manifest=document,
    )
