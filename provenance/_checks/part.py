"""Checking part of a release: one file of it, or the files `--only` globs name, against their entries.

A user who has only some shards (or wants to check one before the rest arrives) asks about those files;
every other file of the release is then neither missing nor compared. The verdict covers the part alone,
and the report says so in its evidence and first reason, so that a green verdict on a part cannot be taken
for one on the whole release.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from manifests.records import Checkpoint
from provenance._hashing.paths import list_files
from provenance.errors import UnreadableInput
from provenance.report import Report


@dataclass(frozen=True)
class Part:
    """The release restricted to the files asked about, and the candidate's files left out of the scan."""

    root: Path
    reference: Checkpoint
    left_out: tuple[str, ...]  # the candidate's files the part does not name: not read at all
    of: int  # how many files the whole release has


def matches_any(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], p) for p in patterns)


def file_entry(target: Path, reference: Checkpoint) -> tuple[Path, str] | None:
    """The folder to read from and the entry a single file stands for: the entry of its path, read from
    the folders above it (`dl/sub/x.bin` for the entry `sub/x.bin`), or None when no entry has its name."""
    if not target.is_file() or len(reference.files) < 2:
        return None
    # The name the user gave, in its folder's real place: a cache snapshot's file is a link to a blob named
    # by its digest, and loaders read it by the link's name.
    parts = (*target.absolute().parent.resolve().parts, target.name)
    for entry in sorted(reference.files, key=lambda f: f.path.count("/")):
        depth = entry.path.count("/") + 1
        if len(parts) > depth and "/".join(parts[-depth:]) == entry.path:
            return Path(*parts[:-depth]), entry.path
    return None


def select(
    target: Path, reference: Checkpoint, only: tuple[str, ...], ignore: tuple[str, ...], allow_symlinks: bool
) -> Part | None:
    """The part asked about: `target` a single file of the release, or `only` globs; None for the whole."""
    if not only:
        found = file_entry(target, reference)
        if found is None:
            return None
        target, only = found[0], (found[1],)
    chosen = tuple(f for f in reference.files if matches_any(f.path, only))
    if not chosen:
        raise UnreadableInput(
            f"no file of the release matches --only {' '.join(only)}; the release's files: "
            + ", ".join(f.path for f in reference.files[:5])
            + (" ..." if len(reference.files) > 5 else "")
        )
    if not target.is_dir():
        raise UnreadableInput(f"{target} is not a directory; --only picks files of a download's folder")
    root, files = list_files(target, ignore=ignore, allow_symlinks=allow_symlinks)
    left_out = tuple(f for f in files if not matches_any(f, only))
    if len(left_out) == len(files):  # else the scan, every file left out, would say the folder is empty
        raise UnreadableInput(
            f"{target} holds none of the files asked about ({', '.join(f.path for f in chosen[:5])}"
            + (" ..." if len(chosen) > 5 else "")
            + "): not downloaded, or under another name; the part cannot be checked"
        )
    return Part(root, dataclasses.replace(reference, files=chosen), left_out, len(reference.files))


def mark(report: Report, part: Part) -> Report:
    """The report of a part says it is one: in the evidence line, the first reason and the facts."""
    checked = len(part.reference.files)
    if checked == part.of:
        return report
    said = f"checked {checked} of {part.of} files of the release; the verdict is about these files only"
    names = [f.path for f in part.reference.files]
    return dataclasses.replace(
        report,
        evidence=f"{report.evidence}; part of the release: {checked} of {part.of} files",
        reasons=(said, *(r.replace("every reference file is", "every file checked is") for r in report.reasons)),
        facts={**report.facts, "part": {"checked": f"{checked} of {part.of} files of the release", "files": names}},
    )
