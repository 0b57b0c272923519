"""`diff`: each side may be a checkpoint on disk or a manifest; the first side is the reference."""

from __future__ import annotations

from pathlib import Path

import provenance
from manifests.reference import is_manifest_file, open_reference
from provenance.report import Report
from provenance.scan import ProgressReporter, plan_against, scan


def diff_paths(a: Path, b: Path, *, allow_symlinks: bool = False, progress: ProgressReporter | None = None) -> Report:
    """How B differs from A, reading from disk only the digests the other side can be compared with."""
    ref_a = open_reference(a) if is_manifest_file(a) else None
    ref_b = open_reference(b) if is_manifest_file(b) else None
    if ref_a is not None and ref_b is not None:
        return provenance.diff(ref_a.manifest.checkpoint, ref_b.manifest.checkpoint, a_label=str(a), b_label=str(b))
    if ref_a is not None:
        return provenance.verify(
            b,
            ref_a.manifest.checkpoint,
            reference_label=str(a),
            allow_symlinks=allow_symlinks,
            progress=progress,
        )
    if ref_b is not None:
        side_a = scan(
            a,
            plan_against(ref_b.manifest.checkpoint),
            strict=True,
            allow_symlinks=allow_symlinks,
            progress=progress,
            label=f"reading {a.name}",
        )
        return provenance.diff(side_a, ref_b.manifest.checkpoint, a_label=str(a), b_label=str(b))
    side_a = provenance.read_checkpoint(a, allow_symlinks=allow_symlinks, progress=progress)
    side_b = provenance.read_checkpoint(b, strict=False, allow_symlinks=allow_symlinks, progress=progress)
    return provenance.diff(side_a, side_b, a_label=str(a), b_label=str(b))
