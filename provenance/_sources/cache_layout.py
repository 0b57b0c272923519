"""Where verified downloads land: the Hugging Face cache layout, or a plain folder.

Bytes are received into a staging file (`blobs/<sha256>.incomplete` in the cache, under
`.cache/huggingface/download/` in a folder) and moved into place only once they match the manifest, so
that nothing a loader reads (`from_pretrained`, `snapshot_download(local_files_only=True)`) was unverified:
in the cache a blob named by its etag, the snapshot's link to it and the revision's ref, as huggingface_hub
lays them out; in a folder the file under its own name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from provenance.errors import UnsafePath

_COMMIT = re.compile(r"[0-9a-f]{40}")


def _inside(root: Path, path: str) -> Path:
    """`root/path`, refused when an existing link on the way leads out of `root`."""
    target = root / path
    real_root = root.resolve()
    if not target.parent.resolve().is_relative_to(real_root):
        raise UnsafePath(f"{target} leads out of {root} through a symbolic link; remove the link, then retry")
    return target


@dataclass(frozen=True)
class HubCache:
    """One repository's folder in a Hugging Face cache (`models--ORG--NAME`), at one commit."""

    cache_dir: Path
    repo_id: str
    commit: str
    revision: str

    @property
    def repo_dir(self) -> Path:
        return self.cache_dir / ("models--" + self.repo_id.replace("/", "--"))

    @property
    def root(self) -> Path:
        """The snapshot folder: what snapshot_download returns and from_pretrained reads."""
        return self.repo_dir / "snapshots" / self.commit

    def staging(self, name: str) -> Path:
        blobs = self.repo_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        return _inside(blobs, f"{name}.incomplete")

    def existing(self, path: str) -> Path | None:
        """The file already in the snapshot, if any (its blob, read through the link)."""
        target = self.root / path
        return target if target.is_file() else None

    def commit_file(self, path: str, staged: Path, etag: str) -> Path:
        """Move verified bytes to `blobs/<etag>`, link the snapshot's `path` to it and write the ref."""
        blob = self.repo_dir / "blobs" / etag
        if staged != blob:
            os.replace(staged, blob)
        link = _inside(self.root, path)
        link.parent.mkdir(parents=True, exist_ok=True)
        fresh = link.with_name(f".{link.name}.provenance-link")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(os.path.relpath(blob, link.parent))
        os.replace(fresh, link)
        return link

    def discard(self, path: str) -> None:
        """Unlink the snapshot's `path` when the release's file is not what the source serves: a copy fetched
        before (by the hub client, unverified) must not stay where from_pretrained looks. Its blob stays: other
        snapshots may link to it."""
        link = self.root / path
        if link.is_symlink():
            link.unlink()

    def finish(self) -> None:
        """Point the revision's ref at the commit (a branch or tag name; a commit needs none)."""
        if _COMMIT.fullmatch(self.revision):
            return
        ref = _inside(self.repo_dir / "refs", self.revision)
        ref.parent.mkdir(parents=True, exist_ok=True)
        staged = ref.with_name(f".{ref.name}.provenance-ref")
        staged.write_text(self.commit)
        os.replace(staged, ref)


@dataclass(frozen=True)
class LocalFolder:
    """A plain folder the release's files are written into under their own names (`--local-dir`, `-o`)."""

    root: Path

    def staging(self, name: str) -> Path:
        folder = self.root / ".cache" / "huggingface" / "download"
        folder.mkdir(parents=True, exist_ok=True)
        return _inside(folder, f"{name}.incomplete")

    def existing(self, path: str) -> Path | None:
        target = _inside(self.root, path)
        return target if target.is_file() and not target.is_symlink() else None

    def commit_file(self, path: str, staged: Path, etag: str) -> Path:
        target = _inside(self.root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        os.replace(staged, target)
        return target

    def discard(self, path: str) -> None:
        """Nothing: a folder's files are the user's, never deleted (the report names the file not kept)."""

    def finish(self) -> None:
        """Nothing to point: a folder's files are found by name."""


Destination = HubCache | LocalFolder
