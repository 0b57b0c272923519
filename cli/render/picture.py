"""The drift picture: a layer-by-kind heatmap of change, on the terminal and as an SVG or PNG file."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from provenance import Drift, ProvenanceError

# (upper bound of relative change, terminal cell, RGB): unchanged, then decades of change
_SCALE: list[tuple[float, str, tuple[int, int, int]]] = [
    (0.0, "·", (235, 235, 235)),
    (1e-3, "░", (254, 224, 139)),
    (1e-2, "▒", (253, 174, 97)),
    (1e-1, "▓", (244, 109, 67)),
    (math.inf, "█", (165, 0, 38)),
]
_UNKNOWN = ("?", (120, 120, 200))  # changed, no figures (no sketches)
LEGEND = "· unchanged  ░ <0.1%  ▒ <1%  ▓ <10%  █ >=10%  ? changed (no sketch to measure it)"


def _bucket(value: float) -> tuple[str, tuple[int, int, int]]:
    if math.isnan(value):
        return _UNKNOWN
    for bound, char, color in _SCALE:
        if value <= bound:
            return char, color
    return _SCALE[-1][1], _SCALE[-1][2]


def terminal_lines(grid: Drift) -> list[str]:
    """Rows are layers, columns kinds (numbered, named in the key below)."""
    if not grid.layers:
        return []
    width = len(str(max(grid.layers)))
    lines = ["layer  " + " ".join(f"{i + 1:>2}" for i in range(len(grid.kinds)))]
    for layer in grid.layers:
        cells = [_bucket(grid.cells[(layer, kind)])[0] if (layer, kind) in grid.cells else " " for kind in grid.kinds]
        lines.append(f"{layer:>{width}}     " + " ".join(f" {c}" for c in cells))
    lines.append(LEGEND)
    lines += [f"  {i + 1:>2} {kind}" for i, kind in enumerate(grid.kinds)]
    return lines


def write_plot(grid: Drift, path: Path, *, force: bool = False) -> None:
    """An SVG (by its name) or PNG heatmap of the grid, written atomically."""
    from provenance import write_atomic

    if not grid.layers:
        raise ProvenanceError("no tensor names carry a layer number, so there is no layer-by-kind picture to draw")
    suffix = path.suffix.lower()
    if suffix == ".svg":
        write_atomic(path, _svg(grid).encode(), force=force)
    elif suffix == ".png":
        write_atomic(path, _png(grid), force=force)
    else:
        raise ProvenanceError(f"--plot {path}: give a file name ending in .svg or .png")


CELL = 18


def _svg(grid: Drift) -> str:
    label = max(len(k) for k in grid.kinds) * 7 + 10
    width = 40 + CELL * len(grid.layers) + 10
    height = label + CELL * len(grid.kinds) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + label}" height="{height}" font-family="monospace"'
        ' font-size="11">',
        '<text x="4" y="14">relative change per layer (columns) and tensor kind (rows)</text>',
    ]
    for row, kind in enumerate(grid.kinds):
        y = 30 + row * CELL
        parts.append(f'<text x="4" y="{y + 13}">{_escape(kind)}</text>')
        for col, layer in enumerate(grid.layers):
            value = grid.cells.get((layer, kind))
            if value is None:
                continue
            r, g, b = _bucket(value)[1]
            x = label + col * CELL
            title = "changed" if math.isnan(value) else f"{value:.3%}"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL - 1}" height="{CELL - 1}" fill="rgb({r},{g},{b})">'
                f"<title>layer {layer}, {_escape(kind)}: {title}</title></rect>"
            )
    for col, layer in enumerate(grid.layers):
        parts.append(f'<text x="{label + col * CELL + 2}" y="{30 + len(grid.kinds) * CELL + 12}">{layer}</text>')
    parts.append(f'<text x="4" y="{height - 6}">{_escape(LEGEND)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _png(grid: Drift) -> bytes:
    """One CELL-pixel square per (kind, layer), rows are kinds: no font, the SVG carries the labels."""
    rows, cols = len(grid.kinds), len(grid.layers)
    scanlines = bytearray()
    for row in range(rows * CELL):
        scanlines.append(0)
        kind = grid.kinds[row // CELL]
        for col in range(cols * CELL):
            value = grid.cells.get((grid.layers[col // CELL], kind))
            edge = row % CELL == CELL - 1 or col % CELL == CELL - 1
            rgb = (255, 255, 255) if value is None or edge else _bucket(value)[1]
            scanlines += bytes(rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", cols * CELL, rows * CELL, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(scanlines)))
        + chunk(b"IEND", b"")
    )
