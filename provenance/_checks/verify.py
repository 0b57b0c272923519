"""`provenance verify`: a checkpoint on disk against a reference, each byte read once with what it needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from manifests.names import DEFAULT_IGNORE
from manifests.records import Checkpoint
from manifests.reference import Reference
from provenance._checks.common import ReadOptions, finish, open_checked
from provenance._checks.part import mark, select
from provenance._hashing.cluster import on_cluster
from provenance._hashing.scan import ProgressReporter, plan_against, scan
from provenance._judging.compare import compare
from provenance._judging.derive import sketch_mismatches
from provenance._judging.partial import inspect_damage, plan_refetch
from provenance._judging.wording import plural
from provenance._layouts import in_reference_layout
from provenance.errors import UnreadableInput
from provenance.report import FileStatus, Report, Verdict

EVIDENCE_BYTES = "every byte read: BLAKE3 per tensor and of the container bytes"
EVIDENCE_FILES = "every byte read: whole-file digests (no tensor-level reference)"


def verify(
    target: Path,
    manifest: str | Path,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
    require_signature: bool = False,
    options: ReadOptions = ReadOptions(),
    progress: ProgressReporter | None = None,
    only: tuple[str, ...] = (),
) -> Report:
    """Check a download (a folder or one file) against the reference `manifest` names: a manifest file, a
    signature bundle or `registry:NAME`. The `provenance verify` operation.

    The report carries the verdict (its `exit_code`: 0 identical or equivalent, 1 any other verdict), the
    signature status and the reference's warnings. With `keys`, the manifest must be signed by one of them;
    without, the trusted-keys folders and the trust policy decide (`require_signature`: a valid signature by
    a trusted key is required, as the policy can ask). A signed manifest older than one verified
    before for the release is refused unless `allow_older`. `patterns` (--ignore globs) set files aside.
    A single file of the release, or `only` globs, check that part alone, and the report says so.
    Damaged weights files do not raise: they are reported `corrupt`. With `options.scheduler`, each file is
    hashed by a Dask worker, at a path every worker sees: the report is the one a single process makes.

    Raises SignatureError (exit 3) for a bad, untrusted or rolled-back signature; ProvenanceError (exit 2;
    ManifestError, UnreadableInput, UnsafePath among them) for a reference or download that cannot be read.
    """
    if str(target).startswith("hf:"):
        raise UnreadableInput(
            f"{str(target).replace('hf:/', 'hf://', 1)} is a hub repository and verify reads files on disk: "
            "`provenance audit` checks a hub repository against the manifest without downloading it"
        )
    reference = open_checked(manifest, keys=keys, allow_older=allow_older, require=require_signature)
    with on_cluster(options.scheduler):
        return verify_against(target, reference, options=options, progress=progress, only=only)


def verify_against(
    target: Path,
    reference: Reference,
    *,
    options: ReadOptions = ReadOptions(),
    progress: ProgressReporter | None = None,
    only: tuple[str, ...] = (),
) -> Report:
    """Check a checkpoint against an opened reference; the report carries its signature and warnings.

    Shared by `verify` and `diff`, so both honour the manifest's ignore_paths and warn alike about
    matches that rest on md5 alone.
    """
    release, ignore = reference.manifest.checkpoint, reference.manifest.ignore_paths
    part = select(target, release, only, ignore, options.allow_symlinks)
    report = verify_checkpoint(
        target if part is None else part.root,
        release if part is None else part.reference,
        reference_label=reference.label,
        options=options,
        exclude=frozenset({reference.path}) if reference.path is not None else frozenset(),
        ignore=ignore if part is None else (*ignore, *part.left_out),
        progress=progress,
    )
    if part is not None:
        report = mark(dataclasses.replace(report, candidate=str(target)), part)
    return finish(dataclasses.replace(report, warnings=(*report.warnings, *weak_matches(report, reference))), reference)


def verify_checkpoint(
    target: Path,
    reference: Checkpoint,
    *,
    reference_label: str = "reference",
    options: ReadOptions = ReadOptions(),
    exclude: frozenset[Path] = frozenset(),
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    progress: ProgressReporter | None = None,
) -> Report:
    """Check a checkpoint on disk against a reference, reading each byte once with what it needs.

    Damaged files do not stop the check: they are reported `corrupt` and the verdict says what they cost.
    `ignore` is the reference's ignore_paths: files it left out are not candidates either. The `options`'
    patterns are the user's --ignore globs: the files they match are set aside (listed in the report, not
    compared).
    """
    candidate = scan(
        target,
        plan_against(reference),
        strict=False,
        allow_symlinks=options.allow_symlinks,
        exclude=exclude,
        ignore=ignore,
        patterns=options.patterns,
        progress=progress,
        label="verifying",
    )
    adapted = in_reference_layout(candidate, reference)
    if adapted.note:  # another layout: compared tensor by tensor; byte ranges of the release's files mean nothing
        report = compare(
            adapted.reference,
            sketch_mismatches(adapted.reference, adapted.candidate),
            reference_label=reference_label,
            candidate_label=str(target),
            evidence=EVIDENCE_BYTES,
        )
        return across_layouts(report, adapted.note)
    damage = inspect_damage(reference, adapted.candidate)  # unchanged, but for what an adapter found
    report = compare(
        reference,
        sketch_mismatches(reference, damage.candidate),
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


def weak_matches(report: Report, reference: Reference) -> tuple[str, ...]:
    """A warning when some files match only by md5, whose collisions are practical."""
    md5_only = {f.path for f in reference.manifest.checkpoint.files if not f.has_layout and set(f.digests) == {"md5"}}
    weak = [f.name for f in report.files if f.status is FileStatus.MATCH and f.name in md5_only]
    if not weak:
        return ()
    return (
        f"{plural(len(weak), 'file')} matched by md5 alone ({', '.join(weak[:3])}): md5 collisions are practical, "
        "so this is weak evidence; a sha256 or tensor-level manifest would be strong",
    )
