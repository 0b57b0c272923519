"""Names that one file system takes for one file: a release copied onto it is not what was checked.

Windows and macOS match names case-insensitively, and macOS also across Unicode forms; a candidate
(a folder on a case-sensitive disk, a torrent) holding `CONFIG.JSON` beside `config.json` loads one
or the other once copied there. Such names are a change (the verdict is `modified` unless the weights
are unrelated), whatever their digests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from manifests.names import colliding_paths
from provenance._judging.verdict import Findings, decide
from provenance.report import FileResult, FileStatus, Verdict


def collision_reason(clashes: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{a} and {b}" for a, b in clashes[:3])
    shown += f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
    return (
        f"names that differ only in case or Unicode form ({shown}): on a case-insensitive file system "
        "(Windows, macOS) one silently replaces the other, so what loads is not what was checked"
    )


def mark_collisions(files: Iterable[FileResult], clashes: list[tuple[str, str]]) -> list[FileResult]:
    """A release file that shares its name with another under case folding is not proven by its digest."""
    other = {a: b for a, b in clashes} | {b: a for a, b in clashes}
    return [
        dataclasses.replace(
            f,
            status=FileStatus.EXTRA if f.status is FileStatus.EXTRA else FileStatus.MODIFIED,
            detail=f"its name and {other[f.name]}'s are one file on a case-insensitive file system",
        )
        if f.name in other and f.status is not FileStatus.MISSING
        else f
        for f in files
    ]


@dataclass(frozen=True, slots=True)
class Collisions:
    """What colliding names do to a check: its files marked, and the change finding they make."""

    files: tuple[FileResult, ...]  # every file, those whose name collides marked
    names: frozenset[str]  # the names that collide with another
    change: str | None  # the sentence of the change; None when no names collide


def find_collisions(names: Iterable[str], files: Iterable[FileResult]) -> Collisions:
    """The one way a check treats names that one file system takes for one file: `names` are every name
    the candidate holds (a torrent's whole list, a folder's present files), `files` the check's results."""
    clashes = colliding_paths(names)
    return Collisions(
        tuple(mark_collisions(files, clashes)),
        frozenset(name for pair in clashes for name in pair),
        collision_reason(clashes) if clashes else None,
    )


def present(files: Iterable[FileResult]) -> list[str]:
    """The names a candidate holds: every file reported but the missing ones."""
    return [f.name for f in files if f.status is not FileStatus.MISSING]


def overrule(
    verdict: Verdict, reasons: tuple[str, ...], files: Iterable[FileResult]
) -> tuple[Verdict, tuple[str, ...], tuple[FileResult, ...]]:
    """A verdict with the names a candidate holds weighed in: colliding names are a change, decided by the
    one verdict function against what the check found, and their files marked."""
    results = tuple(files)
    collisions = find_collisions(present(results), results)
    if collisions.change is None:
        return verdict, reasons, results
    overruled, said = decide(Findings.after(verdict, reasons, collisions.change))
    return overruled, said, collisions.files


__all__ = [
    "Collisions",
    "colliding_paths",
    "collision_reason",
    "find_collisions",
    "mark_collisions",
    "overrule",
    "present",
]
