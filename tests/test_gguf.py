"""GGUF: digests against the gguf package's own reader, the same numbers across formats, hostile files."""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from provenance.engine import HashPlan, hash_file
from provenance.errors import ProvenanceError
from provenance.formats.gguf import GgufReader
from tests.conftest import REAL, CliResult, needs_shared

gguf = pytest.importorskip("gguf", reason="the gguf package is a dependency: pip install -e .")
Run = Callable[..., CliResult]


def reference_digests(path: Path) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    reader = gguf.GGUFReader(path)
    return {
        t.name: (blake3(t.data.tobytes()).hexdigest(), t.tensor_type.name, tuple(int(x) for x in reversed(t.shape)))
        for t in reader.tensors
    }


def our_digests(path: Path) -> dict[str, tuple[str | None, str, tuple[int, ...]]]:
    fingerprint = hash_file(path.parent, path.name, HashPlan(parts=True))
    assert fingerprint.error is None
    return {t.name: (t.blake3, t.dtype, t.shape) for t in fingerprint.tensors}


@needs_shared
@pytest.mark.parametrize(("name", "tensors"), [("llama-2-tiny-random.gguf", 12), ("ggml-vocab-llama-spm.gguf", 0)])
def test_real_gguf_digests_equal_the_gguf_readers_bytes(name: str, tensors: int) -> None:
    ours = our_digests(REAL / name)
    assert len(ours) == tensors
    assert ours == reference_digests(REAL / name)


def write_gguf(path: Path, tensors: dict[str, np.ndarray], quantize: str | None = None) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", "sample")
    for name, array in tensors.items():
        if quantize and array.ndim == 2:
            kind = gguf.GGMLQuantizationType[quantize]
            writer.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), kind), raw_dtype=kind)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


NUMBERS = {
    "embed": (np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 100).astype(np.float16),
    "norm": np.linspace(0.5, 1.5, 32, dtype=np.float32),
}


def test_gguf_written_by_the_gguf_package_reads_back(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", NUMBERS)
    ours = our_digests(path)
    assert ours == reference_digests(path)
    assert ours["embed"][1:] == ("F16", (64, 32))  # logical row-major shape, safetensors dtype code


def test_quantized_tensors_are_digested_as_raw_blocks(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "q.gguf", {"w": np.random.default_rng(0).standard_normal((8, 64))}, quantize="Q8_0")
    ours = our_digests(path)
    assert ours["w"][1:] == ("Q8_0", (8, 64))
    assert ours == reference_digests(path)


def test_f16_gguf_without_head_counts_is_the_same_numbers_under_other_names(run_cli: Run, tmp_path: Path) -> None:
    """No llama head counts in its key-values: the GGUF layout does not apply (llama.cpp would not load it),
    so its names are not mapped and the release's numbers under other names are `modified`."""
    (tmp_path / "ref").mkdir()
    (tmp_path / "cand").mkdir()
    save_file(
        {"model.embed_tokens.weight": NUMBERS["embed"], "model.norm.weight": NUMBERS["norm"]},
        str(tmp_path / "ref" / "model.safetensors"),
    )
    write_gguf(
        tmp_path / "cand" / "model.gguf", {"token_embd.weight": NUMBERS["embed"], "output_norm.weight": NUMBERS["norm"]}
    )
    assert run_cli("fingerprint", tmp_path / "ref", "-o", tmp_path / "m.json", "-q").code == 0
    result = run_cli("verify", tmp_path / "cand", "--manifest", tmp_path / "m.json", "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    assert {t["status"] for t in report["tensors"]} == {"modified"}
    renamed = {t["name"]: t.get("candidate_name") for t in report["tensors"]}
    assert renamed == {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}


@needs_shared
def test_vocabulary_only_gguf_is_a_weights_file_with_no_tensors(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("fingerprint", REAL / "ggml-vocab-llama-spm.gguf", "-q")
    assert result.code == 0
    (entry,) = json.loads(result.out)["predicate"]["weights_provenance/v1"]["files"]
    assert (entry["role"], entry["format"], entry["tensors"]) == ("weights", "gguf", [])


def _mutate(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _hostile(sample: bytes) -> dict[str, tuple[bytes, str]]:
    name_len_at = 24 + 8  # first key's length, after magic, version, tensor count, kv count
    return {
        "cut-in-header": (sample[:10], "cut short"),
        "absurd-kv-count": (_mutate(sample, 16, struct.pack("<Q", 2**60)), "cannot fit"),
        "absurd-tensor-count": (_mutate(sample, 8, struct.pack("<Q", 2**60)), "cannot fit"),
        "string-longer-than-file": (_mutate(sample, name_len_at - 8, struct.pack("<Q", 2**40)), "cannot fit"),
        "version-1": (_mutate(sample, 4, struct.pack("<I", 1)), "version"),
        "not-gguf": (b"GGML" + sample[4:], "magic"),
        "lossy-utf8-copy": (sample.decode("utf-8", errors="replace").encode("utf-8"), "cannot fit"),
        "tensor-data-cut": (sample[: len(sample) - 500], "cut short"),
    }


@needs_shared
@pytest.mark.parametrize("case", list(_hostile(b"GGUF" + bytes(40))))
def test_hostile_gguf_is_one_clear_line(run_cli: Run, tmp_path: Path, case: str) -> None:
    sample = (REAL / "llama-2-tiny-random.gguf").read_bytes()
    data, reason = _hostile(sample)[case]
    (tmp_path / "bad.gguf").write_bytes(data)
    result = run_cli("fingerprint", tmp_path / "bad.gguf", "-q")
    assert (result.code, result.err.count("\n")) == (2, 1), result.err
    assert "bad.gguf" in result.err and reason in result.err and "Traceback" not in result.err


@needs_shared
@given(st.data())
@settings(max_examples=300, deadline=None, database=None)
def test_fuzz_mutated_real_gguf_never_escapes(data: st.DataObject) -> None:
    original = bytearray((REAL / "ggml-vocab-llama-spm.gguf").read_bytes()[:4096])
    for _ in range(data.draw(st.integers(1, 6))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    import io

    with contextlib.suppress(ProvenanceError):
        GgufReader().read_layout(io.BytesIO(bytes(original)), len(original), "fuzz.gguf")
