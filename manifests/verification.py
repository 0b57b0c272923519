"""Verify a download against a named reference: open it, check its signature, compare."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import provenance
from manifests.reference import Reference, open_reference
from manifests.trust import SeenReleases, load_trust
from provenance.collisions import colliding_paths, collision_reason, mark_collisions, present
from provenance.report import FileStatus, Report, Verdict
from provenance.scan import ProgressReporter


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
    reference = open_reference(manifest, trust=load_trust(keys), seen=SeenReleases(), allow_older=allow_older)
    return verify_against(target, reference, allow_symlinks=allow_symlinks, patterns=patterns, progress=progress)


def verify_torrent(
    torrent: Path,
    manifest: str | Path,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
) -> Report:
    """The `provenance torrent` operation: what a .torrent would download, judged before downloading."""
    from provenance.sources.torrent import read_torrent
    from provenance.torrent_check import check_torrent

    reference = open_reference(manifest, trust=load_trust(keys), seen=SeenReleases(), allow_older=allow_older)
    report = check_torrent(
        reference.manifest.checkpoint,
        read_torrent(torrent),
        reference_label=f"{reference.manifest.release.name} ({reference.source})",
        torrent_label=str(torrent),
        ignore=reference.manifest.ignore_paths,
    )
    return dataclasses.replace(report, signature=reference.signature, warnings=reference.warnings + report.warnings)


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
    report = provenance.verify(
        target,
        reference.manifest.checkpoint,
        reference_label=f"{reference.manifest.release.name} ({reference.source})",
        allow_symlinks=allow_symlinks,
        exclude=frozenset({reference.path}) if reference.path is not None else frozenset(),
        ignore=reference.manifest.ignore_paths,
        patterns=patterns,
        progress=progress,
    )
    report = _with_collisions(report)
    return dataclasses.replace(
        report, signature=reference.signature, warnings=reference.warnings + _weak(report, reference)
    )


_GREEN = frozenset({Verdict.IDENTICAL, Verdict.EQUIVALENT, Verdict.CONVERTED})  # their reasons no longer hold
_OVERRULED = _GREEN | {Verdict.INCOMPLETE, Verdict.UNDECIDED}


def _with_collisions(report: Report) -> Report:
    """A candidate holding names that one file system takes for one file is `modified`, whatever it holds."""
    clashes = colliding_paths(present(report.files))
    if not clashes:
        return report
    return dataclasses.replace(
        report,
        verdict=Verdict.MODIFIED if report.verdict in _OVERRULED else report.verdict,
        reasons=(collision_reason(clashes), *(() if report.verdict in _GREEN else report.reasons)),
        files=tuple(mark_collisions(report.files, clashes)),
    )


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
