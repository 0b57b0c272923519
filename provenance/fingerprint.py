"""Fingerprints: what the engine learns about each file and tensor, and what a manifest records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from provenance.formats.interface import MAX_TENSORS as MAX_TENSORS
from provenance.formats.interface import TreePath
from provenance.merkle import Pieces
from provenance.sketch import Sketch


class Role(StrEnum):
    """What a file is to a release: weights are compared tensor by tensor, the rest byte for byte."""

    WEIGHTS = "weights"
    INDEX = "index"  # a shard index (*.index.json): it belongs to the container, like a header
    OTHER = "other"  # config, tokenizer, params: must be identical


def role_of(path: str, is_weights: bool) -> Role:
    if is_weights:
        return Role.WEIGHTS
    if path.endswith(".index.json"):
        return Role.INDEX
    return Role.OTHER


class TensorFingerprint(NamedTuple):
    """A tensor and the BLAKE3 of its elements; `blake3` is None when its bytes were not all present.

    A named tuple for the same reason as TensorRecord: one is made per tensor on the hot path.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int
    blake3: str | None
    view: bool = False  # start:end is the storage the tensor is gathered from, shared with others
    damage: str | None = None  # why `blake3` is None when the bytes are present (zero-filled, not downloaded)
    sketch: Sketch | None = None  # float tensors, when sketches were asked for
    path: TreePath | None = None  # nested in a PyTorch object tree: the keys to it (`name` joins them)

    @property
    def key(self) -> tuple[str, TreePath | None]:
        """What a loader looks a tensor up by: its name, and for a nested one the keys that lead to it."""
        return (self.name, self.path)

    @property
    def intact(self) -> bool:
        return self.blake3 is not None


@dataclass(frozen=True, slots=True)
class FileFingerprint:
    """One file of a checkpoint.

    `digests` holds whole-file digests by algorithm (sha256, blake3, md5). A weights file instead (or as
    well) carries its tensors and `container_blake3`, the BLAKE3 of every byte outside the tensors in file
    order: with the size and the tensor offsets, these prove byte identity without a whole-file digest.
    `error` says why a candidate file could not be read whole (cut short, unreadable header).
    """

    path: str
    size: int | None
    role: Role
    format: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    tensors: tuple[TensorFingerprint, ...] = ()
    container_blake3: str | None = None
    expected_size: int | None = None
    error: str | None = None
    pieces: Pieces | None = None  # BEP 52 pieces root and piece layer, when asked for (`--torrent-v2`)
    rebuilt: bool = False  # a layout adapter's tensor table, made from other files: no bytes of its own
    hazard: str | None = None  # what loading it would run, found without loading it (a pickle's imports)

    @property
    def has_layout(self) -> bool:
        """Whether the whole tensor table and container digest are known (a complete weights file)."""
        return self.container_blake3 is not None


class IndexEntry(NamedTuple):
    """One entry of a shard index: the file a loader opens for a tensor, as written and as resolved."""

    tensor: str
    target: str  # the file name as the index writes it
    path: str | None  # relative to the checkpoint's root; None when it leads outside the checkpoint
    on_disk: bool  # whether a file is there (scanned or not: ignored folders such as .git are not)


@dataclass(frozen=True, slots=True)
class ShardIndex:
    """A candidate's `*.index.json`: a loading instruction that transformers follows entry by entry."""

    path: str
    entries: tuple[IndexEntry, ...] = ()
    error: str | None = None  # why it cannot be read as a shard index (a loader following it fails or errs)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """All files of a checkpoint (or of a manifest's release), sorted by path."""

    files: tuple[FileFingerprint, ...]
    weight_map: dict[str, str] = field(default_factory=dict)  # tensor -> file, from the shard indexes
    indexes: tuple[ShardIndex, ...] = ()  # a checkpoint on disk under verification: its shard indexes read
    set_aside: tuple[str, ...] = ()  # files left out by the user's --ignore patterns, listed in the report
    # What a layout adapter found when it held the candidate's settings (params.json, config.json, a GGUF's
    # key-values) against the release's: disagreements make the verdict modified, what it could not check
    # (the release's settings recorded by digest only) leaves it undecided.
    layout_changes: tuple[str, ...] = ()
    layout_doubts: tuple[str, ...] = ()
    # Derived once: asked per file by the comparison, so a property would cost files x files.
    in_another_layout: bool = field(init=False)  # a layout adapter rebuilt some tensor tables (release files absent)
    tensor_level: bool = field(init=False)  # some file's tensor table is known, not whole-file digests only

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_another_layout", any(f.rebuilt for f in self.files))
        object.__setattr__(self, "tensor_level", any(f.has_layout for f in self.files))

    @property
    def tensor_count(self) -> int:
        return sum(len(f.tensors) for f in self.files)
