"""Walking a checkpoint on disk: the files a scan follows, the links it refuses, the user's --ignore."""

from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from manifests.names import ALWAYS_LEFT_OUT, DEFAULT_IGNORE
from provenance.errors import UnreadableInput, UnsafePath


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


_CACHE_KINDS = ("models--", "datasets--", "spaces--")


def link_bound(root: Path) -> Path:
    """The folder a checkpoint's symlinks may resolve into without --allow-symlinks: the checkpoint itself,
    or, for a Hugging Face cache snapshot (`models--ORG--NAME/snapshots/REV/...`, whose files link to
    `../../blobs/SHA`), that repository's cache folder: loaders read those very blobs, and a link leaving
    the repository's folder is refused as any other."""
    resolved = root.resolve()
    parts = resolved.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "snapshots" and parts[i - 1].startswith(_CACHE_KINDS) and len(parts) > i + 1:
            return Path(*parts[:i])
    return resolved


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
        bound = link_bound(root)
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
                    _check_link(full, bound, allow_symlinks)
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
