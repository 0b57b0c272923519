"""What a reader needs of a file's first bytes (header_extent), and the GGUF key-values parsed once.

A stream or a range-request reader fetches what header_extent asks for and nothing else, so its answer
must agree with read_layout: on the same bytes, read_layout over the prefix it names gives what
read_layout over the whole file gives, hostile first bytes included.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from provenance._formats import gguf as gguf_format
from provenance._formats.gguf import HEADER_CAP as GGUF_CAP
from provenance._formats.gguf import MAX_STRING, GgufReader, read_key_values
from provenance._formats.interface import FormatReader, Layout
from provenance._formats.safetensors import HEADER_CAP, SafetensorsReader
from provenance._formats.torch import TorchReader
from provenance._hashing.engine import HashPlan, hash_chunks, hash_file
from provenance.errors import MalformedContainer, ProvenanceError, TruncatedContainer

gguf = pytest.importorskip("gguf", reason="the gguf package is a dependency: pip install -e .")
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _layout(reader: FormatReader, data: bytes, size: int | None = None) -> Layout | str:
    """read_layout over `data`, or the reason it refuses them."""
    try:
        return reader.read_layout(io.BytesIO(data), len(data) if size is None else size, "f")
    except MalformedContainer as exc:
        return f"{type(exc).__name__}: {exc.reason}"


def _fetch(reader: FormatReader, data: bytes) -> bytes:
    """The prefix of `data` a range-request reader ends with, asking as header_extent says."""
    head = b""
    for _ in range(64):
        extent = reader.header_extent(head, len(data), "f")
        assert extent is not None
        if extent <= len(head):
            return head[:extent]
        head = data[:extent]  # within the file: header_extent never asks past it
    raise AssertionError("header_extent kept asking for more")


def _safetensors(tmp_path: Path) -> bytes:
    path = tmp_path / "m.safetensors"
    save_file({"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, dtype=np.int64)}, str(path))
    return path.read_bytes()


def _gguf(tmp_path: Path, vocabulary: int = 0, name: str = "sample") -> bytes:
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", name)
    writer.add_uint32("llama.attention.head_count", 4)
    if vocabulary:
        writer.add_token_list([f"token-{i}" for i in range(vocabulary)])
    writer.add_tensor("token_embd.weight", np.arange(64 * 32, dtype=np.float32).reshape(64, 32))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


# --------------------------------------------------------------------------------------------------------
# safetensors: an exact answer from the first 8 bytes


def test_safetensors_extent_is_the_length_field_plus_the_header(tmp_path: Path) -> None:
    data = _safetensors(tmp_path)
    reader = SafetensorsReader()
    header_len = int.from_bytes(data[:8], "little")
    assert reader.header_extent(b"", len(data), "f") == 8
    assert reader.header_extent(data[:5], len(data), "f") == 8
    assert reader.header_extent(data[:8], len(data), "f") == 8 + header_len
    assert reader.header_extent(data, len(data), "f") == 8 + header_len
    prefix = _fetch(reader, data)
    assert len(prefix) == 8 + header_len
    assert _layout(reader, prefix, len(data)) == _layout(reader, data)
    assert reader.header_holds_container


@pytest.mark.parametrize(
    ("first", "size", "error", "reason"),
    [
        (b"", 7, TruncatedContainer, "file is 7 bytes, too short"),
        (b"\x10\0\0", 3, TruncatedContainer, "file is 3 bytes, too short"),
        (struct.pack("<Q", 2**64 - 1), 1 << 40, MalformedContainer, "exceeds the 100,000,000-byte cap"),
        (struct.pack("<Q", HEADER_CAP + 1), 1 << 40, MalformedContainer, "exceeds the 100,000,000-byte cap"),
        (struct.pack("<Q", 100), 107, TruncatedContainer, "header of 100 bytes runs past the end"),
    ],
)
def test_hostile_safetensors_first_bytes_are_refused_as_read_layout_refuses_them(
    first: bytes, size: int, error: type[MalformedContainer], reason: str
) -> None:
    reader = SafetensorsReader()
    with pytest.raises(error, match=reason) as raised:
        reader.header_extent(first, size, "f")
    assert type(raised.value) is error
    if len(first) == 8 or size < 8:  # read_layout refuses the same file the same way
        assert _layout(reader, first.ljust(min(size, 8), b"\0"), size) == f"{error.__name__}: {raised.value.reason}"


@settings(max_examples=300, deadline=None)
@given(first=st.binary(min_size=8, max_size=8), size=st.integers(0, 2**64))
def test_safetensors_extent_is_within_the_file_or_refused(first: bytes, size: int) -> None:
    try:
        extent = SafetensorsReader().header_extent(first, size, "f")
    except MalformedContainer:
        return
    assert 8 <= extent <= min(size, HEADER_CAP + 8)


# --------------------------------------------------------------------------------------------------------
# GGUF: walked, asking for more while the bytes at hand end inside the header


def test_gguf_extent_is_where_the_tensor_entries_end(tmp_path: Path) -> None:
    data = _gguf(tmp_path)
    reader = GgufReader()
    extent = reader.header_extent(data, len(data), "f")
    assert extent is not None
    data_start = min(t.start for t in GgufReader().read_layout(io.BytesIO(data), len(data), "f").tensors)
    assert data_start - 32 < extent <= data_start and data_start % 32 == 0
    assert _layout(reader, data[:extent], len(data)) == _layout(reader, data)
    assert _layout(reader, data[: extent - 1], len(data)) != _layout(reader, data)  # every byte of it is read
    assert not reader.header_holds_container  # the padding after the entries belongs to the container too


def test_gguf_with_a_vocabulary_is_fetched_in_a_few_growing_requests(tmp_path: Path) -> None:
    data = _gguf(tmp_path, vocabulary=200_000)
    reader = GgufReader()
    asked: list[int] = []
    head = data[: 16 << 10]
    while (extent := reader.header_extent(head, len(data), "f")) is not None and extent > len(head):
        assert extent >= 2 * len(head) or extent == len(data)
        asked.append(extent)
        head = data[:extent]
    assert extent is not None and len(asked) <= 4
    assert _layout(reader, head[:extent], len(data)) == _layout(reader, data)
    assert _layout(reader, _fetch(reader, data), len(data)) == _layout(reader, data)


def _head(tensors: int, key_values: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, key_values)


def _key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


@pytest.mark.parametrize(
    ("first", "size", "error", "reason"),
    [
        (b"", 3, TruncatedContainer, "cut short while reading magic"),
        (b"GGML" + bytes(20), 1 << 20, MalformedContainer, "no GGUF magic"),
        (b"GGUF" + struct.pack("<I", 7) + bytes(16), 1 << 20, MalformedContainer, "version 7 is not supported"),
        (_head(2**40, 0), 1 << 20, MalformedContainer, "tensor count of 1,099,511,627,776 cannot fit"),
        (_head(0, 2**60), 1 << 20, MalformedContainer, "key-value count of 1,152,921,504,606,846,976 cannot fit"),
        (_head(0, 1) + struct.pack("<Q", 2**62), 1 << 20, MalformedContainer, "key length of .* cannot fit"),
        (_head(0, 1) + struct.pack("<Q", 100) + b"k" * 8, 60, MalformedContainer, "key length of 100 cannot fit"),
        (_head(0, 1) + _key("k"), 36, TruncatedContainer, "cut short while reading type of k"),
        (_head(0, 1) + _key("k") + struct.pack("<I", 99), 1 << 20, MalformedContainer, "unknown value type 99"),
        (
            _head(0, 1) + _key("k") + struct.pack("<IQ", 8, MAX_STRING + 1),
            GGUF_CAP * 2,
            MalformedContainer,
            "k length of .* is over the cap",
        ),
        (
            _head(0, 1) + _key("k") + struct.pack("<IIQ", 9, 8, 2**61),
            1 << 20,
            MalformedContainer,
            "k item count of .* cannot fit",
        ),
        (
            _head(1, 0) + _key("t") + struct.pack("<I", 9),
            1 << 20,
            MalformedContainer,
            "tensor 't' has 9 dimensions",
        ),
        (
            _head(1, 0) + _key("t") + struct.pack("<IQIQ", 1, 32, 999, 0),
            1 << 20,
            MalformedContainer,
            "tensor 't' has unknown type 999",
        ),
    ],
)
def test_hostile_gguf_first_bytes_are_refused_as_read_layout_refuses_them(
    first: bytes, size: int, error: type[MalformedContainer], reason: str
) -> None:
    """Absurd counts and lengths are refused from the bytes at hand, before anything more is asked for."""
    with pytest.raises(error, match=reason) as raised:
        GgufReader().header_extent(first, size, "f")
    assert type(raised.value) is error


def test_gguf_extent_while_cut_short_asks_for_more_within_the_file_and_cap() -> None:
    reader = GgufReader()
    first = _head(0, 1) + _key("general.name") + struct.pack("<IQ", 8, 1000)  # a 1000-byte string follows
    assert reader.header_extent(first, 1 << 30, "f") == 1 << 20  # at least a chunk, and the string's end
    assert reader.header_extent(first, 2000, "f") == 2000  # never past the file
    assert reader.header_extent(first[:10], 1 << 30, "f") == 1 << 20
    with pytest.raises(MalformedContainer, match="cannot fit in the file"):
        reader.header_extent(first, 500, "f")  # the string would end past the file
    long = _head(0, 1) + _key("general.name") + struct.pack("<IQ", 8, 3 << 19)  # 1.5 MiB
    big = long + b"x" * ((1 << 20) - len(long))
    assert reader.header_extent(big, 1 << 30, "f") == 2 << 20  # twice what is at hand
    assert reader.header_extent(big, GGUF_CAP * 4, "f") == 2 << 20
    assert reader.header_extent(big, len(long) + (3 << 19), "f") == len(long) + (3 << 19)  # the file's end
    whole = big + b"x" * (len(long) + (3 << 19) - len(big))
    assert reader.header_extent(whole, len(whole) + 100, "f") == len(whole)  # complete: exact


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _gguf(tmp_path_factory.mktemp("gguf"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_gguf_extent_agrees_with_read_layout(small_gguf: bytes, data: st.DataObject) -> None:
    """Mutated copies of a real GGUF: header_extent never escapes, and read_layout over the prefix it
    names gives what read_layout over the whole file gives."""
    original = bytearray(small_gguf)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, min(len(original), 400) - 1))
        original[at] = data.draw(st.integers(0, 255))
    size = data.draw(st.sampled_from([len(original), len(original) + 5, 1 << 30]))
    reader = GgufReader()
    try:
        prefix = _fetch(reader, bytes(original)) if size == len(original) else None
        extent = reader.header_extent(bytes(original), size, "f")
    except ProvenanceError as exc:
        assert isinstance(exc, MalformedContainer)
        return
    assert extent is not None
    if extent <= len(original):
        whole = _layout(reader, bytes(original), size)
        assert _layout(reader, bytes(original[:extent]), size) == whole
        if prefix is not None:
            assert _layout(reader, prefix, size) == whole


# --------------------------------------------------------------------------------------------------------
# PyTorch: the layout is never in a prefix


@pytest.mark.parametrize("first", [b"", b"PK\x03\x04" + bytes(60), b"\x80\x02\x8a\x0a" + bytes(60), b"\xff" * 64])
def test_torch_layout_is_not_in_a_prefix(first: bytes) -> None:
    reader = TorchReader()
    assert reader.header_extent(first, 1 << 20, "f") is None
    assert reader.header_extent((GOLDEN / "torch" / "checkpoint.pt").read_bytes(), 1 << 20, "f") is None
    assert not reader.header_holds_container


# --------------------------------------------------------------------------------------------------------
# A stream hashed as the file on disk, whatever the chunks


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
@pytest.mark.parametrize("kind", ["safetensors", "gguf"])
def test_streamed_parts_are_the_files_parts(tmp_path: Path, kind: str, chunk: int) -> None:
    data = _safetensors(tmp_path) if kind == "safetensors" else _gguf(tmp_path)
    name = f"m.{kind}"
    on_disk = hash_file(tmp_path, name, HashPlan(frozenset({"sha256"}), parts=True))
    chunks = (data[i : i + chunk] for i in range(0, len(data), chunk))
    streamed = hash_chunks(name, chunks, len(data), HashPlan(frozenset({"sha256"}), parts=True))
    assert streamed.error is None and streamed.format == kind
    assert streamed.tensors == on_disk.tensors
    assert (streamed.container_blake3, streamed.digests) == (on_disk.container_blake3, on_disk.digests)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (struct.pack("<Q", 2**63), "exceeds the 100,000,000-byte cap"),
        (struct.pack("<Q", 5000), "header of 5,000 bytes runs past the end of the file"),
    ],
)
def test_streamed_hostile_length_is_the_files_error_and_nothing_is_held(first: bytes, reason: str) -> None:
    data = first + bytes(1000)
    streamed = hash_chunks("m.safetensors", [data[:8], data[8:]], len(data), HashPlan(parts=True))
    assert streamed.error is not None and reason in streamed.error
    assert streamed.tensors == () and streamed.container_blake3 is None
    assert "sha256" in streamed.digests  # every byte came: compared whole


# --------------------------------------------------------------------------------------------------------
# GGUF key-values: the table read with the layout serves the next reader of the same file


def test_gguf_key_values_of_a_file_just_read_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.gguf"
    _gguf(tmp_path)
    fingerprint = hash_file(tmp_path, "m.gguf", HashPlan(parts=True))
    assert fingerprint.error is None
    with open(path, "rb") as stream:
        layout = GgufReader().read_layout(stream, path.stat().st_size, "m.gguf")
    assert layout.key_values["llama.attention.head_count"] == 4
    assert layout.key_values["general.name"] == "sample"
    walks: list[int] = []
    parse = gguf_format._key_values

    def counted(*args: object) -> object:
        walks.append(1)
        return parse(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(gguf_format, "_key_values", counted)
    with open(path, "rb") as stream:
        assert read_key_values(stream, path.stat().st_size, "m.gguf") == dict(layout.key_values)
    assert walks == []
    _gguf(tmp_path, name="another name")  # rewritten: another size, so another file whatever the clock
    with open(path, "rb") as stream:
        assert read_key_values(stream, path.stat().st_size, "m.gguf")["general.name"] == "another name"
    assert walks == [1]
