"""`diff`: each side may be a checkpoint on disk or a manifest; the first side is the reference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import provenance
from manifests.reference import is_manifest_file, open_reference
from manifests.trust import SeenReleases, load_trust
from manifests.verification import verify_against
from provenance.api import across_layouts
from provenance.derive import sketch_differences
from provenance.fingerprint import Checkpoint
from provenance.layouts import in_reference_layout
from provenance.report import Report
from provenance.scan import ProgressReporter, plan_against, scan


def diff_paths(
    a: Path,
    b: Path,
    *,
    allow_symlinks: bool = False,
    patterns: tuple[str, ...] = (),
    allow_older: bool = False,
    progress: ProgressReporter | None = None,
) -> Report:
    """How B differs from A, reading from disk only the digests the other side can be compared with;
    `patterns` (--ignore globs) set files of a side on disk aside.

    A signed side is checked against the trusted keys, the trust policy and the record of releases seen
    (an older manifest than one verified before is refused without `allow_older`), as `verify` does; the
    report carries the reference side's signature status and both sides' warnings.
    """
    trust, seen = load_trust(), SeenReleases()
    ref_a = open_reference(a, trust=trust, seen=seen, allow_older=allow_older) if is_manifest_file(a) else None
    ref_b = open_reference(b, trust=trust, seen=seen, allow_older=allow_older) if is_manifest_file(b) else None
    if ref_a is not None and ref_b is not None:
        report = provenance.diff(ref_a.manifest.checkpoint, ref_b.manifest.checkpoint, a_label=str(a), b_label=str(b))
    elif ref_a is not None:
        return verify_against(b, ref_a, allow_symlinks=allow_symlinks, patterns=patterns, progress=progress)
    elif ref_b is not None:
        side_a = scan(
            a,
            plan_against(ref_b.manifest.checkpoint),
            strict=True,
            allow_symlinks=allow_symlinks,
            patterns=patterns,
            progress=progress,
            label=f"reading {a.name}",
        )
        report = provenance.diff(side_a, ref_b.manifest.checkpoint, a_label=str(a), b_label=str(b))
    else:
        side_a = provenance.read_checkpoint(a, allow_symlinks=allow_symlinks, patterns=patterns, progress=progress)
        side_b = provenance.read_checkpoint(
            b, strict=False, allow_symlinks=allow_symlinks, patterns=patterns, progress=progress
        )
        report = _diff_on_disk(a, side_a, b, side_b)
    signed = ref_a or ref_b
    if signed is None:
        return report
    warnings = tuple(w for ref in (ref_a, ref_b) if ref is not None for w in ref.warnings)
    return dataclasses.replace(report, signature=signed.signature, warnings=warnings)


def _diff_on_disk(a: Path, side_a: Checkpoint, b: Path, side_b: Checkpoint) -> Report:
    """Two checkpoints on disk, B read in A's layout when it is in another; the tensors that differ are
    sketched on both sides, so each carries its figures."""
    adapted = in_reference_layout(_root(b), side_b, side_a)
    if not adapted.note:
        side_a, side_b = sketch_differences(_root(a), side_a, _root(b), side_b)
        return provenance.diff(side_a, side_b, a_label=str(a), b_label=str(b))
    # A's differing tensors are sketched first; B's are rebuilt again to be sketched alike (they have no
    # place in a file to be read again from).
    side_a, _ = sketch_differences(_root(a), side_a, _root(b), adapted.candidate)
    adapted = in_reference_layout(_root(b), side_b, side_a)
    report = provenance.diff(adapted.reference, adapted.candidate, a_label=str(a), b_label=str(b))
    return across_layouts(report, adapted.note)


def _root(path: Path) -> Path:
    return path if path.is_dir() else path.parent
