"""What names a hub repository and what its metadata says: the records an audit and the CLI share,
without the client that fetches them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from manifests.names import check_relative
from provenance.errors import HubError, UnsafePath

PREFIX = "hf://"
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


@dataclass(frozen=True, slots=True)
class RepoRef:
    """`hf://ORG/REPO[@REVISION]`: a model repository and the branch, tag or commit to read."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RepoRef:
        text = spec.removeprefix(PREFIX)
        repo_id, _, revision = text.partition("@")
        if not spec.startswith(PREFIX) or not REPO_ID.fullmatch(repo_id) or (_ and not revision):
            raise HubError(f"{spec!r} is not a hub repository; write hf://ORG/REPO or hf://ORG/REPO@REVISION")
        return cls(repo_id, revision or None)

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True, slots=True)
class HubFile:
    path: str
    size: int
    sha256: str | None  # what the hub's LFS metadata claims; None for files kept in git itself
    lfs: bool
    oid: str | None = None  # the git blob id: the cache's blob name for a file kept in git itself


@dataclass(frozen=True, slots=True)
class HubSnapshot:
    """A repository at one commit, as its metadata describes it."""

    ref: RepoRef
    commit: str
    files: tuple[HubFile, ...]

    def file(self, path: str) -> HubFile | None:
        return next((f for f in self.files if f.path == path), None)


def is_hub_spec(text: str) -> bool:
    """Whether a command-line target names a hub repository (hf://ORG/REPO[@REV]) rather than a path."""
    return text.startswith(PREFIX)


_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_OID = re.compile(r"[0-9a-f]{40}")
MAX_SIZE = 1 << 50  # a petabyte: anything larger in the hub's metadata is not a real file


def _checked(ref: RepoRef, path: str, size: object, sha256: object) -> tuple[int, str | None]:
    """A file's size and claimed sha256 from the hub's metadata, refused unless they make sense."""
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise HubError(f"{ref}: the hub gives {path} the size {size!r}; it does not answer like the Hugging Face Hub")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise HubError(f"{ref}: the hub gives {path} the sha256 {str(sha256)[:80]!r}, which is not 64 lowercase hex")
    return size, sha256


def hub_file(ref: RepoRef, sibling: Any) -> HubFile:
    """One file of the hub's metadata (a RepoSibling), refused unless its path, size and digests make sense."""
    try:
        path = check_relative(sibling.rfilename)
    except UnsafePath as exc:
        raise HubError(f"{ref}: the hub lists a file with an unsafe path: {exc}") from None
    lfs = sibling.lfs
    size, sha256 = _checked(
        ref, path, lfs.size if lfs is not None else sibling.size, lfs.sha256 if lfs is not None else None
    )
    if lfs is not None and sha256 is None:
        raise HubError(f"{ref}: the hub gives {path} LFS metadata without a sha256")
    oid = sibling.blob_id if isinstance(sibling.blob_id, str) and _GIT_OID.fullmatch(sibling.blob_id) else None
    return HubFile(path, size, sha256, lfs is not None, oid)
