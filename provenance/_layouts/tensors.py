"""Reading a tensor's elements, moving q and k rows between rotary orders, and fingerprinting a tensor
that a layout adapter rebuilt: the pieces every adapter shares."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

from blake3 import blake3

from manifests.dtypes import DTYPE_BITS
from manifests.records import TensorFingerprint
from provenance._hashing.castback import CastBack, needs_cast_back, upcast
from provenance._hashing.sketch import FLOAT_DTYPES, SketchBuilder


def tensor_bytes(path: Path, tensor: TensorFingerprint) -> bytes:
    """A plain tensor's bytes, file[start:end], through a read-only map of just that range."""
    with open(path, "rb", buffering=0) as stream:
        aligned = tensor.start - tensor.start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(stream.fileno(), tensor.end - aligned, access=mmap.ACCESS_READ, offset=aligned) as mapped:
            return bytes(mapped[tensor.start - aligned : tensor.end - aligned])


def elements(path: Path, tensor: TensorFingerprint) -> Any:
    """A plain tensor's elements as unsigned integers of its width, in its shape: rearranged, never computed."""
    import numpy as np

    unit = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[DTYPE_BITS[tensor.dtype]]
    return np.frombuffer(tensor_bytes(path, tensor), dtype=unit).reshape(tensor.shape)


def hugging_face_rows(values: Any, heads: int) -> Any:
    """Rows of q or k from Meta's rotary order to the Hugging Face one (the conversion script's permute)."""
    rows, cols = values.shape
    return values.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def meta_rows(values: Any, heads: int) -> Any:
    """Rows of q or k from the Hugging Face rotary order back to Meta's: the inverse of hugging_face_rows."""
    rows, cols = values.shape
    return values.reshape(heads, 2, rows // heads // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def permuted(permute: Any, values: Any, heads: int, name: str, problems: list[str]) -> Any:
    """q or k rows in the other rotary order; unchanged (so they cannot match) when the head count does not
    fit the tensor, which the report says."""
    if values.ndim != 2 or values.shape[0] % (2 * heads):
        shape = list(values.shape)
        problems.append(f"{name} has shape {shape}, whose rows {heads} heads cannot be rotary-permuted in")
        return values
    return permute(values, heads)


def rebuilt(
    name: str, dtype: str, values: Any, reference: TensorFingerprint | None, *, sketch_all: bool = False
) -> TensorFingerprint:
    """A rebuilt tensor's fingerprint: the BLAKE3 of its elements in order, and, when the reference's
    tensor of that name is sketched and differs, or may be widened from it (or `sketch_all`, for a candidate
    compared with several references), the same sketch taken of these values, with the cast back to the
    reference's dtype: a rebuilt tensor has no place in a file to be read again from."""
    import numpy as np

    data = np.ascontiguousarray(values)
    shape = tuple(int(d) for d in data.shape)
    raw = data.reshape(-1).view(np.uint8)  # bytes in order, without a copy
    digest = blake3(raw.data).hexdigest()
    tensor = TensorFingerprint(name, dtype, shape, 0, 0, digest, True)
    differs = (
        reference is not None
        and reference.shape == shape
        and (reference.blake3, reference.dtype) != (digest, dtype)
        and (reference.sketch is not None or upcast(reference.dtype, dtype))  # an upcast is proven by its cast back
    )
    if dtype in FLOAT_DTYPES and (sketch_all or differs):
        builder = SketchBuilder(name, dtype, shape)
        builder.update(raw.data)
        sketch = builder.finish()
        if reference is not None and needs_cast_back(reference.dtype, dtype):
            back = CastBack(dtype, reference.dtype)
            back.update(raw.data)
            sketch = back.added_to(sketch)
        tensor = tensor._replace(sketch=sketch)
    return tensor
