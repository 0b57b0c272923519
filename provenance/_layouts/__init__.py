"""Layout adapters: a candidate read in its reference's layout, detected from both sides' names and files."""

from __future__ import annotations

from manifests.records import Checkpoint
from provenance._layouts.gguf_names import GgufKeyValues, GgufToHuggingFace
from provenance._layouts.interface import Adapted, Layout
from provenance._layouts.meta_merge import MetaToHuggingFace
from provenance._layouts.meta_split import HuggingFaceToMeta

LAYOUTS: tuple[Layout, ...] = (MetaToHuggingFace(), HuggingFaceToMeta(), GgufToHuggingFace(), GgufKeyValues())


def in_reference_layout(candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False) -> Adapted:
    """The candidate (a checkpoint on disk: an adapter reads its tensors again from its root) and the
    reference as they can be compared tensor by tensor, with a note per mapping applied; both unchanged, and
    no note, when they already share a layout. The adapted candidate keeps the candidate's root."""
    candidate.require_root("reading a candidate in its reference's layout")
    notes: list[str] = []
    applied: list[str] = []
    for layout in LAYOUTS:
        adapted = layout.adapt(candidate, reference, sketch_all=sketch_all)
        if adapted is not None:
            candidate, reference = adapted.candidate, adapted.reference
            notes.extend([adapted.note] if adapted.note else [])
            applied.extend(adapted.applied)
    return Adapted(candidate, reference, " / ".join(notes), tuple(applied))


def comparable(adapted: Adapted, reference: Checkpoint) -> Checkpoint:
    """Another reference of the same layout as the one `adapted` was made for, as it is held against
    that candidate: what lets one rebuilt candidate serve every reference of a layout."""
    for layout in LAYOUTS:
        if layout.name in adapted.applied:
            reference = layout.comparable(reference)
    return reference


__all__ = ["LAYOUTS", "Adapted", "Layout", "comparable", "in_reference_layout"]
