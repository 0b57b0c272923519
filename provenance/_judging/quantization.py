"""Whether quantized values can be the release's values rounded to their quantization grid.

llama.cpp's legacy block types (Q8_0, Q5_1, Q5_0, Q4_1, Q4_0) store blocks of 32 values as a float16
scale `d` (and for the `_1` types a float16 minimum `m`) with small integers: each value is
`q * d (+ m)`, and the quantizer picks, for each value, the nearest level. So at every sampled position,
the release's value must lie within half a step of the candidate's dequantized value, up to the float16
rounding of `d` and `m` (and a full step at the clipped top level of Q4_0 and Q5_0). A quantization of
the release passes at every sample; a quantization of changed weights fails wherever the change moved
a value past half a step, which an 8-bit grid makes plain at 1% of relative change.

llama.cpp's importance-weighted quantizers (an imatrix, recorded in the file's `quantize.imatrix.*` keys)
search the 4- and 5-bit scales and may then leave a level one off the nearest: for those, levels within
one step and a half are consistent with the release and prove nothing either way. Q8_0 has no such
quantizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from manifests.records import TensorFingerprint
from provenance.report import TensorStatus

BLOCK = 32
# type -> (bytes per block, whether a float16 minimum follows the scale, the top level that clips, most levels
# from zero)
LEGACY = {
    "Q8_0": (34, False, None, 127),
    "Q5_1": (24, True, None, 31),
    "Q5_0": (22, False, 15, 16),
    "Q4_1": (20, True, None, 15),
    "Q4_0": (18, False, 7, 8),
}
HALF_ULP = 2.0**-11  # float16's rounding, relative, for normal numbers
HALF_SPACING = 2.0**-25  # and absolute, below its smallest normal (scales of blocks of tiny values)


@dataclass(frozen=True, slots=True)
class Grid:
    """The quantization grid at a sketch's sampled positions: each block's scale (signed) and minimum."""

    kind: str
    steps: tuple[float, ...]
    mins: tuple[float, ...]
    weighted: bool = False  # quantized with an importance matrix
    spans: tuple[bool, ...] = ()  # whether each sampled block reaches its extreme level, as a faithful one does


@dataclass(frozen=True, slots=True)
class Misses:
    """Sampled values off the nearest level to the release's value, and how many of those are further
    than an importance-weighted quantizer may leave them."""

    off: int
    far: int
    unspanned: int = 0  # sampled blocks that reach no extreme level: a scale larger than the values need

    def faithful(self) -> bool:
        """Every sample on the level nearest the release's value, in blocks scaled as the reference
        quantizers scale them."""
        return self.off == 0 and self.unspanned == 0

    def consistent(self, grid: Grid) -> bool:
        """Whether the release's values, quantized by the quantizer the file names, could give these: an
        importance-weighted quantizer searches its 4- and 5-bit scales and may leave a level one off."""
        return self.faithful() or (grid.weighted and grid.kind != "Q8_0" and self.far == 0)


def grid_at(kind: str, raw: Any, positions: Any, weighted: bool = False) -> Grid | None:
    """The grid of a legacy-quantized tensor at flat element `positions` of its stored order; None for
    types whose levels are not the nearest ones by construction (K-quants search their scales)."""
    import numpy as np

    if kind not in LEGACY:
        return None
    size, has_min, _, _ = LEGACY[kind]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)[np.asarray(positions, dtype=np.int64) // BLOCK]
    halves = np.ascontiguousarray(blocks[:, :4]).view(np.float16).astype(np.float64)
    steps = halves[:, 0]  # signed: Q4_0 and Q5_0 scale by the block's extreme value over a negative level
    mins = halves[:, 1] if has_min else np.zeros(len(steps))
    spans = _spans(kind, blocks, steps, mins)
    return Grid(kind, tuple(float(s) for s in steps), tuple(float(m) for m in mins), weighted, spans)


def _spans(kind: str, blocks: Any, steps: Any, mins: Any) -> tuple[bool, ...]:
    """Whether each block reaches the level its extreme value must take when the scale is computed from
    the block (the reference quantizers): a scale made larger than the values need reaches none."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    with np.errstate(all="ignore"):
        values = dequantize(np.ascontiguousarray(blocks), GGMLQuantizationType[kind]).reshape(len(blocks), BLOCK)
        levels = np.round((values - mins[:, None]) / np.where(steps != 0, steps, 1.0)[:, None])
    # The level a faithful block's extreme value takes: with a minimum, both ends (0 and the top); the
    # asymmetric types scale by the extreme over their most negative level; Q8_0 by the largest magnitude.
    _, has_min, top, most = LEGACY[kind]
    low, high = (0, most) if has_min else (-most, None) if top is not None else (None, most)
    reach = np.ones(len(blocks), dtype=bool)
    if low is not None:
        reach &= np.nanmin(np.where(np.isfinite(levels), levels, np.nan), axis=1, initial=np.inf) == low
    if high is not None:
        top = np.abs(levels) if low is None else levels
        reach &= np.nanmax(np.where(np.isfinite(top), top, np.nan), axis=1, initial=-np.inf) == high
    return tuple(bool(r) for r in (reach | (steps == 0)))  # a block of one value has no scale to reach


def off_grid(reference: tuple[float, ...], candidate: tuple[float, ...], grid: Grid) -> Misses:
    """Which sampled values of the candidate cannot be the nearest level to the release's value."""
    import numpy as np

    x = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    d = np.asarray(grid.steps, dtype=np.float64)
    m = np.asarray(grid.mins, dtype=np.float64)
    if not (len(x) == len(c) == len(d)):
        return Misses(0, 0)
    ok = np.isfinite(x)  # a release value that is not a number says nothing about the candidate's
    broken = ~(np.isfinite(c) & np.isfinite(d) & np.isfinite(m))  # and a candidate's value or scale that is not, fails
    c, d, m = (np.where(broken, 0.0, v) for v in (c, d, m))
    step = np.abs(d)
    _, _, top, most = LEGACY[grid.kind]
    # The quantizer picked each level q with float32 scales; the file keeps them rounded to float16. So
    # x = q * d' + m' +- d'/2 with |d' - d| and |m' - m| at most a float16 rounding, and |q| at most
    # (|c| + |m|) / |d| (and the type's range): the bound below is that, with float32's arithmetic on top.
    slip_d = np.maximum(step * HALF_ULP, HALF_SPACING)
    slip_m = np.where(m != 0, np.maximum(np.abs(m) * HALF_ULP, HALF_SPACING), 0.0)
    with np.errstate(all="ignore"):
        levels = np.minimum(np.where(step > 0, (np.abs(c) + np.abs(m)) / step, most), most)
    reach = 0.5 * (step + slip_d)
    if top is not None:  # values past the top level clip to it: up to a whole step away
        level = np.round(c / np.where(d != 0, d, 1.0))
        reach = np.where((d != 0) & (level == top), step + slip_d, reach)
    slips = (levels + 1) * slip_d + slip_m + 2.0**-20 * (np.abs(c) + step)
    miss = np.where(broken, np.inf, np.abs(x - c))[ok]
    off = int(np.count_nonzero(miss > (reach + slips)[ok]))
    far = int(np.count_nonzero(miss > (1.5 * step + slips)[ok]))
    spans = np.asarray(grid.spans, dtype=bool) if len(grid.spans) == len(x) else np.ones(len(x), dtype=bool)
    return Misses(off, far, int(np.count_nonzero(~spans[ok])))


def by_quant_digest(ref: TensorFingerprint, cand: TensorFingerprint) -> tuple[TensorStatus, str, None] | None:
    """What the release's recorded quantization digest proves of a candidate in that GGUF type; None when the
    release has none for it (the sampled checks then judge), or when the file says an importance matrix chose
    its 4- and 5-bit scales, which no reference quantizer reproduces.

    The digest is of the blocks the reference quantizer makes of the release's values in the release's
    order: blocks that equal them are that conversion, bit for bit. Blocks that differ are not, whatever
    their sampled levels say (one altered block hides between samples)."""
    recorded = (ref.quants or {}).get(cand.dtype)
    if recorded is None or cand.blake3 is None:
        return None
    if recorded == cand.blake3:
        detail = f"exact {cand.dtype} quantization of the release's values (proven by the reference quantizer's digest)"
        return TensorStatus.QUANTIZED, detail, None
    grid = cand.sketch.grid if cand.sketch is not None else None
    if grid is not None and grid.weighted and cand.dtype != "Q8_0":
        return None
    detail = (
        f"{cand.dtype} blocks differ from those the reference quantizer (llama.cpp's converter) makes of the "
        f"release's values: changed values, or a quantization of values other than the release's"
    )
    return TensorStatus.MODIFIED, detail, None
