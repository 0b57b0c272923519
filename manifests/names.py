"""Relative paths inside a checkpoint: the only kind a manifest may name, and the names a file system may
take for one another."""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Iterable

from manifests.errors import UnsafePath

# The paths model_signing leaves out by default; recorded in every manifest's ignore_paths.
DEFAULT_IGNORE = (".git", ".gitattributes", ".github", ".gitignore")
# Never part of a checkpoint, whatever a manifest's ignore_paths: the hub client's record of a
# `hf download --local-dir` (its metadata and locks), not a file of the release.
ALWAYS_LEFT_OUT = (".cache/huggingface",)


def check_relative(name: str) -> str:
    """Return `name` if it is a normalized relative POSIX path that stays inside its root, else raise."""
    if not isinstance(name, str) or not name:
        raise UnsafePath("a manifest names a file with an empty path; the manifest is damaged")
    if "\x00" in name or "\\" in name:
        raise UnsafePath(f"path {name!r} contains a NUL or backslash; the manifest is damaged or hostile")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(f"path {name!r} is absolute; manifests name files relative to the checkpoint")
    parts = name.split("/")
    if ".." in parts:
        raise UnsafePath(f"path {name!r} climbs out of the checkpoint with '..'; refusing it")
    if posixpath.normpath(name) != name or "." in parts:
        raise UnsafePath(f"path {name!r} is not normalized; the manifest is damaged or hostile")
    return name


def _fold(part: str) -> str:
    """Unicode's compatibility caseless form of a name (D146): what a case-insensitive file system (Windows,
    macOS) or a normalizing one (macOS's NFD) may take for the same name, and more: no false sameness is
    missed."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFD", part).casefold())
    return unicodedata.normalize("NFKD", folded.casefold())


def colliding_paths(paths: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of distinct paths (a file and a file, or a file and a folder) that differ only in case or
    Unicode form, each with the first one it collides with: downloaded or copied onto such a file
    system, one of the two silently replaces the other."""
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}
    pairs: list[tuple[str, str]] = []
    for path in sorted(paths):
        parts = path.split("/")
        keys = [_fold(p) for p in parts]
        key = tuple(keys)
        other = files.get(key) or folders.get(key)
        if other is not None and other != path:
            pairs.append((other, path))
        files.setdefault(key, path)
        for depth in range(1, len(parts)):
            folder, name = tuple(keys[:depth]), "/".join(parts[:depth])
            if folder in files and files[folder] != name:
                pairs.append((files[folder], path))
            folders.setdefault(folder, name)
    return pairs


def is_ignored(path: str, ignore: tuple[str, ...]) -> bool:
    """Whether a relative path, or a folder it lies in, is one of a manifest's ignore_paths."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in ignore for i in range(1, len(parts) + 1))
