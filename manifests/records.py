"""The records a manifest holds and a scan produces: files, tensors, their digests and sketches.

The fingerprint of a checkpoint on disk and the release a manifest describes are the same records, so a
comparison never translates between two vocabularies. Nothing here reads weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from manifests.pieces import Pieces

# Tensors a checkpoint (or a manifest) may hold: a 405B-parameter release has about 9,000, the largest known a few
# tens of thousands; comparing this many stays within 60 s and 1 GiB, which DESIGN holds every input to.
MAX_TENSORS = 200_000

# The keys that lead to a tensor in a PyTorch object tree: a dict's key as text, a list's index as an int, so
# {"model": [t]} and {"model": {"0": t}} (both "model.0") are told apart, as torch.load's result does.
TreePath = tuple[str | int, ...]

# The file names a weights reader claims, by format: the only files whose tensors are compared.
WEIGHTS_SUFFIXES: dict[str, tuple[str, ...]] = {
    "safetensors": (".safetensors",),
    "torch": (".pt", ".pth", ".bin", ".ckpt"),
    "gguf": (".gguf",),
}


def is_weights_file(path: str) -> bool:
    """Whether a weights reader claims this file name."""
    return any(path.endswith(suffixes) for suffixes in WEIGHTS_SUFFIXES.values())


@dataclass(frozen=True, slots=True)
class Sketch:
    count: int
    mean: float
    std: float
    min: float
    max: float
    max_abs: float
    zeros: int
    nans: int
    infs: int
    sample: tuple[float, ...]
    casts: dict[str, str]  # target dtype -> BLAKE3 of the canonical cast's elements
    grid: Any = None  # a quantized candidate's grid at the sampled positions (never in a manifest)
    # The cast targets every element round-trips through (the values are that dtype's, widened): what makes
    # "it rounds back to the release's" a proof. None: not recorded (an older manifest), so nothing is proven.
    lossless: frozenset[str] | None = None
    # The moments (mean to infs) are over every moments_stride-th element; 1 (older manifests): every element.
    moments_stride: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "max_abs": self.max_abs,
            "zeros": self.zeros,
            "nans": self.nans,
            "infs": self.infs,
            "sample": [v if math.isfinite(v) else None for v in self.sample],  # JSON has no NaN or Inf
            "casts": dict(sorted(self.casts.items())),
            **({"lossless": sorted(self.lossless)} if self.lossless is not None else {}),
            **({"moments_stride": self.moments_stride} if self.moments_stride != 1 else {}),
        }


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
    # GGUF type -> BLAKE3 of the blocks the reference quantizer makes of these values (`--quant-digests`):
    # what proves a quantized copy exact, with or without a sketch
    quants: dict[str, str] | None = None

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
    # A small settings or tokenizer file's content as a loader reads it (a config's parsed object, a
    # vocabulary's summary): what lets it be compared by meaning, and with another layout's counterpart.
    meaning: dict[str, Any] | None = None

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
    root: Path | None = None  # where its files are on disk (a scan's); None for a manifest's release
    # Derived once: asked per file by the comparison, so a property would cost files x files.
    in_another_layout: bool = field(init=False)  # a layout adapter rebuilt some tensor tables (release files absent)
    tensor_level: bool = field(init=False)  # some file's tensor table is known, not whole-file digests only

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_another_layout", any(f.rebuilt for f in self.files))
        object.__setattr__(self, "tensor_level", any(f.has_layout for f in self.files))

    @property
    def tensor_count(self) -> int:
        return sum(len(f.tensors) for f in self.files)

    def require_root(self, needed_by: str) -> Path:
        """Where its files are, for `needed_by`, which reads them again. A checkpoint without a root (a
        manifest's release, or one built by hand) reaching such a reader is a caller's mistake: refused,
        never guessed from a path given elsewhere."""
        if self.root is None:
            raise ValueError(
                f"{needed_by} reads the checkpoint's files again, but this checkpoint has no root (a manifest's "
                "release, or one built without scan): pass the checkpoint a scan of the folder returned"
            )
        return self.root
