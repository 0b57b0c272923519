"""Our reader and digests against the real `safetensors` package, on files written by other people's tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3
from safetensors import safe_open
from safetensors.numpy import save_file

import provenance
from provenance._hashing.engine import HashPlan, hash_file
from tests.conftest import REAL, needs_shared

REAL_FILES = sorted(REAL.glob("*.safetensors")) if REAL.is_dir() else []


def assert_agrees_with_safetensors(path: Path, window: int | None = None) -> int:
    """Every tensor's name, dtype, shape, byte range and digest agree with what `safetensors` reads."""
    kwargs = {} if window is None else {"window": window}
    fingerprint = hash_file(path.parent, path.name, HashPlan(frozenset({"sha256"}), parts=True), **kwargs)
    data = path.read_bytes()
    ours = {t.name: t for t in fingerprint.tensors}
    with safe_open(str(path), "np") as reader:
        assert sorted(reader.keys()) == sorted(ours)
        for name in sorted(ours):
            tensor = ours[name]
            array = reader.get_tensor(name)
            assert reader.get_slice(name).get_dtype() == tensor.dtype
            assert tuple(reader.get_slice(name).get_shape()) == tensor.shape
            assert data[tensor.start : tensor.end] == array.tobytes()
            assert tensor.blake3 == blake3(array.tobytes()).hexdigest()
    return len(ours)


@needs_shared
@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_real_file_digests_equal_blake3_of_the_safetensors_bytes(path: Path) -> None:
    assert assert_agrees_with_safetensors(path) >= 1


@needs_shared
def test_every_real_safetensors_fixture_is_covered() -> None:
    assert {p.name for p in REAL_FILES} >= {
        "jfk-codes.safetensors",
        "mnist-tinygrad.safetensors",
        "overall.safetensors",
    }


@needs_shared
def test_real_fixtures_fingerprint_through_the_cli(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    for path in REAL_FILES:
        out = tmp_path / f"{path.stem}.json"
        result = run_cli("fingerprint", path, "-o", out, "-q")
        assert result.code == 0, result.err
        statement = json.loads(out.read_text())
        files = statement["predicate"]["weights_provenance/v1"]["files"]
        assert [f["name"] for f in files] == [path.name]
        with safe_open(str(path), "np") as reader:
            assert sorted(t["name"] for t in files[0]["tensors"]) == sorted(reader.keys())


DTYPES = [
    np.uint8,
    np.int8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
]


@pytest.mark.parametrize("window", [4096, 8192, 1 << 20])
def test_tensors_across_window_boundaries(tmp_path: Path, window: int) -> None:
    """Tensors that straddle the mmap windows, empty tensors and every numpy dtype digest as in one piece."""
    rng = np.random.default_rng(7)
    tensors: dict[str, np.ndarray] = {}
    for i, dtype in enumerate(DTYPES):
        shape = (int(rng.integers(1, 70)), int(rng.integers(1, 90)))
        tensors[f"t{i}"] = (rng.integers(0, 2, shape) if dtype is np.bool_ else rng.integers(0, 100, shape)).astype(
            dtype
        )
    tensors["empty"] = np.zeros((0, 3), dtype=np.float32)
    tensors["scalar"] = np.array(3.5, dtype=np.float32)
    tensors["big"] = rng.standard_normal((300, 100)).astype(np.float32)
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    assert assert_agrees_with_safetensors(path, window) == len(tensors)
    whole = hash_file(tmp_path, "w.safetensors", HashPlan(parts=True))
    windowed = hash_file(tmp_path, "w.safetensors", HashPlan(parts=True), window=window)
    assert windowed == whole


def test_file_sha256_and_byte_identity_from_parts(tmp_path: Path) -> None:
    import hashlib

    tensors = {"a": np.arange(1000, dtype=np.float32), "b": np.ones((7, 9), dtype=np.float16)}
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    checkpoint = provenance.fingerprint(tmp_path)
    (f,) = checkpoint.files
    data = (tmp_path / "m.safetensors").read_bytes()
    assert f.digests["sha256"] == hashlib.sha256(data).hexdigest()
    gaps = bytearray()
    cursor = 0
    for t in sorted(f.tensors, key=lambda t: t.start):
        gaps += data[cursor : t.start]
        cursor = t.end
    gaps += data[cursor:]
    assert f.container_blake3 == blake3(bytes(gaps)).hexdigest()
    assert f.size == len(data) and f.expected_size is None and f.error is None
