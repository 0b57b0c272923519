"""What names a hub repository and what its metadata says: the records an audit and the CLI share,
without the client that fetches them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from provenance.errors import HubError

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
