"""How one candidate tensor that is not bit-identical relates to the release's: a proven cast, values
within a cast's rounding, a quantization, or a change with figures, from the sketches when both sides
have them."""

from __future__ import annotations

import math

from manifests.records import TensorFingerprint, TreePath
from provenance._hashing.castback import WIDER
from provenance._hashing.sketch import compare_samples, not_numbers
from provenance._judging.quantization import Grid, by_quant_digest, off_grid
from provenance.report import TensorStatus

# Sampled relative change a K-quant of the same values stays within (the legacy types are held to their grid)
QUANT_TOLERANCE = {"Q6_K": 0.04, "Q5_K": 0.08, "Q4_K": 0.15}
CAST_TOLERANCE = {"F16": 2.0**-10, "BF16": 2.0**-7, "F32": 2.0**-23, "F64": 2.0**-52}  # half an ulp, relative


Figures = tuple[float, float] | None  # (relative change, correlation) on the sketches' samples
Classified = tuple[TensorStatus, str, Figures] | tuple[TensorStatus, str, Figures, bool]  # bool: see `proven`
DERIVED = 0.5  # a sampled correlation at least this high: the tensor derives from the release's
LOOSE_CORRELATION = 0.9  # a quantization that searches its scales still tracks the release's values this closely


def classify(ref: TensorFingerprint, cand: TensorFingerprint) -> Classified:
    """A tensor that is not bit-identical: a proven cast, values within a cast's rounding, a quantization,
    or a change with figures, from the sketches when both sides have them. A fourth element, False, marks
    a quantization that is consistent with the release but cannot rule out a change below its error."""
    if cand.shape != ref.shape:
        return TensorStatus.MODIFIED, _difference(ref, cand), None
    quantized = by_quant_digest(ref, cand)  # a GGUF type the release's manifest holds the blocks' digest of
    if quantized is not None:
        return quantized
    if cand.dtype != ref.dtype:
        proven = _by_cast_digest(ref, cand)
        if proven is not None:
            return proven
    if ref.sketch is None and cand.dtype != ref.dtype:  # a cast or a change: the release's numbers cannot tell
        detail = (
            f"dtype {cand.dtype}, expected {ref.dtype}: the reference has no sketch of it, so a conversion cannot "
            f"be told from a change (a sketched manifest would decide)"
        )
        return TensorStatus.MODIFIED, detail, None, False
    if ref.sketch is None or cand.sketch is None or not ref.sketch.sample:
        return TensorStatus.MODIFIED, _difference(ref, cand), None
    return _by_samples(ref, cand)


def _by_cast_digest(ref: TensorFingerprint, cand: TensorFingerprint) -> Classified | None:
    """What a cast digest proves about a tensor in another dtype, on either side; None when none does."""
    if ref.sketch is not None and ref.sketch.casts.get(cand.dtype) == cand.blake3:
        return TensorStatus.CAST, f"exact {ref.dtype} to {cand.dtype} cast (proven by digest)", None
    if cand.sketch is None or cand.sketch.casts.get(ref.dtype) != ref.blake3:
        return None
    lossless = cand.sketch.lossless
    if lossless is not None and ref.dtype in lossless:  # every value is a ref.dtype value: the release's
        return TensorStatus.CAST, f"the release's {ref.dtype} values in {cand.dtype} (they round back exactly)", None
    if lossless is not None and cand.dtype in WIDER.get(ref.dtype, ()):  # an upcast is always lossless
        detail = (
            f"dtype {cand.dtype}, expected {ref.dtype}: the values round to the release's but are not its "
            f"values widened (a change within {ref.dtype}'s rounding)"
        )
        return TensorStatus.MODIFIED, detail, _sampled(ref, cand), True
    return None


def _by_samples(ref: TensorFingerprint, cand: TensorFingerprint) -> Classified:
    """Both sides sketched: the sampled values say whether it is a quantization, a rounding or a change."""
    assert ref.sketch is not None and cand.sketch is not None
    change, correlation = compare_samples(ref.sketch.sample, cand.sketch.sample)
    size = len(ref.sketch.sample)
    broken = not_numbers(ref.sketch.sample, cand.sketch.sample)
    if broken:  # NaN or Inf where the release has numbers: no cast or quantization makes those
        detail = f"{broken} of {size} sampled values are NaN or Inf where the release's are numbers"
        return TensorStatus.MODIFIED, detail, (change, correlation)
    grid = cand.sketch.grid
    if grid is not None and len(grid.steps) == size:  # each sample's level checked against the release's value
        return _on_grid(ref, cand, grid, (change, correlation))
    tolerance = QUANT_TOLERANCE.get(cand.dtype)
    if tolerance is not None and change <= tolerance and correlation >= LOOSE_CORRELATION:
        detail = (
            f"{cand.dtype} quantization consistent with the release's values (sampled change {change:.2%}, within "
            f"the type's error): a change smaller than that error cannot be ruled out"
        )
        return TensorStatus.QUANTIZED, detail, (change, correlation), False
    narrower = max(CAST_TOLERANCE.get(ref.dtype, 0.0), CAST_TOLERANCE.get(cand.dtype, 0.0))
    if cand.dtype in WIDER.get(ref.dtype, ()):
        narrower = 0.0  # an upcast keeps every value: a sampled value that moved is a change, not rounding
    if cand.dtype != ref.dtype and change <= narrower:
        detail = f"values within {cand.dtype} rounding of the release's (sampled: {change:.1e})"
        return TensorStatus.CAST, detail, (change, correlation)
    if change == 0:
        detail = f"values differ, but none of the {size} sampled values changed (a sparse change)"
        return TensorStatus.MODIFIED, detail, (change, correlation)
    figures = f"relative change {change:.2%}, correlation {correlation:.3f} (sampled)"
    prefix = f"dtype {cand.dtype}, expected {ref.dtype}; " if cand.dtype != ref.dtype else ""
    return TensorStatus.MODIFIED, f"{prefix}values differ: {figures}", (change, correlation)


def _on_grid(ref: TensorFingerprint, cand: TensorFingerprint, grid: Grid, sampled: tuple[float, float]) -> Classified:
    """A quantized candidate whose sampled levels are known: faithful, consistent with a searching
    quantizer, or off the levels the release's values round to."""
    assert ref.sketch is not None and cand.sketch is not None
    change, correlation = sampled
    size = len(ref.sketch.sample)
    misses = off_grid(ref.sketch.sample, cand.sketch.sample, grid)
    if misses.faithful():
        detail = (
            f"{cand.dtype} quantization of the release's values: each of {size} sampled values is on the level "
            f"nearest the release's (sampled change {change:.2%})"
        )
        return TensorStatus.QUANTIZED, detail, sampled
    if misses.consistent(grid) and correlation >= LOOSE_CORRELATION:
        detail = (
            f"{cand.dtype} quantization with an importance matrix, consistent with the release's values "
            f"({misses.off} of {size} samples a level off the nearest, as such quantizers leave them; sampled "
            f"change {change:.2%}): a change smaller than its error cannot be ruled out"
        )
        return TensorStatus.QUANTIZED, detail, sampled, False
    off = misses.off or misses.unspanned
    what = "not on the level nearest the release's" if misses.off else "in blocks scaled beyond their values"
    figures = f"relative change {change:.2%}, correlation {correlation:.3f} (sampled)"
    return TensorStatus.MODIFIED, f"{off} of {size} sampled values are {what} ({cand.dtype}): {figures}", sampled


def renamed(ref: TensorFingerprint, cand: TensorFingerprint) -> str:
    """Why the release's numbers under another name (or nested otherwise in a PyTorch object tree) do not load."""
    if cand.name != ref.name or cand.path == ref.path:
        return f"the release's numbers under another name ({cand.name})"

    def where(path: TreePath | None) -> str:
        return "as one key" if path is None else "nested under keys " + " / ".join(repr(k) for k in path)

    return (
        f"the release's numbers {where(cand.path)} in the candidate's object tree, where the release has them "
        f"{where(ref.path)}: a loader looking up {ref.name!r} does not find them"
    )


def _sampled(ref: TensorFingerprint, cand: TensorFingerprint) -> Figures:
    """(relative change, correlation) on the samples, when both sides have them."""
    if ref.sketch is None or cand.sketch is None or not ref.sketch.sample:
        return None
    return compare_samples(ref.sketch.sample, cand.sketch.sample)


def finite(value: float) -> float | None:
    """A figure as JSON can carry it: rounded, and None where it is not a number."""
    return round(value, 6) if math.isfinite(value) else None


def _difference(ref: TensorFingerprint, cand: TensorFingerprint) -> str:
    if cand.dtype != ref.dtype:
        return f"dtype {cand.dtype}, expected {ref.dtype}"
    if cand.shape != ref.shape:
        return f"shape {list(cand.shape)}, expected {list(ref.shape)}"
    return "values differ"
