"""Sketches of float tensors, built in the same streaming read as the digests.

A sketch is what lets a tensor that does not match bit for bit be classified: the digests of its
canonical float16 and bfloat16 casts (the stored value rounded directly to the target type, to nearest,
ties to even), so an exact cast is proven rather than guessed; moments (count, mean, std, min, max,
max-abs, zeros, NaN and Inf counts); and a seeded sample of values at positions that depend only on
the tensor's name and shape, so two copies of a tensor are sampled at the same elements.
"""

from __future__ import annotations

import hashlib
import math
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from blake3 import blake3

from manifests.records import Sketch

if TYPE_CHECKING:  # numpy is imported where sketches are made, not by every `verify` that only reads a manifest
    import numpy as np


SAMPLE = 64  # values kept per tensor
BLOCK = 1 << 18  # elements converted at a time: 512 KiB uint16 temporaries stay in cache and keep memory flat
STRIDE = 16  # moments are taken over every 16th element (by index in the tensor): 1/16 of the work, same decisions
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
CAST_TARGETS = ("F16", "BF16")


def numpy_dtype(code: str) -> Any:
    return _numpy_dtypes()[code]


@cache
def _numpy_dtypes() -> dict[str, Any]:
    """Made once: a sketch is made per tensor, and 100,000 imports and dicts cost more than small tensors' hashing."""
    import ml_dtypes
    import numpy as np

    return {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}


def sample_positions(name: str, shape: tuple[int, ...], count: int = SAMPLE) -> np.ndarray:
    """Flat element indices to sample, from a seed that is the tensor's name and shape only."""
    import numpy as np

    total = math.prod(shape)
    if total <= count:  # every element: no seed to take
        return np.arange(total, dtype=np.int64)
    seed = int.from_bytes(hashlib.sha256(f"{name}|{list(shape)}".encode()).digest()[:8], "little")
    picks = np.random.default_rng(seed).choice(total, size=count, replace=False)
    return np.sort(picks.astype(np.int64))


@cache
def _table(source: str, target: str) -> np.ndarray:
    """Every 16-bit source pattern cast once: a 16-bit cast is then one lookup per element, with the very
    results the per-element cast gives (numpy's half conversions are slow, ml_dtypes' not much faster)."""
    import numpy as np

    patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(numpy_dtype(source))
    with np.errstate(all="ignore"):
        return np.ascontiguousarray(patterns.astype(numpy_dtype(target)))


def _widen(values: np.ndarray, code: str) -> np.ndarray:
    """The values as float32 (exactly: every F16 and BF16 value is one)."""
    import numpy as np

    if code == "BF16":
        return (values.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if code == "F16":
        return np.take(_table("F16", "F32"), values.view(np.uint16), mode="clip")  # clip: no bounds check
    return values if values.dtype == np.float64 else values.astype(np.float32)


def cast_to(values: np.ndarray, target: str) -> np.ndarray:
    """The canonical cast: each stored value rounded once to `target`, to nearest, ties to even.

    From F32, F16 and BF16 numpy and ml_dtypes round once (a half or bfloat16 value widens exactly to
    float32 first). F64 would round twice through float32, so F64 tensors get no cast digests.
    """
    import numpy as np

    source = {np.dtype(np.float16): "F16", np.dtype(numpy_dtype("BF16")): "BF16"}.get(values.dtype)
    if source is not None:
        return np.take(_table(source, target), values.view(np.uint16), mode="clip")  # clip: no bounds check
    return values.astype(numpy_dtype(target))


class SketchBuilder:
    """Fed a float tensor's bytes in order, in pieces of any length; gives its Sketch.

    The cast digests and the lossless check cover every element; the moments are taken over every
    STRIDE-th element (counted from the tensor's first, so how the bytes arrive does not matter): no verdict
    reads them, and summing all of them cost more than both cast digests. A 16-bit tensor is cast by table
    lookups on its bit patterns, so no float arithmetic (nor its error state) touches every element.
    """

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], *, casts: bool = True) -> None:
        import numpy as np

        self.dtype = numpy_dtype(dtype)
        self.itemsize = np.dtype(self.dtype).itemsize
        self.targets = [t for t in CAST_TARGETS if casts and t != dtype and dtype != "F64"]
        self.casts = {t: blake3() for t in self.targets}
        self.bits = dtype in ("F16", "BF16")  # 16-bit patterns: casts and round trips are lookups
        self.tables = {t: _table(dtype, t).view(np.uint16) for t in self.targets} if self.bits else {}
        self.lossless = set(self.targets)  # targets every element so far round-trips through
        self.code = dtype
        self.positions = sample_positions(name, shape)
        self.sample: list[float] = []
        self.rest = b""  # the first bytes of an element cut by the end of a piece
        self.seen = 0  # elements so far
        self.counted = 0  # elements the moments were taken over
        self.total = 0.0
        self.squares = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.zeros = self.nans = self.infs = 0

    def update(self, piece: bytes | memoryview) -> None:
        import numpy as np

        data = memoryview(piece).cast("B")  # lengths in bytes, whatever buffer it came from
        if self.rest:  # complete the element the last piece cut, without copying the rest of this one
            need = self.itemsize - len(self.rest)
            head = self.rest + bytes(data[:need])
            data = data[need:]
            self.rest = b""
            if len(head) < self.itemsize:
                self.rest = head
                return
            self._block(np.frombuffer(head, dtype=self.dtype))
        usable = len(data) - len(data) % self.itemsize
        self.rest = bytes(data[usable:])
        values = np.frombuffer(data, dtype=self.dtype, count=usable // self.itemsize)
        for start in range(0, len(values), BLOCK):
            self._block(values[start : start + BLOCK])

    def _block(self, values: np.ndarray) -> None:
        import numpy as np

        if self.bits:
            patterns = values.view(np.uint16)
            for target, hasher in self.casts.items():  # mode="clip": no bounds check (every index is in range)
                hasher.update(np.take(self.tables[target], patterns, mode="clip").view(np.uint8).data)
                if target in self.lossless and not np.take(_returns(self.code, target), patterns, mode="clip").all():
                    self.lossless.discard(target)  # one element changed by the cast: checked no further
        else:
            with np.errstate(all="ignore"):  # an F32 beyond F16's range casts to Inf, as it should
                for target, hasher in self.casts.items():
                    cast = np.ascontiguousarray(cast_to(values, target))
                    hasher.update(cast.view(np.uint8).data)
                    if target in self.lossless and not _same_bits(_widen(cast, target), _widen(values, self.code)):
                        self.lossless.discard(target)
        first = self.seen
        self.seen += len(values)
        with np.errstate(all="ignore"):  # NaN and Inf are counted, not warned about (a signalling NaN warns)
            self._moments(_widen(values[(-first) % STRIDE :: STRIDE], self.code))
        lo, hi = np.searchsorted(self.positions, [first, self.seen])
        if hi > lo:
            self.sample.extend(_widen(values[self.positions[lo:hi] - first], self.code).tolist())

    def _moments(self, wide: np.ndarray) -> None:
        import numpy as np

        if not wide.size:
            return
        self.counted += wide.size
        good = wide.astype(np.float64)
        finite = np.isfinite(good)
        if not finite.all():
            nans = int(np.count_nonzero(np.isnan(good)))
            self.nans += nans
            self.infs += good.size - int(np.count_nonzero(finite)) - nans
            good = good[finite]
            if not good.size:
                return
        self.zeros += good.size - int(np.count_nonzero(good))
        self.total += float(good.sum())
        self.squares += float(np.square(good).sum())  # not np.dot: OpenBLAS threads spin against the hashers
        self.low = min(self.low, float(good.min()))
        self.high = max(self.high, float(good.max()))

    def finish(self) -> Sketch:
        finite = self.counted - self.nans - self.infs
        mean = self.total / finite if finite else 0.0
        variance = max(0.0, self.squares / finite - mean * mean) if finite else 0.0
        low, high = (self.low, self.high) if finite else (0.0, 0.0)
        return Sketch(
            count=self.seen,
            mean=mean,
            std=math.sqrt(variance),
            min=low,
            max=high,
            max_abs=max(abs(low), abs(high)),
            zeros=self.zeros,
            nans=self.nans,
            infs=self.infs,
            sample=tuple(self.sample),
            casts={t: h.hexdigest() for t, h in self.casts.items()},
            lossless=frozenset(self.lossless),
            moments_stride=STRIDE,
        )


def sketch_whole(name: str, code: str, shape: tuple[int, ...], piece: bytes | memoryview) -> Sketch:
    """The sketch of a tensor whose bytes are all at hand, in one block: what SketchBuilder gives, bit for bit,
    with a few numpy calls per tensor instead of a few dozen (100,000 small tensors pay them 100,000 times)."""
    import numpy as np

    kind = _kind(code)
    data = memoryview(piece).cast("B")
    count = len(data) // kind.itemsize
    if len(data) % kind.itemsize or count > BLOCK or not count or count != math.prod(shape):
        builder = SketchBuilder(name, code, shape)  # the general case (and the empty one) as it always was
        builder.update(data)
        return builder.finish()
    values = np.frombuffer(data, dtype=kind.dtype)
    casts: dict[str, str] = {}
    lossless: list[str] = []
    with np.errstate(all="ignore"):  # an F32 beyond F16's range casts to Inf; NaN and Inf are counted, not warned
        if kind.bits:
            patterns = values.view(np.uint16)
            for target, table, returns in kind.lookups:
                casts[target] = blake3(table.take(patterns, mode="clip").view(np.uint8).data).hexdigest()
                if returns.take(patterns, mode="clip").all():
                    lossless.append(target)
        else:
            for target in kind.targets:
                cast = np.ascontiguousarray(cast_to(values, target))
                casts[target] = blake3(cast.view(np.uint8).data).hexdigest()
                if _same_bits(_widen(cast, target), values):
                    lossless.append(target)
        good = _widen(values[::STRIDE], code).astype(np.float64)
        finite = np.isfinite(good)
        nans = infs = 0
        if not finite.all():
            nans = int(np.count_nonzero(np.isnan(good)))
            infs = good.size - int(np.count_nonzero(finite)) - nans
            good = good[finite]
        if not good.size:  # no finite value among those the moments are taken over
            mean = std = low = high = 0.0
            zeros = 0
        else:
            zeros = good.size - int(np.count_nonzero(good))
            mean = (0.0 + float(good.sum())) / good.size  # 0.0 + as SketchBuilder's running total: -0.0 is 0.0
            std = math.sqrt(max(0.0, float(np.square(good).sum()) / good.size - mean * mean))
            low, high = float(good.min()), float(good.max())
    sample = _widen(values if count <= SAMPLE else values[sample_positions(name, shape)], code).tolist()
    return Sketch(
        count=count,
        mean=mean,
        std=std,
        min=low,
        max=high,
        max_abs=max(abs(low), abs(high)),
        zeros=zeros,
        nans=nans,
        infs=infs,
        sample=tuple(sample),
        casts=casts,
        lossless=_lossless(tuple(lossless)),
        moments_stride=STRIDE,
    )


class _Kind(NamedTuple):
    """What a sketch of one stored dtype needs, made once per dtype rather than once per tensor."""

    dtype: Any
    itemsize: int
    bits: bool
    targets: tuple[str, ...]
    lookups: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # 16-bit: (target, cast table, round-trip table)


@cache
def _kind(code: str) -> _Kind:
    import numpy as np

    dtype = numpy_dtype(code)
    targets = tuple(t for t in CAST_TARGETS if t != code and code != "F64")
    bits = code in ("F16", "BF16")
    lookups = tuple((t, _table(code, t).view(np.uint16), _returns(code, t)) for t in targets) if bits else ()
    return _Kind(dtype, np.dtype(dtype).itemsize, bits, targets, lookups)


@cache
def _lossless(targets: tuple[str, ...]) -> frozenset[str]:
    """One frozenset per set of targets, shared by every sketch that has it (200,000 copies cost 40 MB)."""
    return frozenset(targets)


@cache
def _returns(source: str, target: str) -> np.ndarray:
    """For every 16-bit pattern of `source`, whether its cast to `target` widens back to the same bits."""
    import numpy as np

    patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(numpy_dtype(source))
    with np.errstate(all="ignore"):
        back = _widen(np.take(_table(source, target), patterns.view(np.uint16)), target).view(np.uint32)
    return np.ascontiguousarray(back == _widen(patterns, source).view(np.uint32))


def compare_samples(reference: tuple[float, ...], candidate: np.ndarray | tuple[float, ...]) -> tuple[float, float]:
    """Relative change (||c - r|| / ||r||) and correlation of two samples taken at the same positions."""
    import numpy as np

    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(c)
    r, c = r[ok], c[ok]
    if r.size == 0:
        return math.nan, math.nan
    norm = float(np.linalg.norm(r))
    change = float(np.linalg.norm(c - r)) / norm if norm else (0.0 if not c.any() else math.inf)
    if r.size < 2 or r.std() == 0 or c.std() == 0:
        return change, 1.0 if np.array_equal(r, c) else math.nan
    return change, float(np.corrcoef(r, c)[0, 1])


def not_numbers(reference: tuple[float, ...], candidate: np.ndarray | tuple[float, ...]) -> int:
    """How many sampled values are NaN or Inf in the candidate where the release's are numbers."""
    import numpy as np

    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    if r.shape != c.shape:
        return 0
    return int(np.count_nonzero(np.isfinite(r) & ~np.isfinite(c)))


def _same_bits(a: Any, b: Any) -> bool:
    """Bit for bit, so a NaN's payload and the sign of a zero count: what a loader loads is the bits."""
    import numpy as np

    if a.dtype != b.dtype:
        return False
    kind = np.dtype(f"u{a.itemsize}")
    return bool(np.array_equal(np.ascontiguousarray(a).view(kind), np.ascontiguousarray(b).view(kind)))
