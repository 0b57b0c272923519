"""Published checksum lists (Meta's `checklist.chk`, `md5sum`/`sha256sum`/`b3sum` output) as manifests.

A list only vouches for whole files, with the algorithm it was published with: an md5-only list gives
an md5-only manifest, and reports say that md5 is weak evidence (collisions are practical). Only SHA-256
entries become the OMS resources of the manifest; every digest is kept in the extension, with the lists
it came from recorded as the release's sources.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from manifests.errors import ManifestError
from manifests.io import read_bounded
from manifests.model import Manifest, Release, tool_version
from manifests.names import check_relative
from manifests.records import Checkpoint, FileFingerprint, is_weights_file, role_of

# Bounds on what a list may hold. Published lists name a few to a few thousand files (Meta's checklist.chk
# names 3 to 17); a list of 100,000 sha256 lines is ~10 MB. Lines are counted before they are split, so a
# hostile list costs at most a few hundred MB, never the gigabytes a 64 MiB list of short lines took.
LIST_CAP = 16 << 20
MAX_LINES = 1_000_000
MAX_FILES = 100_000
_LINE = re.compile(r"^(\\?)([0-9a-fA-F]+) [ *](.+)$")
_BY_LENGTH = {32: "md5", 64: "sha256"}


def _algorithm_for(source: str, digest: str, algorithm: str | None) -> str:
    if algorithm:
        return algorithm
    lowered = source.lower()
    if len(digest) == 64 and ("b3" in lowered or "blake3" in lowered):
        return "blake3"
    found = _BY_LENGTH.get(len(digest))
    if found is None:
        raise ManifestError(f"{source}: a digest of {len(digest)} hex digits is neither md5 nor sha256")
    return found


def parse_checksum_list(
    text: str, source: str, *, algorithm: str | None = None, prefix: str = ""
) -> list[tuple[str, str, str]]:
    """(path, algorithm, digest) for each line of `md5sum`-style output; comments and blank lines skipped."""
    if text.count("\n") > MAX_LINES:
        raise ManifestError(f"{source} has over {MAX_LINES:,} lines: not a checksum list")
    entries: list[tuple[str, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.rstrip("\r"))
        if match is None:
            raise ManifestError(f"{source}, line {number}: not 'DIGEST  NAME' as md5sum/sha256sum/b3sum write it")
        escaped, digest, name = match.groups()
        if escaped:  # coreutils escapes names holding a newline or a backslash
            name = name.replace("\\n", "\n").replace("\\\\", "\\")
        name = name.removeprefix("./")
        path = check_relative(f"{prefix.strip('/')}/{name}" if prefix else name)
        entries.append((path, _algorithm_for(source, digest, algorithm), digest.lower()))
        if len(entries) > MAX_FILES:
            raise ManifestError(f"{source} lists over {MAX_FILES:,} files: not a checksum list of one release")
    if not entries:
        raise ManifestError(f"{source} lists no checksums")
    return entries


def _read_list(path: Path) -> str:
    def too_large(_: str) -> ManifestError:
        return ManifestError(f"{path} is over {LIST_CAP:,} bytes: not a checksum list; refusing it")

    try:
        return read_bounded(path, LIST_CAP, "checksum list", too_large).decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text: not a checksum list") from None


def import_checksum_lists(lists: list[Path], name: str, *, algorithm: str | None = None, prefix: str = "") -> Manifest:
    """A file-level reference manifest from published checksum lists (checklist.chk, md5sum, sha256sum or
    b3sum output), the names under `prefix`. Raises ManifestError (exit 2) for a list that is not one, or
    lists that disagree; UnreadableInput (exit 2) for a list that cannot be read."""
    digests: dict[str, dict[str, str]] = {}
    sources: list[str] = []
    for path in lists:
        for file, kind, digest in parse_checksum_list(_read_list(path), path.name, algorithm=algorithm, prefix=prefix):
            known = digests.setdefault(file, {})
            if len(digests) > MAX_FILES:
                raise ManifestError(f"the lists name over {MAX_FILES:,} files: not the checksums of one release")
            if known.get(kind, digest) != digest:
                raise ManifestError(f"{path.name} gives {file} another {kind} than an earlier line: refusing both")
            known[kind] = digest
        sources.append(path.name)
    files = tuple(
        FileFingerprint(file, None, role_of(file, is_weights_file(file)), digests=dict(sorted(found.items())))
        for file, found in sorted(digests.items())
    )
    created = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    release = Release(name=name, created=created, tool=tool_version(), sources=tuple(sources))
    return Manifest(release=release, checkpoint=Checkpoint(files))
