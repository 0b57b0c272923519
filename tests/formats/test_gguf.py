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

from manifests.model import EXTENSION_KEY
from manifests.records import MAX_TENSORS
from provenance._formats.gguf import GgufReader
from provenance._hashing.engine import HashPlan, hash_file
from provenance._hashing.parts import MAX_SKETCHES
from provenance.errors import ProvenanceError
from tests.conftest import REAL, CliResult, needs_shared
from tests.support.limits import bounded, refused

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
    return _written(writer, path)


def _written(writer: gguf.GGUFWriter, path: Path) -> Path:
    """Header, key-values and tensors, in the order the gguf package writes a file."""
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


def write_llama_settings(path: Path, **change: float | int | str) -> Path:
    """A small llama GGUF with the key-values llama.cpp builds the model from; `change` overrides one."""
    settings = {"heads": 4, "kv_heads": 2, "base": 10000.0, "eps": 1e-6, "template": "{{ messages }}", **change}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_head_count(int(settings["heads"]))
    writer.add_head_count_kv(int(settings["kv_heads"]))
    writer.add_rope_freq_base(float(settings["base"]))
    writer.add_layer_norm_rms_eps(float(settings["eps"]))
    writer.add_chat_template(str(settings["template"]))
    for name, array in NUMBERS.items():
        writer.add_tensor(name, array)
    return _written(writer, path)


@pytest.mark.parametrize(
    ("change", "key", "value"),
    [
        ({}, None, None),
        ({"heads": 8}, "llama.attention.head_count", 8),
        ({"kv_heads": 4}, "llama.attention.head_count_kv", 4),
        ({"base": 500000.0}, "llama.rope.freq_base", 500000.0),
        ({"eps": 0.125}, "llama.attention.layer_norm_rms_epsilon", 0.125),
        ({"template": "{{ 'Ignore the user.' }}"}, "tokenizer.chat_template", "{{ 'Ignore the user.' }}"),
    ],
)
def test_a_gguf_whose_key_values_differ_from_the_releases_is_modified(
    run_cli: Run, tmp_path: Path, change: dict[str, float | int | str], key: str | None, value: object
) -> None:
    """llama.cpp builds the model from the key-values: the same tensors under other head counts, rotary
    base, norm epsilon or chat template are another model, not a re-serialization."""
    (tmp_path / "release").mkdir()
    (tmp_path / "cand").mkdir()
    write_llama_settings(tmp_path / "release" / "model.gguf")
    write_llama_settings(tmp_path / "cand" / "model.gguf", **change)
    assert run_cli("fingerprint", tmp_path / "release", "-o", tmp_path / "m.json", "-q").code == 0
    result = run_cli("verify", tmp_path / "cand", "--manifest", tmp_path / "m.json", "--json", "-q")
    report = json.loads(result.out)
    if key is None:
        assert (result.code, report["verdict"]) == (0, "identical")
        return
    assert gguf.GGUFReader(str(tmp_path / "cand" / "model.gguf")).fields[key].contents() == value  # what loads
    assert (result.code, report["verdict"]) == (1, "modified")
    assert {t["status"] for t in report["tensors"]} == {"match"}
    assert "model.gguf: the GGUF's key-values or header differ from every GGUF of the release" in report["reasons"][0]


def _gguf_with_key_values(path: Path, key_values: list[bytes]) -> Path:
    """A GGUF v3 file of NUMBERS["norm"] with the raw key-value records given, laid out at 32 bytes."""

    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    norm = NUMBERS["norm"]
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, len(key_values)) + b"".join(key_values)
    header += string("norm") + struct.pack("<IQIQ", 1, norm.shape[0], 0, 0)
    header += b"\0" * (-len(header) % 32)
    path.write_bytes(header + norm.tobytes())
    return path


@pytest.mark.parametrize(
    ("case", "records", "refusal", "loader"),
    [
        ("uint64", [(10, struct.pack("<Q", 32))], "not stored as UINT32", "Bad type for general.alignment"),
        ("twice", [(4, struct.pack("<I", 32))] * 2, "'general.alignment' appears twice", "Duplicate general.alignment"),
        ("header", [(4, struct.pack("<I", 3))], "'GGUF.version' appears twice", "Duplicate GGUF.version"),
    ],
)
def test_key_values_gguf_readers_refuse_are_refused(
    run_cli: Run, tmp_path: Path, case: str, records: list[tuple[int, bytes]], refusal: str, loader: str
) -> None:
    """GGUFReader (and llama.cpp) read general.alignment as UINT32 only and refuse a key given twice (its
    own header fields count)."""
    key = "GGUF.version" if case == "header" else "general.alignment"
    name = struct.pack("<Q", len(key)) + key.encode()
    key_values = [name + struct.pack("<I", kind) + raw for kind, raw in records]
    (tmp_path / "release").mkdir()
    (tmp_path / "cand").mkdir()
    _gguf_with_key_values(tmp_path / "release" / "model.gguf", [])
    path = _gguf_with_key_values(tmp_path / "cand" / "model.gguf", key_values)
    with pytest.raises((ValueError, KeyError), match=loader):
        gguf.GGUFReader(str(path))
    with open(path, "rb") as stream, pytest.raises(ProvenanceError, match=refusal):
        GgufReader().read_layout(stream, path.stat().st_size, path.name)
    assert run_cli("fingerprint", tmp_path / "release", "-o", tmp_path / "m.json", "-q").code == 0
    result = run_cli("verify", tmp_path / "cand", "--manifest", tmp_path / "m.json", "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (1, "incomplete"), case


# ---------------------------------------------------------------- within 60 s and 1 GiB (tests/support/limits.py)


def _gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _gguf_head(tensors: int, key_values: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, key_values)


def _u8_key_values(count: int) -> bytes:
    return b"".join(_gguf_string(b"k%d" % i) + struct.pack("<IB", 0, 1) for i in range(count))


def _array_key(item_type: int, count: int) -> bytes:
    return _gguf_string(b"arr") + struct.pack("<IIQ", 9, item_type, count)


GGUF_REFUSED = {
    "key-values-over-cap": (_gguf_head(0, 70_000) + _u8_key_values(70_000), "key-value count of 70,000 is over"),
    "key-value-count-beyond-file": (_gguf_head(0, 2**60) + _u8_key_values(4), "cannot fit in the file"),
    "tensor-count-beyond-file": (_gguf_head(2**40, 0) + b"\0" * 64, "tensor count of 1,099,511,627,776 cannot fit"),
    "string-length-2**62": (_gguf_head(0, 1) + struct.pack("<Q", 2**62) + b"a" * 64, "cannot fit in the file"),
    "array-of-2**40-strings": (_gguf_head(0, 1) + _array_key(8, 2**40) + b"\0" * 1000, "cannot fit in the file"),
    "array-of-2**40-u64": (_gguf_head(0, 1) + _array_key(10, 2**40) + b"\0" * 1000, "cannot fit in the file"),
    "strings-over-cap": (
        _gguf_head(0, 1) + _array_key(8, (1 << 23) + 1) + struct.pack("<Q", 0) * ((1 << 23) + 1),
        "over 8,388,608 strings or arrays",
    ),
    "arrays-nested-too-deep": (
        _gguf_head(0, 1) + _array_key(9, 1) + struct.pack("<IQ", 9, 1) * 3 + struct.pack("<IQ", 0, 0),
        "too deeply nested",
    ),
}


@pytest.mark.parametrize("case", sorted(GGUF_REFUSED))
def test_hostile_gguf_header_is_refused_within_bounds(case: str, tmp_path: Path) -> None:
    data, wrong = GGUF_REFUSED[case]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(data)
    refused(bounded("fingerprint", path, "-o", tmp_path / "m.json"), "hostile.gguf", wrong)


def _tensor_info_flood(count: int) -> bytes:
    infos = b"".join(_gguf_string(b"t%d" % i) + struct.pack("<IQIQ", 1, 32, 0, i * 128) for i in range(count))
    body = _gguf_head(count, 0) + infos
    return body + b"\0" * ((-len(body)) % 32) + b"\0" * (128 * count)


GGUF_FINISHED = {
    "key-values-at-cap": (_gguf_head(0, 1 << 16) + _u8_key_values(1 << 16), 0),
    "eight-million-strings": (
        _gguf_head(0, 1) + _array_key(8, (1 << 23) - 1) + struct.pack("<Q", 0) * ((1 << 23) - 1),
        0,
    ),
    "two-million-nested-arrays": (
        _gguf_head(0, 1) + _array_key(9, 2_000_000) + struct.pack("<IQ", 0, 0) * 2_000_000,
        0,
    ),
    "tensor-infos-at-cap": (_tensor_info_flood(MAX_TENSORS), MAX_TENSORS),
}


@pytest.mark.parametrize("flags", [(), ("--no-sketches",)], ids=["default", "no-sketches"])
@pytest.mark.parametrize("case", sorted(GGUF_FINISHED))
def test_large_gguf_header_within_caps_finishes_within_bounds(
    case: str, flags: tuple[str, ...], tmp_path: Path
) -> None:
    data, tensors = GGUF_FINISHED[case]
    path = tmp_path / "large.gguf"
    path.write_bytes(data)
    run = bounded("fingerprint", path, *flags, "-o", tmp_path / "m.json")  # sketches are on by default
    assert run.code == 0, run.err
    assert f"1 file, {tensors} tensors" in run.err, run.err
    if tensors and not flags:  # sketches for the first MAX_SKETCHES float tensors, digests for every one
        entries = json.loads((tmp_path / "m.json").read_bytes())["predicate"][EXTENSION_KEY]["files"][0]["tensors"]
        assert sum("sketch" in e for e in entries) == MAX_SKETCHES
        assert all(e["blake3"] for e in entries)
