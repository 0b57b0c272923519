"""The local Hugging Face Hub cache as evidence, offline: every blob against the ETag it is stored under,
and each snapshot against the references that describe it.

The cache names each blob by the ETag the hub sent: the sha256 of the content for LFS files, the git
blob id (SHA-1 of "blob N\\0" and the content) for files kept in git. The client checks only sizes when
it downloads, so a blob whose bytes do not hash to its own name was damaged after or during the
download, even at the right size.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from manifests.records import Checkpoint
from provenance._hashing.engine import HashPlan, hash_file
from provenance.errors import UnreadableInput
from provenance.report import Report

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_OID = re.compile(r"[0-9a-f]{40}")
GIT_READ = 1 << 20
REF_CAP = 4096  # a ref holds one 40-character commit; the hub client reads it whole, unbounded


@dataclass(frozen=True, slots=True)
class CachedSnapshot:
    """One revision of one repository in the cache, and what checking it found."""

    repo_id: str
    repo_type: str
    commit: str
    refs: tuple[str, ...]
    path: Path
    files: tuple[str, ...]
    corrupt: tuple[tuple[str, str], ...] = ()  # (file, why) for blobs that do not hash to their own name
    report: Report | None = None  # against the reference that describes this snapshot, when one does
    reference: str | None = None

    @property
    def passes(self) -> bool:
        return not self.corrupt and (self.report is None or self.report.verdict.passes)


@dataclass
class _BlobCheck:
    """Each blob is hashed once, however many snapshots point at it."""

    seen: dict[Path, str | None] = field(default_factory=dict)

    def check(self, blob: Path) -> str | None:
        if blob not in self.seen:
            self.seen[blob] = _check_blob(blob)
        return self.seen[blob]


def _check_blob(blob: Path) -> str | None:
    """Why a blob's bytes do not hash to its name, or None when they do (or its name is not a digest)."""
    name = blob.name
    try:
        if not stat.S_ISREG(blob.stat().st_mode):
            return "not a regular file"
        if _SHA256.fullmatch(name):
            digest = hash_file(blob.parent, name, HashPlan(frozenset({"sha256"}))).digests["sha256"]
            return None if digest == name else f"its bytes hash to sha256 {digest[:12]}..., not {name[:12]}..."
        if _GIT_OID.fullmatch(name):
            hasher = hashlib.sha1(f"blob {blob.stat().st_size}\0".encode(), usedforsecurity=False)
            with blob.open("rb") as stream:
                while chunk := stream.read(GIT_READ):
                    hasher.update(chunk)
            digest = hasher.hexdigest()
            return None if digest == name else f"its bytes hash to git blob {digest[:12]}..., not {name[:12]}..."
    except OSError as exc:
        return f"unreadable blob: {exc.strerror}"
    return None


def check_cache(
    cache_dir: Path | None,
    references: list[tuple[str, Checkpoint, tuple[str, ...]]],
    *,
    verify: Callable[[Path, Checkpoint, str, tuple[str, ...]], Report],
) -> list[CachedSnapshot]:
    """Check every snapshot of the cache; `references` are (label, checkpoint, ignore_paths) to match
    snapshots against, and `verify` checks a snapshot folder against one of them."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        _check_refs(cache_dir)
        info = scan_cache_dir(cache_dir)
    except CacheNotFound as exc:
        raise UnreadableInput(f"no hub cache at {exc.cache_dir}; give --cache-dir or set HF_HUB_CACHE") from None
    except (ValueError, OSError, RecursionError, MemoryError) as exc:
        raise UnreadableInput(
            f"cannot read the hub cache at {cache_dir}: {exc or type(exc).__name__}; give the cache's folder"
        ) from None
    blobs = _BlobCheck()
    results: list[CachedSnapshot] = []
    for repo in sorted(info.repos, key=lambda r: (r.repo_type, r.repo_id)):
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            root = revision.snapshot_path
            entries = sorted(revision.files, key=lambda f: str(f.file_path))
            names = tuple(f.file_path.relative_to(root).as_posix() for f in entries)
            corrupt = tuple(
                (name, why)
                for name, f in zip(names, entries, strict=True)
                if (why := blobs.check(f.blob_path)) is not None
            )
            match = _best_reference(names, references)
            report = verify(root, match[1], match[0], match[2]) if match else None
            results.append(
                CachedSnapshot(
                    repo.repo_id,
                    repo.repo_type,
                    revision.commit_hash,
                    tuple(sorted(revision.refs)),
                    root,
                    names,
                    corrupt,
                    report,
                    match[0] if match else None,
                )
            )
    for warning in info.warnings:  # a repository the scanner found damaged (a missing blob, a bad ref)
        results.append(
            CachedSnapshot(
                "(unreadable)", "", "", (), Path(str(getattr(warning, "repo_path", ""))), (), (("", str(warning)),)
            )
        )
    return results


def _check_refs(cache_dir: Path | None) -> None:
    """Refuse a cache whose refs the hub client would read forever (a FIFO) or whole (a huge file).

    scan_cache_dir opens every file under each repository's refs/ and reads it without a bound.
    """
    from huggingface_hub import constants

    root = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()
    if not root.is_dir():
        return  # scan_cache_dir says what is wrong with it
    for repo in root.iterdir():
        refs = repo / "refs"
        if not refs.is_dir():
            continue
        for folder, _, names in os.walk(refs):
            for name in names:
                ref = Path(folder, name)
                try:
                    info = ref.stat()
                except OSError:
                    continue  # a broken link: the scanner reports it
                if not stat.S_ISREG(info.st_mode):
                    _bad_ref(ref, "not a regular file")
                if info.st_size > REF_CAP:
                    _bad_ref(ref, f"{info.st_size:,} bytes, where a ref holds one commit")


def _bad_ref(ref: Path, why: str) -> NoReturn:
    raise UnreadableInput(f"hub cache ref {ref} is {why}; delete it or give another --cache-dir")


def _best_reference(
    names: tuple[str, ...], references: list[tuple[str, Checkpoint, tuple[str, ...]]]
) -> tuple[str, Checkpoint, tuple[str, ...]] | None:
    """The reference sharing the most files with the snapshot, if it shares at least half of its own."""
    have = set(names)
    best: tuple[int, tuple[str, Checkpoint, tuple[str, ...]]] | None = None
    for reference in references:
        wanted = {f.path for f in reference[1].files}
        shared = len(wanted & have)
        if shared * 2 >= len(wanted) and shared and (best is None or shared > best[0]):
            best = (shared, reference)
    return best[1] if best else None
