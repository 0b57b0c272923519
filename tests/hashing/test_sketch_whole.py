"""The one-block sketch of a small tensor is SketchBuilder's, bit for bit (published sketches depend on it), and a
file of more tensors than MAX_SKETCHES gets sketches for its first MAX_SKETCHES float tensors only."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from manifests.records import Sketch
from provenance._formats.interface import Layout, TensorRecord
from provenance._hashing import parts
from provenance._hashing.parts import PartHashers
from provenance._hashing.sketch import BLOCK, SketchBuilder, sketch_whole

DTYPES: dict[str, Any] = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}
SHAPES = [(1,), (2,), (17,), (32,), (64,), (65,), (8, 9), (64, 84), (5376,), (BLOCK,), (BLOCK + 1,), (0,)]
SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan, 65504.0, 1e5, 1e-8, 3.0]


def _built(name: str, code: str, shape: tuple[int, ...], data: bytes) -> Sketch:
    builder = SketchBuilder(name, code, shape)
    builder.update(data)
    return builder.finish()


def _bits(sketch: Sketch) -> dict[str, Any]:
    """Every field, floats by their bits: -0.0 and NaN payloads count."""
    fields = dataclasses.asdict(sketch)
    fields["sample"] = np.asarray(sketch.sample, dtype=np.float64).tobytes()
    return {k: np.float64(v).tobytes() if isinstance(v, float) else v for k, v in fields.items()}


def _values(kind: str, code: str, count: int, rng: np.random.Generator) -> bytes:
    itemsize = np.dtype(DTYPES[code]).itemsize
    if kind == "bits":  # any bit patterns: NaN payloads, subnormals, values past F16's range
        return rng.integers(0, 256, count * itemsize, dtype=np.uint8).tobytes()
    values = {
        "normal": lambda: rng.standard_normal(count),
        "zeros": lambda: np.zeros(count),
        "negative-zeros": lambda: -np.zeros(count),
        "specials": lambda: rng.choice(SPECIALS, count),
        "nans": lambda: np.full(count, math.nan),
    }[kind]()
    with np.errstate(all="ignore"):
        return np.asarray(values).astype(DTYPES[code]).tobytes()


@pytest.mark.parametrize("code", sorted(DTYPES))
@pytest.mark.parametrize("kind", ["normal", "zeros", "negative-zeros", "specials", "nans", "bits"])
def test_a_whole_tensor_sketch_is_the_builders(code: str, kind: str) -> None:
    rng = np.random.default_rng(len(code) * 31 + len(kind))
    for index, shape in enumerate(SHAPES):
        data = _values(kind, code, math.prod(shape), rng)
        name = f"model.layers.{index}.weight"
        assert _bits(sketch_whole(name, code, shape, memoryview(data))) == _bits(_built(name, code, shape, data))


def test_a_file_of_more_tensors_than_the_cap_sketches_the_first_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "MAX_SKETCHES", 3)
    tensors = tuple(TensorRecord(f"t{i}", "I32" if i == 1 else "F32", (4,), 16 * i, 16 * (i + 1)) for i in range(6))
    layout = Layout(format="safetensors", expected_size=96, tensors=tensors, metadata={})
    hashers = PartHashers(layout, sketches=True, size=96)
    hashers.feed(memoryview(bytes(96)), 0)
    fingerprints, _ = hashers.finish(96)
    assert [t.sketch is not None for t in fingerprints] == [True, False, True, True, False, False]
    assert all(t.blake3 for t in fingerprints)
