"""Turn a checkpoint on disk into fingerprints: in full for a manifest, or just what a reference needs."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from provenance.engine import HashPlan, file_sizes, hash_files
from provenance.errors import UnreadableInput
from provenance.fingerprint import Checkpoint, FileFingerprint, Role, role_of
from provenance.formats.detect import is_weights_file
from provenance.paths import DEFAULT_IGNORE, list_files

INDEX_CAP = 64 << 20  # a shard index larger than this is not read for its weight map


class ProgressReporter(Protocol):
    """Where the engine reports bytes read; the CLI draws it as a progress bar on stderr."""

    def begin(self, total: int, label: str) -> None: ...

    def advance(self, amount: int) -> None: ...

    def end(self) -> None: ...


def _run(
    root: Path,
    jobs: list[tuple[str, HashPlan]],
    *,
    strict: bool,
    progress: ProgressReporter | None,
    label: str,
) -> list[FileFingerprint]:
    sizes = file_sizes(root, [path for path, _ in jobs])
    advance: Callable[[int], None] | None = None
    if progress is not None:
        progress.begin(sum(sizes.values()), label)
        advance = progress.advance
    try:
        return hash_files(root, jobs, strict=strict, progress=advance, sizes=sizes)
    finally:
        if progress is not None:
            progress.end()


def fingerprint_plan(piece_length: int = 0, sketches: bool = False) -> Callable[[str], HashPlan]:
    """Everything a manifest records: SHA-256 for OMS, BLAKE3 parts for weights, BLAKE3 for the rest.

    With a piece length, each file's BEP 52 pieces root and piece layer too (one more SHA-256 pass);
    with sketches, a sketch of every float tensor.
    """

    def plan(path: str) -> HashPlan:
        if is_weights_file(path):
            return HashPlan(frozenset({"sha256"}), parts=True, pieces=piece_length, sketches=sketches)
        return HashPlan(frozenset({"sha256", "blake3"}), pieces=piece_length)

    return plan


def content_plan(path: str) -> HashPlan:
    """BLAKE3 only: what `diff` needs to compare two checkpoints on disk."""
    if is_weights_file(path):
        return HashPlan(parts=True)
    return HashPlan(frozenset({"blake3"}))


def plan_against(reference: Checkpoint) -> Callable[[str], HashPlan]:
    """The cheapest plan that still lets each candidate file be compared with the reference.

    A weights file of a reference with tensor tables is read for its tensors only (BLAKE3); a file the
    reference records by whole-file digests gets every one of them (md5 and sha256 lists are both checked).
    A candidate file the reference does not know is read only if it may hold reference tensors.
    """
    by_path = {f.path: f for f in reference.files}

    def plan(path: str) -> HashPlan:
        ref = by_path.get(path)
        if ref is None:
            return HashPlan(parts=reference.tensor_level and is_weights_file(path))
        if ref.has_layout:
            return HashPlan(parts=True)
        if "blake3" in ref.digests:
            return HashPlan(frozenset({"blake3"}))
        return HashPlan(frozenset(ref.digests))

    return plan


def scan(
    target: Path,
    plan: Callable[[str], HashPlan],
    *,
    strict: bool,
    allow_symlinks: bool = False,
    exclude: frozenset[Path] = frozenset(),
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    progress: ProgressReporter | None = None,
    label: str = "hashing",
) -> Checkpoint:
    """Fingerprint every file of a checkpoint (a directory or one file) according to `plan`."""
    root, paths = list_files(target, allow_symlinks=allow_symlinks, exclude=exclude, ignore=ignore)
    if not paths:
        raise UnreadableInput(f"{target} holds no files; give the checkpoint's directory")
    files = _run(root, [(p, plan(p)) for p in paths], strict=strict, progress=progress, label=label)
    # Only a checkpoint under verification needs its shard indexes (to explain a missing tensor).
    return Checkpoint(files=tuple(files), weight_map={} if strict else read_weight_maps(root, paths))


def read_weight_maps(root: Path, paths: list[str]) -> dict[str, str]:
    """Tensor -> file, from the checkpoint's shard indexes; a damaged index adds nothing.

    The index is container metadata: it can explain which shard a missing tensor lived in, but it is
    never evidence that a tensor is present or correct.
    """
    mapping: dict[str, str] = {}
    for path in paths:
        if role_of(path, is_weights_file(path)) is not Role.INDEX:
            continue
        full = root / path
        try:
            if full.stat().st_size > INDEX_CAP:
                continue
            document = json.loads(full.read_bytes())
        except (OSError, ValueError, RecursionError):
            continue
        weight_map = document.get("weight_map") if isinstance(document, dict) else None
        if not isinstance(weight_map, dict):
            continue
        folder = posixpath.dirname(path)
        for tensor, file in weight_map.items():
            if isinstance(file, str):
                mapping[tensor] = posixpath.normpath(posixpath.join(folder, file)) if folder else file
    return mapping
