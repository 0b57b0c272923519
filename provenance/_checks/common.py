"""What every check does around its comparison: read a checkpoint on disk with the options the user gave,
open the reference the user named the same way, and finish the report the same way (the reference's
signature and warnings attached once)."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from manifests.reference import Reference, open_reference
from manifests.trust import SeenReleases, load_trust
from provenance.errors import UnreadableInput
from provenance.report import Report


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How the user asked a checkpoint on disk to be read: the same for every check that reads one, so
    they travel together (from the command line to the scan) instead of one argument each."""

    allow_symlinks: bool = False  # follow file symlinks that leave the checkpoint's folder
    patterns: tuple[str, ...] = ()  # the user's --ignore globs: the files they match are set aside, and listed
    scheduler: str | None = None  # a Dask scheduler (tcp://HOST:PORT, local:N) to hash the files on, one task each


def open_checked(
    spec: str | Path, *, keys: list[Path] | None = None, allow_older: bool = False, require: bool = False
) -> Reference:
    """The reference a user named, its signature checked against `keys` (required then) or the trusted keys
    and the trust policy (or `require`: --require-signature), and refused when older than one verified
    before unless `allow_older`. `-` is standard input (a manifest or bundle piped from curl, say)."""
    trust = load_trust(keys, require=require)
    if str(spec) != STDIN:
        return open_reference(spec, trust=trust, seen=SeenReleases(), allow_older=allow_older)
    with tempfile.TemporaryDirectory(prefix="provenance-stdin-") as folder:
        piped = Path(folder) / "stdin.json"
        piped.write_bytes(read_stdin())
        ref = open_reference(piped, trust=trust, seen=SeenReleases(), allow_older=allow_older)
    said = tuple(w.replace(str(piped), "the manifest on standard input") for w in ref.warnings)
    return dataclasses.replace(ref, source="stdin", warnings=said, path=None)


STDIN = "-"
STDIN_LIMIT = 256 * 1024 * 1024  # a manifest of the largest release is a few MB; more is not a manifest


def read_stdin(hint: str = "pipe a manifest or signature bundle into `-m -`") -> bytes:
    """Standard input in full, refused past a size no manifest reaches (a hostile pipe of endless bytes is
    not held in memory); `hint` is what the user is told to do when it is empty."""
    data = sys.stdin.buffer.read(STDIN_LIMIT + 1)
    if len(data) > STDIN_LIMIT:
        raise UnreadableInput(f"standard input holds more than {STDIN_LIMIT:,} bytes, more than any manifest")
    if not data:
        raise UnreadableInput(f"standard input is empty; {hint}")
    return data


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
