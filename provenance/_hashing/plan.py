"""What one file's bytes feed: the plan of digests to compute, and the whole-file hashers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from blake3 import blake3

ALGORITHMS = ("sha256", "blake3", "md5")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class HashPlan:
    """What to compute for one file: whole-file digests, and per-tensor parts for weights files."""

    digests: frozenset[str] = frozenset()
    parts: bool = False
    pieces: int = 0  # BEP 52 piece length for a pieces root and piece layer; 0 for none
    sketches: bool = False  # a sketch of every float tensor (casts, moments, sample), in the same read
    quants: frozenset[str] = frozenset()  # legacy GGUF types whose reference quantizer's blocks are digested
    only_if_size: int | None = None  # hash only a file of this size: any other size already decides its status


def _new_hasher(algorithm: str, threads: int) -> Any:
    if algorithm == "blake3":
        return blake3(max_threads=threads)
    return hashlib.new(algorithm)


def whole_file_hashers(plan: HashPlan, threads: int, extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A hasher per whole-file digest the plan asks for (and any in `extra`), in ALGORITHMS order."""
    wanted = plan.digests | extra
    return {name: _new_hasher(name, threads) for name in ALGORITHMS if name in wanted}


def update_all(hashers: list[Any], view: memoryview) -> None:
    for hasher in hashers:
        hasher.update(view)
