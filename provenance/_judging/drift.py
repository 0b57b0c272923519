"""Drift per layer and tensor kind: the shape of a change, for a table and a picture.

Tensor names carry their layer (`model.layers.12.self_attn.q_proj.weight`, `blk.12.attn_q.weight`,
`transformer.h.12.attn.c_attn.weight`); the rest of the name is the kind. A fine-tune of some layers,
of attention only, or of everything reads at a glance from this grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from provenance.report import Report, TensorStatus

_LAYER = re.compile(r"^(?P<prefix>.*?)(?:^|\.)(?:layers|blk|h|layer|block|blocks)\.(?P<index>\d+)\.(?P<kind>.+)$")


@dataclass(frozen=True, slots=True)
class Drift:
    """Relative change per (layer, kind): 0 for bit-identical, NaN when changed without figures."""

    layers: tuple[int, ...]
    kinds: tuple[str, ...]
    cells: dict[tuple[int, str], float]
    outside: dict[str, float]  # tensors outside the layers (embeddings, final norm, head)

    @property
    def changed(self) -> bool:
        return any(v != 0 for v in [*self.cells.values(), *self.outside.values()])


def layer_and_kind(name: str) -> tuple[int, str] | None:
    match = _LAYER.match(name)
    if match is None:
        return None
    return int(match["index"]), match["kind"]


def drift(report: Report) -> Drift:
    """The layer-by-kind grid of a report's tensors, what `provenance diff` draws; a changed tensor's value is
    its sampled relative change (from sketches), NaN without one. Raises nothing."""
    cells: dict[tuple[int, str], float] = {}
    outside: dict[str, float] = {}
    for t in report.tensors:
        if t.file is None or t.status in (TensorStatus.MISSING, TensorStatus.EXTRA):
            continue
        if t.status is TensorStatus.MATCH:
            value = 0.0
        elif t.change is not None:
            value = t.change
        elif t.status is TensorStatus.CAST:
            value = 0.0
        else:
            value = math.nan
        place = layer_and_kind(t.name)
        if place is None:
            outside[t.name] = value
        else:
            cells[place] = value
    layers = tuple(sorted({layer for layer, _ in cells}))
    kinds = tuple(sorted({kind for _, kind in cells}))
    return Drift(layers, kinds, cells, outside)
