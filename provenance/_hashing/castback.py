"""Casting a widened tensor back to the dtype it may have been widened from.

An upcast keeps every value, so a candidate that is the release's tensor widened casts back to the release's
bytes exactly, and every value survives the round trip: the cast-back digest compared with the release's
digest proves the upcast with no sketch in the manifest. A sketch carries the casts to float16 and bfloat16;
this adds the ones it leaves out (from float64, and to float32).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from blake3 import blake3

from manifests.records import Sketch
from provenance._hashing.sketch import BLOCK, cast_to, numpy_dtype

if TYPE_CHECKING:
    import numpy as np

WIDER = {"F16": ("F32", "F64"), "BF16": ("F32", "F64"), "F32": ("F64",)}  # dtypes that hold every value exactly


def upcast(release: str, candidate: str) -> bool:
    """Whether `candidate` holds every `release` value exactly: a copy in it may be an upcast, cast back."""
    return candidate in WIDER.get(release, ())


class CastBack:
    """Fed a tensor's bytes in order, in pieces of any length: the digest of its canonical cast to `target`
    and whether every value survives it (the values are `target` values, widened)."""

    def __init__(self, dtype: str, target: str) -> None:
        import numpy as np

        self.dtype = numpy_dtype(dtype)
        self.itemsize = np.dtype(self.dtype).itemsize
        self.target = target
        self.hasher = blake3()
        self.lossless = True
        self.rest = b""

    def update(self, piece: bytes | memoryview) -> None:
        import numpy as np

        piece = memoryview(piece).cast("B")
        data = self.rest + bytes(piece) if self.rest else piece
        usable = len(data) - len(data) % self.itemsize
        self.rest = bytes(data[usable:])
        values = np.frombuffer(data, dtype=self.dtype, count=usable // self.itemsize)
        for start in range(0, len(values), BLOCK):
            self._block(values[start : start + BLOCK])

    def _block(self, values: np.ndarray) -> None:
        import numpy as np

        with np.errstate(all="ignore"):
            cast = np.ascontiguousarray(cast_to(values, self.target))
            self.hasher.update(cast.view(np.uint8).data)
            if self.lossless:  # bit for bit: a NaN's payload or a zero's sign that moved is not survived
                back = cast.astype(np.float64).view(np.uint64)
                self.lossless = bool(np.array_equal(back, values.astype(np.float64).view(np.uint64)))

    def added_to(self, sketch: Sketch) -> Sketch:
        """The sketch with this cast's digest, and the target among its lossless ones if every value survived."""
        lossless = set(sketch.lossless or ()) - {self.target} | ({self.target} if self.lossless else set())
        return dataclasses.replace(
            sketch, casts={**sketch.casts, self.target: self.hasher.hexdigest()}, lossless=frozenset(lossless)
        )


def needs_cast_back(release: str, candidate: str) -> bool:
    """An upcast whose cast back a sketch of the candidate does not already carry (float16 and bfloat16
    casts of float32 are in every sketch)."""
    return upcast(release, candidate) and not (candidate == "F32" and release in ("F16", "BF16"))
