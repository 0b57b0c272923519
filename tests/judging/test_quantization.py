"""The quantization grid check: a quantization of the release's values puts every value on its nearest
level (so no sample may fail), a quantization of changed values does not. Quantized by the gguf package,
which implements llama.cpp's reference quantizers."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from provenance._judging.quantization import LEGACY, grid_at, off_grid

SHAPE = (64, 256)


def distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal(SHAPE) * 0.02
    heavy = rng.standard_t(2, SHAPE) * 0.01  # outliers: large block scales, most values near zero
    same_sign = np.abs(gaussian) + 1.0  # a block's minimum far from zero (the _1 types' m)
    constant = np.full(SHAPE, 0.125)
    sparse = np.where(rng.random(SHAPE) < 0.9, 0.0, gaussian)
    huge = gaussian * 1e4
    tiny = gaussian * 1e-3
    return {
        "gaussian": gaussian,
        "heavy": heavy,
        "same-sign": same_sign,
        "constant": constant,
        "sparse": sparse,
        "huge": huge,
        "tiny": tiny,
    }


def quantized(values: np.ndarray, kind: str) -> tuple[bytes, np.ndarray]:
    kind_enum = gguf.GGMLQuantizationType[kind]
    blocks = gguf.quants.quantize(values.astype(np.float32), kind_enum)
    return blocks.tobytes(), gguf.quants.dequantize(blocks, kind_enum).reshape(values.shape)


def failures(release: np.ndarray, stored: np.ndarray, kind: str) -> int:
    raw, dequantized = quantized(stored, kind)
    positions = np.arange(release.size)
    grid = grid_at(kind, raw, positions)
    assert grid is not None
    reference = tuple(float(v) for v in release.astype(np.float32).reshape(-1))
    candidate = tuple(float(v) for v in dequantized.reshape(-1))
    return off_grid(reference, candidate, grid).off


@pytest.mark.parametrize("kind", sorted(LEGACY))
def test_a_quantization_of_the_release_is_on_its_grid_everywhere(kind: str) -> None:
    for name, values in distributions().items():
        values = values.astype(np.float32)
        assert failures(values, values, kind) == 0, name


@pytest.mark.parametrize(
    ("kind", "noise", "least"), [("Q8_0", 0.01, 0.05), ("Q5_0", 0.05, 0.01), ("Q4_0", 0.05, 0.005)]
)
def test_a_quantization_of_changed_values_is_off_the_release_grid(kind: str, noise: float, least: float) -> None:
    """Relative noise moves values past half a step often enough to show in 64 samples (the share of
    failing elements, measured over all 16,384, is at least `least`)."""
    release = distributions()["gaussian"].astype(np.float32)
    changed = release * (1 + noise * np.random.default_rng(1).standard_normal(SHAPE)).astype(np.float32)
    assert failures(release, changed, kind) / release.size >= least


def test_types_without_nearest_levels_have_no_grid() -> None:
    assert grid_at("Q4_K", b"", np.arange(4)) is None
    assert grid_at("F16", b"", np.arange(4)) is None


@pytest.mark.parametrize("kind", sorted(LEGACY))
def test_every_faithful_block_reaches_its_extreme_level(kind: str) -> None:
    for name, values in distributions().items():
        raw, _ = quantized(values.astype(np.float32), kind)
        grid = grid_at(kind, raw, np.arange(values.size))
        assert grid is not None and all(grid.spans), name


def test_a_scale_larger_than_the_values_need_is_caught() -> None:
    """Every Q8_0 block re-scaled to twice its scale, levels halved: each value stays within half a
    (doubled) step of the release's, but no block reaches level 127, as a faithful one must."""
    release = distributions()["gaussian"].astype(np.float32)
    raw, _ = quantized(release, "Q8_0")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34).copy()
    scales = blocks[:, :2].copy().view(np.float16)
    blocks[:, :2] = (scales * 2).view(np.uint8)
    blocks[:, 2:] = (blocks[:, 2:].view(np.int8) // 2).view(np.uint8)
    kind = gguf.GGMLQuantizationType["Q8_0"]
    inflated = gguf.quants.dequantize(blocks, kind).reshape(-1)
    positions = np.arange(release.size)
    grid = grid_at("Q8_0", blocks.tobytes(), positions)
    assert grid is not None
    misses = off_grid(tuple(release.reshape(-1).tolist()), tuple(inflated.tolist()), grid)
    assert misses.unspanned == release.size and not misses.faithful()
