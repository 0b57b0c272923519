"""The torch zip container: real archives located exactly, hostile ones refused with one clear reason."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance._formats.torch_zip import TorchArchive, read_archive
from provenance.errors import MalformedContainer, ProvenanceError, TruncatedContainer
from tests.conftest import REAL, needs_shared


def read(data: bytes, name: str = "x.pth") -> TorchArchive:
    return read_archive(io.BytesIO(data), len(data), name)


def torch_like(entries: dict[str, bytes], *, compress: str | None = None, prefix: str = "archive") -> bytes:
    """A zip laid out as torch.save lays it out, written by Python's zipfile."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            method = zipfile.ZIP_DEFLATED if name == compress else zipfile.ZIP_STORED
            archive.writestr(zipfile.ZipInfo(f"{prefix}/{name}"), data, compress_type=method)
    return buffer.getvalue()


BASIC = {"data.pkl": b"\x80\x02}q\x00.", "byteorder": b"little", "data/0": bytes(range(64)), "version": b"3\n"}


@needs_shared
@pytest.mark.parametrize("name", ["test.pt", "fortran_tensor_3d.pth"])
def test_real_archives_locate_every_entry_as_zipfile_reads_it(name: str) -> None:
    path = REAL / name
    data = path.read_bytes()
    with open(path, "rb") as stream:
        archive = read_archive(stream, os.path.getsize(path), name)
    assert archive.byteorder == "little" and archive.prefix == path.stem
    with zipfile.ZipFile(path) as reference:
        assert sorted(e.name for e in archive.entries) == sorted(reference.namelist())
        for entry in archive.entries:
            assert data[entry.start : entry.end] == reference.read(entry.name)
    assert set(archive.storages) == {b"0"} and archive.storage("0") is archive.storages[b"0"]


def test_torch_like_archive_reads() -> None:
    archive = read(torch_like(BASIC))
    storage = archive.storage("0")
    assert archive.prefix == "archive" and storage is not None and storage.end - storage.start == 64


def _patch(data: bytes, old: bytes, new: bytes, which: int = 0) -> bytes:
    at = -1
    for _ in range(which + 1):
        at = data.index(old, at + 1)
    return data[:at] + new + data[at + len(old) :]


def _duplicate() -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in {**BASIC, "data/0": b"first"}.items():
                archive.writestr(f"archive/{name}", data)
            archive.writestr("archive/data/0", b"second")
    return buffer.getvalue()


def _pointing_elsewhere() -> bytes:
    """The central directory entry of data/0 points at the local header of data.pkl."""
    data = torch_like(BASIC)
    central = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)]
    offset_field = central[2] + 42  # archive/data/0's local header offset
    return data[:offset_field] + data.index(b"PK\x03\x04").to_bytes(4, "little") + data[offset_field + 4 :]


HOSTILE = {
    "duplicate-entry-names": (_duplicate, MalformedContainer, "twice"),
    "compressed-data-entry": (lambda: torch_like(BASIC, compress="data/0"), MalformedContainer, "compressed"),
    "local-header-names-another-file": (
        lambda: _patch(torch_like(BASIC), b"archive/data/0", b"archive/data/9"),
        MalformedContainer,
        "local header",
    ),
    "local-header-other-size": (
        lambda: _patch(torch_like(BASIC), (64).to_bytes(4, "little") * 2, (32).to_bytes(4, "little") * 2),
        MalformedContainer,
        "size",
    ),
    "directory-points-at-another-entry": (_pointing_elsewhere, MalformedContainer, "local header names"),
    "cut-short": (lambda: torch_like(BASIC)[:100], TruncatedContainer, "cut short|missing"),
    "not-a-zip": (lambda: b"\x80\x02}q\x00." * 20, TruncatedContainer, "missing"),
    "no-pickle": (lambda: torch_like({"byteorder": b"little"}), MalformedContainer, "data.pkl"),
    "two-pickles": (
        lambda: torch_like(BASIC)[:0] + _two_prefixes(),
        MalformedContainer,
        "data.pkl",
    ),
    "bogus-byteorder": (lambda: torch_like({**BASIC, "byteorder": b"middle"}), MalformedContainer, "byteorder"),
}


def _two_prefixes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for prefix in ("a", "b"):
            archive.writestr(f"{prefix}/data.pkl", BASIC["data.pkl"])
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archives_are_refused(case: str) -> None:
    make, error, reason = HOSTILE[case]
    with pytest.raises(error, match=reason):
        read(make(), "pytorch_model.bin")


@needs_shared
@given(st.data())
@settings(max_examples=300, deadline=None, database=None)
def test_fuzz_mutated_real_archive_never_escapes(data: st.DataObject) -> None:
    original = bytearray((REAL / "test.pt").read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    with contextlib.suppress(ProvenanceError):
        read(bytes(original[:cut]))
