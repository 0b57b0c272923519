"""The local Hugging Face Hub cache, read offline: what revisions of which repositories it holds, which
blob each of their files is, and whether a blob's bytes hash to the ETag it is stored under.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from provenance._hashing.engine import HashPlan, hash_file
from provenance.errors import UnreadableInput

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_OID = re.compile(r"[0-9a-f]{40}")
GIT_READ = 1 << 20
REF_CAP = 4096  # a ref holds one 40-character commit; the hub client reads it whole, unbounded


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision of one repository in the cache: its snapshot folder and each file's blob."""

    repo_id: str
    repo_type: str
    commit: str
    refs: tuple[str, ...]
    path: Path  # the snapshot folder: the revision's files as a checkpoint on disk
    files: tuple[str, ...]  # relative to `path`, sorted
    blobs: tuple[Path, ...]  # the blob each of `files` is, in the same order


@dataclass(frozen=True, slots=True)
class CacheContents:
    """Every revision the cache holds, sorted, and the repositories the hub client found damaged."""

    revisions: tuple[Revision, ...]
    damaged: tuple[tuple[Path, str], ...]  # (repository folder, what the client said: a missing blob, a bad ref)


def read_cache(cache_dir: Path | None) -> CacheContents:
    """What the cache at `cache_dir` (the client's default without one) holds, by the client's own scan;
    a cache that cannot be read is refused with what to give instead."""
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
    revisions: list[Revision] = []
    for repo in sorted(info.repos, key=lambda r: (r.repo_type, r.repo_id)):
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            root = revision.snapshot_path
            entries = sorted(revision.files, key=lambda f: str(f.file_path))
            revisions.append(
                Revision(
                    repo.repo_id,
                    repo.repo_type,
                    revision.commit_hash,
                    tuple(sorted(revision.refs)),
                    root,
                    tuple(f.file_path.relative_to(root).as_posix() for f in entries),
                    tuple(f.blob_path for f in entries),
                )
            )
    damaged = tuple((Path(str(getattr(w, "repo_path", ""))), str(w)) for w in info.warnings)
    return CacheContents(tuple(revisions), damaged)


@dataclass
class BlobCheck:
    """Blobs against the ETags they are stored under, each hashed once however many revisions point at it."""

    seen: dict[Path, str | None] = field(default_factory=dict)

    def check(self, blob: Path) -> str | None:
        if blob not in self.seen:
            self.seen[blob] = _check_blob(blob)
        return self.seen[blob]

    def corrupt(self, revision: Revision) -> tuple[tuple[str, str], ...]:
        """(file, why) for each of a revision's files whose blob does not hash to its own name."""
        return tuple(
            (name, why)
            for name, blob in zip(revision.files, revision.blobs, strict=True)
            if (why := self.check(blob)) is not None
        )


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
