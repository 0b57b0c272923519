"""Relative paths inside a checkpoint: the only kind a manifest may name or a scan may follow."""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from provenance.errors import UnreadableInput, UnsafePath

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


def set_aside(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether a user's --ignore glob (fnmatch, on the relative path) matches the path or a folder it lies in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(prefix, pattern) for pattern in patterns for prefix in prefixes)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


@contextmanager
def _walk_errors(target: Path) -> Iterator[None]:
    """One clear error for a folder that cannot be walked, instead of an OSError's traceback."""
    try:
        yield
    except RecursionError:  # os.walk recurses once per level (Python < 3.12)
        raise UnreadableInput(
            f"{_shown(target)} holds folders nested too deep (about a thousand levels) to be walked; "
            "no checkpoint is laid out so: flatten it"
        ) from None
    except RuntimeError:  # pathlib's "Symlink loop from ..." (Python < 3.13)
        raise UnsafePath(f"a symlink in {_shown(target)} loops back on itself; remove it and retry") from None
    except OSError as exc:  # a path longer than PATH_MAX, a folder that cannot be listed
        hint = "move the checkpoint to a shorter path" if exc.errno == errno.ENAMETOOLONG else "check its permissions"
        raise UnreadableInput(f"cannot read {_shown(exc.filename or target)}: {exc.strerror}; {hint}") from None


def _shown(path: Path | str, keep: int = 80) -> str:
    """A path for a one-line error: its two ends when it is very long."""
    text = str(path)
    return text if len(text) <= 2 * keep + 3 else f"{text[:keep]}...{text[-keep:]}"


def _raise(error: OSError) -> None:
    """os.walk's error hook: a folder that cannot be listed stops the scan instead of vanishing from it."""
    raise error


def list_files(
    target: Path,
    *,
    allow_symlinks: bool = False,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    exclude: frozenset[Path] = frozenset(),
    patterns: tuple[str, ...] = (),
    left_out: list[str] | None = None,
) -> tuple[Path, list[str]]:
    """The root and the sorted relative paths of the files a checkpoint consists of.

    `target` is a directory or a single file. File symlinks that resolve inside the directory are
    followed; one that leaves it is refused unless `allow_symlinks`; symlinked directories are refused.
    Paths in `ignore` (a manifest's ignore_paths) and in `exclude` (the manifest being written or read,
    when it sits inside the checkpoint) are left out, and so is ALWAYS_LEFT_OUT. Files matching the
    user's `patterns` (--ignore) are left out too, and appended to `left_out` so the report can list them.
    """
    with _walk_errors(target):
        ignore = (*ignore, *ALWAYS_LEFT_OUT)
        if not target.exists():
            raise UnreadableInput(f"{target} does not exist; give the checkpoint's directory or file")
        if target.is_file():
            return target.parent, [target.name]
        if not target.is_dir():
            raise UnreadableInput(f"{target} is neither a file nor a directory")
        root = target.resolve()
        excluded = {p.resolve() for p in exclude}
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=_raise, followlinks=False):
            rel_dir = Path(dirpath).relative_to(root)
            dirnames[:] = sorted(d for d in dirnames if (rel_dir / d).as_posix() not in ignore)
            for dirname in dirnames:
                if (Path(dirpath) / dirname).is_symlink():
                    raise UnsafePath(
                        f"{Path(dirpath) / dirname} is a symlinked directory, which is not followed; "
                        "copy or link the files themselves"
                    )
            for filename in filenames:
                rel = (rel_dir / filename).as_posix()
                full = Path(dirpath) / filename
                _check_name(rel)
                if rel in ignore or full.resolve() in excluded:
                    continue
                if patterns and set_aside(rel, patterns):
                    if left_out is not None:
                        left_out.append(rel)
                    continue
                if full.is_symlink():
                    _check_link(full, root, allow_symlinks)
                    if not full.resolve().is_file():
                        continue
                elif not full.is_file():
                    continue  # sockets, fifos, devices: never part of a checkpoint
                found.append(rel)
        return root, sorted(found)


def _check_name(rel: str) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath(
            f"{rel.encode('utf-8', 'backslashreplace').decode()} is not a valid UTF-8 name; manifests name "
            "files in UTF-8: rename it"
        ) from None


def _check_link(link: Path, root: Path, allow_symlinks: bool) -> None:
    if not allow_symlinks and not _inside(link.resolve(), root):
        raise UnsafePath(
            f"{link} is a symlink that leaves the checkpoint (to {link.resolve()}); "
            "pass --allow-symlinks if that is intended"
        )
