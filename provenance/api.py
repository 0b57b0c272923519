"""The public operations: fingerprint a checkpoint, verify one against a reference, diff two."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from provenance.compare import compare
from provenance.derive import sketch_mismatches
from provenance.errors import UnreadableInput
from provenance.fingerprint import MAX_TENSORS, Checkpoint
from provenance.layouts import in_reference_layout
from provenance.partial import inspect_damage, plan_refetch
from provenance.paths import DEFAULT_IGNORE
from provenance.report import Report, Verdict
from provenance.scan import ProgressReporter, content_plan, fingerprint_plan, plan_against, scan

EVIDENCE_BYTES = "every byte read: BLAKE3 per tensor and of the container bytes"
EVIDENCE_FILES = "every byte read: whole-file digests (no tensor-level reference)"


def fingerprint(
    target: Path,
    *,
    allow_symlinks: bool = False,
    exclude: frozenset[Path] = frozenset(),
    piece_length: int = 0,
    sketches: bool = False,
    progress: ProgressReporter | None = None,
) -> Checkpoint:
    """Fingerprint a checkpoint for a manifest: SHA-256 per file, BLAKE3 per tensor and per other file.

    A `piece_length` (a power of two, at least 16 KiB) adds each file's BitTorrent v2 pieces root and
    piece layer: what `provenance torrent` compares and what locates damage in a partial download.
    `sketches` adds, per float tensor, the digests of its canonical F16 and BF16 casts, its moments and a
    seeded sample of values: what tells a cast or a fine-tune from an unrelated tensor.
    Malformed weights files raise MalformedContainer: a manifest is never built from a broken release.
    """
    checkpoint = scan(
        target,
        fingerprint_plan(piece_length, sketches),
        strict=True,
        allow_symlinks=allow_symlinks,
        exclude=exclude,
        progress=progress,
        label="fingerprinting",
    )
    return _bounded(checkpoint, target)


def _bounded(checkpoint: Checkpoint, target: Path) -> Checkpoint:
    """A checkpoint of more tensors than a manifest may hold is refused: neither side could be compared in bounds."""
    if checkpoint.tensor_count > MAX_TENSORS:
        raise UnreadableInput(
            f"{target} holds {checkpoint.tensor_count:,} tensors, more than the {MAX_TENSORS:,} any release holds"
        )
    return checkpoint


def verify(
    target: Path,
    reference: Checkpoint,
    *,
    reference_label: str = "reference",
    allow_symlinks: bool = False,
    exclude: frozenset[Path] = frozenset(),
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    patterns: tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
) -> Report:
    """Check a checkpoint on disk against a reference, reading each byte once with what it needs.

    Damaged files do not stop the check: they are reported `corrupt` and the verdict says what they cost.
    `ignore` is the reference's ignore_paths: files it left out are not candidates either. `patterns` are
    the user's --ignore globs: the files they match are set aside (listed in the report, not compared).
    """
    candidate = scan(
        target,
        plan_against(reference),
        strict=False,
        allow_symlinks=allow_symlinks,
        exclude=exclude,
        ignore=ignore,
        patterns=patterns,
        progress=progress,
        label="verifying",
    )
    _bounded(candidate, target)
    root = target if target.is_dir() else target.parent
    adapted = in_reference_layout(root, candidate, reference)
    if adapted.note:  # another layout: compared tensor by tensor; byte ranges of the release's files mean nothing
        report = compare(
            adapted.reference,
            sketch_mismatches(root, adapted.reference, adapted.candidate),
            reference_label=reference_label,
            candidate_label=str(target),
            evidence=EVIDENCE_BYTES,
        )
        return across_layouts(report, adapted.note)
    damage = inspect_damage(root, reference, adapted.candidate)  # unchanged, but for what an adapter found
    report = compare(
        reference,
        sketch_mismatches(root, reference, damage.candidate),
        reference_label=reference_label,
        candidate_label=str(target),
        evidence=EVIDENCE_BYTES if reference.tensor_level else EVIDENCE_FILES,
    )
    if report.verdict not in (Verdict.INCOMPLETE, Verdict.MODIFIED):
        return report
    return dataclasses.replace(report, refetch=plan_refetch(reference, damage.candidate, report, damage.chunks))


def across_layouts(report: Report, note: str) -> Report:
    """A report of a candidate read in another layout, with the sentence that says how it was read."""
    return dataclasses.replace(report, reasons=(*report.reasons, note))


def read_checkpoint(
    target: Path,
    *,
    strict: bool = True,
    allow_symlinks: bool = False,
    patterns: tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
) -> Checkpoint:
    """Fingerprint a checkpoint with BLAKE3 alone, to compare it with another on disk.

    A reference side is read `strict` (a broken reference is an error); a compared side is not.
    `patterns` (--ignore globs) set files aside.
    """
    checkpoint = scan(
        target,
        content_plan,
        strict=strict,
        allow_symlinks=allow_symlinks,
        patterns=patterns,
        progress=progress,
        label=f"reading {target.name}",
    )
    return _bounded(checkpoint, target)


def diff(a: Checkpoint, b: Checkpoint, *, a_label: str = "A", b_label: str = "B", evidence: str = "") -> Report:
    """How checkpoint B differs from checkpoint A, with A as the reference."""
    return compare(a, b, reference_label=a_label, candidate_label=b_label, evidence=evidence or EVIDENCE_BYTES)
