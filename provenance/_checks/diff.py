"""`provenance diff`: each side may be a checkpoint on disk or a manifest; the first side is the reference."""

from __future__ import annotations

from pathlib import Path

from manifests.records import Checkpoint
from manifests.reference import is_manifest_file
from provenance._checks.common import ReadOptions, finish, open_checked
from provenance._checks.verify import EVIDENCE_BYTES, across_layouts, verify_against
from provenance._hashing.scan import ProgressReporter, content_plan, plan_against, scan
from provenance._judging.compare import compare
from provenance._judging.derive import sketch_differences
from provenance._layouts import in_reference_layout
from provenance.report import Report


def diff(
    a: Path,
    b: Path,
    *,
    options: ReadOptions = ReadOptions(),
    keys: list[Path] | None = None,
    allow_older: bool = False,
    require_signature: bool = False,
    progress: ProgressReporter | None = None,
) -> Report:
    """How B differs from A (the reference), tensor by tensor; each side a checkpoint on disk (a folder or
    one file) or a manifest. The `provenance diff` operation.

    Only the digests the other side can be compared with are read from disk; the `options`' patterns (--ignore
    globs) set files of a side on disk aside. A, when a manifest, must be signed by one of `keys` when given
    (by a trusted key with `require_signature`); a signed side is checked against the trusted keys, the trust policy
    and the record of releases seen (an older manifest than one verified before is refused without
    `allow_older`), as `verify` does; the report carries the reference side's signature status and both
    sides' warnings. Its `exit_code`: 0 when B holds A's weights (identical or equivalent), else 1.

    Raises SignatureError (exit 3) for a bad or rolled-back signature; MalformedContainer (exit 2) when A,
    read from disk, holds a broken weights file; ProvenanceError (exit 2) for a side that cannot be read.
    """
    ref_a = None
    if is_manifest_file(a):  # the reference side: the one --key and --require-signature hold to a signature
        ref_a = open_checked(a, keys=keys, allow_older=allow_older, require=require_signature)
    ref_b = None
    if is_manifest_file(b):  # the only manifest when A is on disk: then it is the one held to a signature
        held = ref_a is None
        ref_b = open_checked(
            b, keys=keys if held else None, allow_older=allow_older, require=require_signature and held
        )
    if ref_a is not None and ref_b is not None:
        report = diff_checkpoints(
            ref_a.manifest.checkpoint,
            ref_b.manifest.checkpoint,
            a_label=str(a),
            b_label=str(b),
            evidence=_recorded(ref_a.manifest.checkpoint, ref_b.manifest.checkpoint),
        )
    elif ref_a is not None:
        return verify_against(b, ref_a, options=options, progress=progress)
    elif ref_b is not None:
        side_a = scan(
            a,
            plan_against(ref_b.manifest.checkpoint),
            strict=True,
            allow_symlinks=options.allow_symlinks,
            patterns=options.patterns,
            progress=progress,
            label=f"reading {a.name}",
        )
        report = diff_checkpoints(side_a, ref_b.manifest.checkpoint, a_label=str(a), b_label=str(b))
    else:
        side_a = read_checkpoint(a, options=options, progress=progress)
        side_b = read_checkpoint(b, strict=False, options=options, progress=progress)
        report = _diff_on_disk(side_a, side_b, a_label=str(a), b_label=str(b))
    return finish(report, *(ref for ref in (ref_a, ref_b) if ref is not None))


def _recorded(a: Checkpoint, b: Checkpoint) -> str:
    """What two manifests compare by: the digests both record, no byte of any weights read."""
    kinds = sorted({k for f in a.files for k in f.digests} & {k for f in b.files for k in f.digests})
    per_tensor = " and per-tensor digests" if a.tensor_level and b.tensor_level else ""
    common = ", ".join(kinds) or "none in common"
    return f"no byte read: the two manifests' recorded digests compared ({common}{per_tensor})"


def _diff_on_disk(side_a: Checkpoint, side_b: Checkpoint, *, a_label: str, b_label: str) -> Report:
    """Two checkpoints on disk, B read in A's layout when it is in another; the tensors that differ are
    sketched on both sides (each read again from its own root), so each carries its figures."""
    adapted = in_reference_layout(side_b, side_a)
    if not adapted.note:
        side_a, side_b = sketch_differences(side_a, side_b)
        return diff_checkpoints(side_a, side_b, a_label=a_label, b_label=b_label)
    # A's differing tensors are sketched first; B's are rebuilt again to be sketched alike (they have no
    # place in a file to be read again from).
    side_a, _ = sketch_differences(side_a, adapted.candidate)
    adapted = in_reference_layout(side_b, side_a)
    report = diff_checkpoints(adapted.reference, adapted.candidate, a_label=a_label, b_label=b_label)
    return across_layouts(report, adapted.note)


def read_checkpoint(
    target: Path,
    *,
    strict: bool = True,
    options: ReadOptions = ReadOptions(),
    progress: ProgressReporter | None = None,
) -> Checkpoint:
    """Fingerprint a checkpoint with BLAKE3 alone, to compare it with another on disk; the checkpoint
    knows its root, so its tensors can be read again (sketched) where they differ.

    A reference side is read `strict` (a broken reference is an error); a compared side is not.
    The `options`' patterns (--ignore globs) set files aside.
    """
    checkpoint = scan(
        target,
        content_plan,
        strict=strict,
        allow_symlinks=options.allow_symlinks,
        patterns=options.patterns,
        progress=progress,
        label=f"reading {target.name}",
    )
    return checkpoint


def diff_checkpoints(
    a: Checkpoint, b: Checkpoint, *, a_label: str = "A", b_label: str = "B", evidence: str = ""
) -> Report:
    """How checkpoint B differs from checkpoint A, with A as the reference."""
    return compare(a, b, reference_label=a_label, candidate_label=b_label, evidence=evidence or EVIDENCE_BYTES)
