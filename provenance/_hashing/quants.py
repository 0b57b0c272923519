"""Exact quantization digests: the BLAKE3 of the blocks llama.cpp's converter would write for a tensor.

`convert_hf_to_gguf.py` quantizes with the gguf package's reference quantizers (`gguf.quants.quantize`):
the tensor's values as float32 (F16 and F32 kept, BF16 and F64 converted to float32 first), cut into
blocks of 32 along the last dimension, each block quantized on its own. For the legacy types those
quantizers are pure functions of the block's values (no search, no importance matrix), so the blocks of
a faithful conversion are known before it is made: their digest, recorded in a manifest, proves a GGUF's
blocks are exactly that conversion. The blocks of a row-major tensor whose last dimension is a multiple
of 32 are its elements taken 32 at a time in order, so the tensor is quantized as it streams past, a
bounded number of blocks at a time.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from manifests.dtypes import EXACT_QUANTS

if TYPE_CHECKING:
    from provenance._formats.interface import Layout

QUANT_BLOCK = 32  # elements per block of every legacy type
CHUNK = 1 << 14  # elements quantized at a time (a multiple of the block): 64 KiB float32 temporaries stay in cache
SOURCES = ("F16", "BF16", "F32", "F64")  # dtypes the converter quantizes (through float32)


def quant_types(kinds: str | Collection[str]) -> frozenset[str]:
    """`"Q8_0,Q4_0"` (or the names one by one) as the set of types; a type without a deterministic reference
    quantizer is refused with ProvenanceError (exit 2): its blocks cannot be known before it is made."""
    from provenance.errors import ProvenanceError

    parts = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    wanted = [part.strip().upper() for part in parts if part.strip()]
    if isinstance(kinds, str) and not wanted:
        raise ProvenanceError("--quant-digests needs at least one type, e.g. --quant-digests Q8_0")
    unknown = sorted({kind for kind in wanted if kind not in EXACT_QUANTS})
    if unknown:
        raise ProvenanceError(
            f"--quant-digests {','.join(unknown)}: only the legacy types have a deterministic reference quantizer "
            f"(K-quants and i-quants search their scales); choose from {','.join(EXACT_QUANTS)}"
        )
    return frozenset(wanted)


def quantizable(dtype: str, shape: tuple[int, ...]) -> bool:
    """Whether the converter could quantize this tensor into a legacy type: float, rows of whole blocks."""
    return dtype in SOURCES and len(shape) >= 1 and shape[-1] % QUANT_BLOCK == 0 and math.prod(shape) > 0


class QuantBuilder:
    """Fed a float tensor's bytes in order, in pieces of any length; gives the digest of its blocks per type."""

    def __init__(self, dtype: str, kinds: frozenset[str]) -> None:
        import numpy as np
        from gguf import quants

        from provenance._hashing.sketch import numpy_dtype

        self.dtype = numpy_dtype(dtype)
        self.code = dtype
        self.itemsize = np.dtype(self.dtype).itemsize
        # The very function `gguf.quants.quantize` applies to each group of rows; called once per chunk
        # rather than once per 16 rows of 32 values
        self.kinds = {kind: getattr(quants, kind).quantize_rows for kind in sorted(kinds)}
        self.hashers = {kind: blake3() for kind in self.kinds}
        self.rest = b""
        self.step = CHUNK * self.itemsize

    def update(self, piece: bytes | memoryview) -> None:
        piece = memoryview(piece).cast("B")
        block = QUANT_BLOCK * self.itemsize
        if self.rest:  # a block cut by the end of the last piece: completed from this one, without copying it all
            head = block - len(self.rest)
            self.rest += bytes(piece[:head])
            piece = piece[head:]
            if len(self.rest) < block:
                return
            self._quantize(self.rest)
            self.rest = b""
        whole = len(piece) - len(piece) % block
        self.rest = bytes(piece[whole:])
        for start in range(0, whole, self.step):
            self._quantize(piece[start : min(start + self.step, whole)])

    def _quantize(self, data: bytes | memoryview) -> None:
        import numpy as np

        rows = _as_float32(np.frombuffer(data, dtype=self.dtype), self.code).reshape(-1, QUANT_BLOCK)
        with np.errstate(all="ignore"):  # NaN and Inf quantize to whatever the reference makes of them
            for kind, hasher in self.hashers.items():
                hasher.update(np.ascontiguousarray(self.kinds[kind](rows)).data)

    def finish(self) -> dict[str, str]:
        """Each type's digest; the bytes fed must have been the whole tensor (rows of whole blocks)."""
        assert not self.rest, "a quantized tensor's rows are whole blocks"
        return {kind: hasher.hexdigest() for kind, hasher in self.hashers.items()}


def _as_float32(values: Any, code: str) -> Any:
    """The float32 values the converter quantizes: F16 and BF16 widened exactly (by table, faster than the
    quantizer's own widening and the same values), F64 rounded to nearest (torch's `.to(torch.float32)`,
    which numpy's cast matches)."""
    from provenance._hashing.sketch import _widen

    return _widen(values, code) if code != "F64" else values.astype("float32")


def quant_digests(dtype: str, values: Any, kinds: frozenset[str]) -> dict[str, str]:
    """The digests of a whole tensor held in memory (a layout adapter's rebuilt tensor)."""
    import numpy as np

    builder = QuantBuilder(dtype, kinds)
    builder.update(np.ascontiguousarray(values).reshape(-1).view(np.uint8).data)
    return builder.finish()


def quant_builders(layout: Layout, kinds: frozenset[str], size: int | None) -> dict[int, QuantBuilder]:
    """A builder per tensor of the layout that the converter could quantize and the file holds in full."""
    if not kinds:
        return {}
    return {
        index: QuantBuilder(t.dtype, kinds)
        for index, t in enumerate(layout.tensors)
        if quantizable(t.dtype, t.shape) and (size is None or t.end <= size)
    }
