"""Turn a checkpoint on disk into fingerprints: in full for a manifest, or just what a reference needs."""

from __future__ import annotations

import dataclasses
import functools
import json
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from manifests.io import PARSE_BUDGET, parse_cost
from manifests.names import DEFAULT_IGNORE
from manifests.records import (
    MAX_TENSORS,
    Checkpoint,
    FileFingerprint,
    IndexEntry,
    Role,
    ShardIndex,
    is_weights_file,
    role_of,
)
from provenance._formats.unpickler import ALLOWED, PICKLE_CAP, list_globals
from provenance._hashing.engine import HashPlan, file_sizes, hash_files
from provenance._hashing.paths import list_files
from provenance.errors import UnreadableInput

INDEX_CAP = 64 << 20  # a shard index larger than this is not read for its weight map
INDEX_ENTRIES = 1_000_000  # one entry per tensor: ten times the tensors of the largest released checkpoints
PICKLES = (".pkl", ".pickle")  # pickles no weights reader claims: read only for what they would import


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
    allow_symlinks: bool = True,
) -> list[FileFingerprint]:
    sizes = file_sizes(root, [path for path, _ in jobs])
    advance: Callable[[int], None] | None = None
    if progress is not None:
        progress.begin(sum(sizes.values()), label)
        advance = progress.advance
    try:
        return hash_files(root, jobs, strict=strict, progress=advance, sizes=sizes, allow_symlinks=allow_symlinks)
    finally:
        if progress is not None:
            progress.end()


def fingerprint_plan(
    piece_length: int = 0, sketches: bool = False, quants: frozenset[str] = frozenset()
) -> Callable[[str], HashPlan]:
    """Everything a manifest records: SHA-256 for OMS, BLAKE3 parts for weights, BLAKE3 for the rest.

    With a piece length, each file's BEP 52 pieces root and piece layer too (one more SHA-256 pass);
    with sketches, a sketch of every float tensor; with quants, the digests of the reference quantizer's
    blocks of every float tensor it could quantize, in each of those GGUF types.
    """

    def plan(path: str) -> HashPlan:
        if is_weights_file(path):
            return HashPlan(frozenset({"sha256"}), parts=True, pieces=piece_length, sketches=sketches, quants=quants)
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
    tensor_level = reference.tensor_level  # computed once: it looks at every reference file

    def plan(path: str) -> HashPlan:
        ref = by_path.get(path)
        if ref is None:
            return HashPlan(parts=tensor_level and is_weights_file(path))
        if ref.has_layout:
            return HashPlan(parts=True)
        # A file that holds no tensors and is not the reference's size is modified whatever its bytes:
        # not read (a sparse 1 TiB config.json would take hours).
        size = None if is_weights_file(path) else ref.size
        if "blake3" in ref.digests:
            return HashPlan(frozenset({"blake3"}), only_if_size=size)
        return HashPlan(frozenset(ref.digests), only_if_size=size)

    return plan


def scan(
    target: Path,
    plan: Callable[[str], HashPlan],
    *,
    strict: bool,
    allow_symlinks: bool = False,
    exclude: frozenset[Path] = frozenset(),
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    patterns: tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
    label: str = "hashing",
) -> Checkpoint:
    """Fingerprint every file of a checkpoint (a directory or one file) according to `plan`; `patterns`
    are the user's --ignore globs, the files they match listed in `set_aside`."""
    left_out: list[str] = []
    root, paths = list_files(
        target, allow_symlinks=allow_symlinks, exclude=exclude, ignore=ignore, patterns=patterns, left_out=left_out
    )
    if not paths:
        raise UnreadableInput(f"{target} holds no files; give the checkpoint's directory")
    jobs = [(p, plan(p)) for p in paths]
    # The listing refused symlinks leaving a folder; the engine refuses one repointed since (one file given
    # by its own path is taken wherever it leads, as the listing takes it).
    outside = allow_symlinks or not target.is_dir()
    files = _run(root, jobs, strict=strict, progress=progress, label=label, allow_symlinks=outside)
    files = with_meaning(root, files)
    if strict:
        return _bounded(Checkpoint(files=tuple(files), set_aside=tuple(left_out), root=root), target)
    # A checkpoint under verification: its shard indexes are loading instructions to check, and its
    # pickles are named with what they would import.
    indexes = read_indexes(root, paths)
    weight_map = {e.tensor: e.path for index in indexes for e in index.entries if e.path is not None}
    files = [_with_hazard(root, f) for f in files]
    checkpoint = Checkpoint(tuple(files), weight_map=weight_map, indexes=indexes, set_aside=tuple(left_out), root=root)
    return _bounded(checkpoint, target)


def with_meaning(root: Path, files: list[FileFingerprint]) -> list[FileFingerprint]:
    """Each small settings or tokenizer file with its meaning (parsed, bounded), read after hashing: what
    lets it be compared key by key, and with another layout's counterpart."""
    from provenance._formats.side_files import meanings

    found = meanings(root, [f.path for f in files if f.role is Role.OTHER and f.error is None])
    return [dataclasses.replace(f, meaning=found[f.path]) if f.path in found else f for f in files]


def _bounded(checkpoint: Checkpoint, target: Path) -> Checkpoint:
    """A checkpoint of more tensors than a manifest may hold is refused: neither side could be compared in bounds."""
    if checkpoint.tensor_count > MAX_TENSORS:
        raise UnreadableInput(
            f"{target} holds {checkpoint.tensor_count:,} tensors, more than the {MAX_TENSORS:,} any release holds"
        )
    return checkpoint


def _with_hazard(root: Path, file: FileFingerprint) -> FileFingerprint:
    """A pickle no reader claims, with the globals it would import (read from its opcodes, never run)."""
    if not file.path.lower().endswith(PICKLES):
        return file
    try:
        with open(root / file.path, "rb") as stream:
            names = list_globals(stream.read(PICKLE_CAP))
    except OSError:
        return file
    refused = [n for n in names if tuple(n.rsplit(".", 1)) not in ALLOWED and not n.startswith("(")]
    if refused:
        hazard = f"a pickle that imports {', '.join(sorted(set(refused))[:5])} (not allowed: loading it could run code)"
    else:
        hazard = f"a pickle{' importing ' + ', '.join(sorted(set(names))[:5]) if names else ''}"
    return dataclasses.replace(file, hazard=hazard)


def read_indexes(root: Path, paths: list[str]) -> tuple[ShardIndex, ...]:
    """Every shard index of a checkpoint on disk, each entry resolved as transformers resolves it (the
    index's folder joined with the name written), and whether a file is there."""
    return tuple(_read_index(root, path) for path in paths if role_of(path, is_weights_file(path)) is Role.INDEX)


def _read_index(root: Path, path: str) -> ShardIndex:
    full = root / path
    try:
        if full.stat().st_size > INDEX_CAP:
            return ShardIndex(path, error=f"larger than {INDEX_CAP >> 20} MiB, not read")
        data = full.read_bytes()
    except OSError:
        return ShardIndex(path, error="not valid JSON")

    @functools.cache
    def exists(joined: str) -> bool:  # once per shard, not once per tensor
        return (root / joined).is_file()

    return parse_index(path, data, exists)


def parse_index(path: str, data: bytes, exists: Callable[[str], bool]) -> ShardIndex:
    """A shard index's entries from its bytes (on disk or from a hub), each resolved as transformers resolves
    it: the index's folder joined with the name written; `exists` says whether a file is at a resolved path."""
    if len(data) > INDEX_CAP:
        return ShardIndex(path, error=f"larger than {INDEX_CAP >> 20} MiB, not read")
    if parse_cost(data) > PARSE_BUDGET:
        return ShardIndex(
            path, error=f"too many JSON values (parsing would take over {PARSE_BUDGET >> 20} MiB), not read"
        )
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return ShardIndex(path, error="not valid JSON")
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict):
        return ShardIndex(path, error="no weight_map object")
    if len(weight_map) > INDEX_ENTRIES:
        return ShardIndex(path, error=f"{len(weight_map):,} entries, more than any checkpoint has tensors; not read")
    folder = posixpath.dirname(path)
    entries: list[IndexEntry] = []
    for tensor, target in weight_map.items():
        if not isinstance(target, str):
            return ShardIndex(path, error=f"the entry for {tensor!r} is not a file name")
        joined = posixpath.normpath(posixpath.join(folder, target))
        inside = (
            not posixpath.isabs(target) and joined != ".." and not joined.startswith("../") and "\x00" not in target
        )
        entries.append(IndexEntry(tensor, target, joined if inside else None, inside and exists(joined)))
    return ShardIndex(path, tuple(entries))
