"""`provenance verify`: a checkpoint on disk against a reference, each byte read once with what it needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from manifests.names import DEFAULT_IGNORE
from manifests.records import Checkpoint
from manifests.reference import Reference
from provenance._checks.common import finish, open_checked
from provenance._hashing.scan import ProgressReporter, plan_against, scan
from provenance._judging.collisions import find_collisions, present
from provenance._judging.compare import compare
from provenance._judging.derive import sketch_mismatches
from provenance._judging.partial import inspect_damage, plan_refetch
from provenance._judging.verdict import Findings, decide
from provenance._layouts import in_reference_layout
from provenance.report import FileStatus, Report, Verdict

EVIDENCE_BYTES = "every byte read: BLAKE3 per tensor and of the container bytes"
EVIDENCE_FILES = "every byte read: whole-file digests (no tensor-level reference)"


def verify_download(
    target: Path,
    manifest: str | Path,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
    allow_symlinks: bool = False,
    patterns: tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
) -> Report:
    """The `provenance verify` operation: the report carries the verdict and the signature status.

    With `keys`, the manifest must be signed by one of them (else SignatureError, exit 3); without, the
    trusted-keys folders and the trust policy decide.
    """
    reference = open_checked(manifest, keys=keys, allow_older=allow_older)
    return verify_against(target, reference, allow_symlinks=allow_symlinks, patterns=patterns, progress=progress)


def verify_against(
    target: Path,
    reference: Reference,
    *,
    allow_symlinks: bool = False,
    patterns: tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
) -> Report:
    """Check a checkpoint against an opened reference; the report carries its signature and warnings.

    Shared by `verify` and `diff`, so both honour the manifest's ignore_paths and warn alike about
    matches that rest on md5 alone.
    """
    report = verify(
        target,
        reference.manifest.checkpoint,
        reference_label=reference.label,
        allow_symlinks=allow_symlinks,
        exclude=frozenset({reference.path}) if reference.path is not None else frozenset(),
        ignore=reference.manifest.ignore_paths,
        patterns=patterns,
        progress=progress,
    )
    report = _with_collisions(report)
    return finish(dataclasses.replace(report, warnings=(*report.warnings, *_weak(report, reference))), reference)


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


def _with_collisions(report: Report) -> Report:
    """A candidate holding names that one file system takes for one file is `modified`, whatever it holds:
    the collision is a change, weighed against the report's verdict by the one verdict function."""
    collisions = find_collisions(present(report.files), report.files)
    if collisions.change is None:
        return report
    verdict, reasons = decide(Findings.after(report.verdict, report.reasons, collisions.change))
    return dataclasses.replace(report, verdict=verdict, reasons=reasons, files=collisions.files)


def _weak(report: Report, reference: Reference) -> tuple[str, ...]:
    """A warning when some files match only by md5, whose collisions are practical."""
    md5_only = {f.path for f in reference.manifest.checkpoint.files if not f.has_layout and set(f.digests) == {"md5"}}
    weak = [f.name for f in report.files if f.status is FileStatus.MATCH and f.name in md5_only]
    if not weak:
        return ()
    return (
        f"{len(weak)} file(s) matched by md5 alone ({', '.join(weak[:3])}): md5 collisions are practical, "
        "so this is weak evidence; a sha256 or tensor-level manifest would be strong",
    )
