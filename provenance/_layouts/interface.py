"""What a layout adapter is: a way to read a candidate in the layout its reference was written in.

Official weights circulate in several layouts (Meta's tensor-parallel shards, the Hugging Face one,
llama.cpp's GGUF) that hold the same numbers under other names, orders and splits. An adapter rebuilds
the candidate's tensors in the reference's layout from their bytes (no arithmetic), so the same numbers
give the same digests and the comparison stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from manifests.records import Checkpoint


@dataclass(frozen=True, slots=True)
class Adapted:
    """A candidate rebuilt in its reference's layout, the reference as it can be held against it, and the
    sentence the report gives for the mapping."""

    candidate: Checkpoint
    reference: Checkpoint
    note: str
    applied: tuple[str, ...] = ()  # the names of the layouts mapped, in order


class Layout(Protocol):
    """One mapping between two layouts; `adapt` answers None when it does not apply to this pair."""

    name: str

    def adapt(self, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False) -> Adapted | None:
        """The candidate (its files read from its root) in the reference's layout, keeping that root, or None.
        `sketch_all` sketches every rebuilt float tensor, so one rebuilt candidate serves references of one
        layout."""
        ...

    def comparable(self, reference: Checkpoint) -> Checkpoint:
        """The reference as it is held against a candidate this layout was mapped from (without what the
        other layout has no counterpart of)."""
        ...
