"""DESIGN.md's bound on hostile input: every parser refuses or finishes within 60 s and 1 GiB.

Each input is built to cost time or memory (floods of key-values, tensor infos, array items, JSON values,
lines; counts and lengths far beyond the file) and run through the real console entry point in a child
process limited to 1 GiB of address space, with a 60 s timeout. The run must end cleanly: exit 2 with one
line on stderr saying what is wrong, or a result (exit 0 or 1), never a traceback, MemoryError or signal.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from manifests.records import MAX_TENSORS

MEMORY = 1 << 30
SECONDS = 60
ENTRY_POINT = "from cli.app import main; main()"  # what the `provenance` console script calls


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def bounded(*args: str | Path, entry: str = ENTRY_POINT) -> Run:
    """`provenance ARGS` (or the Python code `entry` given ARGS) in a child process under the 1 GiB / 60 s
    bound; a timeout fails the test."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-c", entry, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=SECONDS,
        preexec_fn=_limit_memory,
    )
    run = Run(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
    assert "Traceback" not in run.err and "MemoryError" not in run.err, run.err[-2000:]
    assert run.code >= 0, f"killed by signal {-run.code}"
    return run


def refused(run: Run, name: str, wrong: str) -> None:
    """Exit 2, one line on stderr naming the file and saying what is wrong."""
    assert run.code == 2, f"exit {run.code}: {run.err[-500:]!r}"
    assert run.err.count("\n") == 1 and run.err.startswith("error:"), run.err
    assert name in run.err and wrong in run.err, run.err


# ---------------------------------------------------------------------------------------------------------
# GGUF


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


@pytest.mark.parametrize("case", sorted(GGUF_FINISHED))
def test_large_gguf_header_within_caps_finishes_within_bounds(case: str, tmp_path: Path) -> None:
    data, tensors = GGUF_FINISHED[case]
    path = tmp_path / "large.gguf"
    path.write_bytes(data)
    run = bounded("fingerprint", path, "-o", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert f"1 files, {tensors} tensors" in run.err, run.err


# ---------------------------------------------------------------------------------------------------------
# safetensors


def _safetensors(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


HEADER_BYTES = 99_000_000
SAFETENSORS_REFUSED = {
    "99MB-empty-list": (b"[]" + b" " * (HEADER_BYTES - 2), "header is not a JSON object"),
    "99MB-list-of-objects": (b"[" + b"{}," * (HEADER_BYTES // 3 - 1) + b"{}]", "header is not a JSON object"),
    "99MB-object-of-tiny-entries": (
        b"{" + b",".join(b'"%08d":{}' % i for i in range(HEADER_BYTES // 14)) + b"}",
        "too many JSON values",
    ),
    "99MB-metadata-of-tiny-strings": (
        b'{"__metadata__":{' + b",".join(b'"%07d":""' % i for i in range(HEADER_BYTES // 13)) + b"}}",
        "too many JSON values",
    ),
    "99MB-deep-list-in-object": (b'{"a":' + b"[" * (HEADER_BYTES - 5), "too many JSON values"),
}


@pytest.mark.parametrize("case", sorted(SAFETENSORS_REFUSED))
def test_huge_safetensors_header_is_refused_within_bounds(case: str, tmp_path: Path) -> None:
    header, wrong = SAFETENSORS_REFUSED[case]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(_safetensors(header))
    refused(bounded("fingerprint", path, "-o", tmp_path / "m.json"), "hostile.safetensors", wrong)


def test_large_safetensors_metadata_within_budget_is_read(tmp_path: Path) -> None:
    """A header of a million metadata entries (~30 MB) is parsed, as the safetensors package parses it."""
    metadata = {f"k{i:07d}": f"v{i}" for i in range(1_000_000)}
    path = tmp_path / "large.safetensors"
    save_file({"w": np.arange(4, dtype=np.uint8)}, str(path), metadata=metadata)
    run = bounded("fingerprint", path, "-o", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert "1 files, 1 tensors" in run.err, run.err


# ---------------------------------------------------------------------------------------------------------
# Manifests, signature bundles, checksum lists

DOCUMENT_BYTES = (128 << 20) - 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoint")
    save_file({"w": np.arange(16, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


def test_manifest_of_many_tiny_values_is_refused_within_bounds(checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(b'{"x":[' + b"{}," * (DOCUMENT_BYTES // 3 - 4) + b"{}]}")
    refused(bounded("verify", checkpoint, "--manifest", path), "hostile.json", "too many JSON values")


def test_bundle_whose_payload_holds_many_tiny_values_is_refused_within_bounds(checkpoint: Path, tmp_path: Path) -> None:
    payload = b'{"x":[' + b"[]," * ((90 << 20) // 3) + b"[]]}"
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "0" * 64}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(b"x" * 64).decode("ascii"), "keyid": ""}],
        },
    }
    path = tmp_path / "hostile.sig"
    path.write_text(json.dumps(bundle))
    run = bounded("verify", checkpoint, "--manifest", path)
    assert run.code in (2, 3), run.err
    assert run.err.strip().splitlines()[-1].startswith("error:"), run.err
    assert "too many JSON values" in run.err, run.err


def test_realistic_large_manifest_is_verified_within_bounds(checkpoint: Path, tmp_path: Path) -> None:
    """~100 MB: 70,000 tensors with sketches, more than any real release holds per manifest."""
    manifest = tmp_path / "real.json"
    assert bounded("fingerprint", checkpoint, "--sketches", "-o", manifest).code == 0
    document = json.loads(manifest.read_text())
    entry = document["predicate"]["weights_provenance/v1"]["files"][0]
    template = entry["tensors"][0]
    entry["tensors"] = [
        {**template, "name": f"t{i:06d}", "begin": 8 + 64 * i, "end": 8 + 64 * (i + 1)} for i in range(70_000)
    ]
    entry["size"] = 8 + 64 * 70_000
    manifest.write_text(json.dumps(document))
    run = bounded("verify", checkpoint, "--manifest", manifest, "--json")
    assert run.code == 1, run.err
    assert json.loads(run.out)["verdict"] == "modified"


MD5_LINE = b"d41d8cd98f00b204e9800998ecf8427e  f%d\n"
CHECKSUM_LISTS = {
    "lines-over-cap": (b"\n" * (16 << 20), "over 1,000,000 lines"),
    "files-over-cap": (b"".join(MD5_LINE % i for i in range(400_000)), "over 100,000"),
    "over-16-MiB": (b"d41d8cd98f00b204e9800998ecf8427e  " + b"a" * (64 << 20) + b"\n", "over 16,777,216 bytes"),
}


@pytest.mark.parametrize("case", sorted(CHECKSUM_LISTS))
def test_hostile_checksum_list_is_refused_within_bounds(case: str, tmp_path: Path) -> None:
    data, wrong = CHECKSUM_LISTS[case]
    path = tmp_path / "checklist.chk"
    path.write_bytes(data)
    refused(bounded("import", path, "-o", tmp_path / "m.json"), "checklist.chk", wrong)


def test_checksum_list_within_caps_is_imported_within_bounds(tmp_path: Path) -> None:
    path = tmp_path / "checklist.chk"
    path.write_bytes(b"".join(MD5_LINE % i for i in range(99_000)))
    run = bounded("import", path, "-o", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert "99000 files" in run.err, run.err


# ---------------------------------------------------------------------------------------------------------
# Folders that cannot be walked


def _manifest_of(checkpoint: Path, tmp_path: Path) -> Path:
    manifest = tmp_path / "reference.json"
    assert bounded("fingerprint", checkpoint, "-o", manifest).code == 0
    return manifest


@pytest.mark.parametrize("command", ["fingerprint", "verify"])
def test_symlink_loop_in_checkpoint_is_one_line(command: str, checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "looped"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    (folder / "a.bin").symlink_to("b.bin")
    (folder / "b.bin").symlink_to("a.bin")
    args = (
        ["-o", str(tmp_path / "m.json")]
        if command == "fingerprint"
        else ["--manifest", _manifest_of(checkpoint, tmp_path)]
    )
    refused(bounded(command, folder, *args), "looped", "loops back on itself")


@pytest.mark.parametrize("command", ["fingerprint", "verify"])
def test_path_longer_than_path_max_is_one_line(command: str, checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(100):  # 100 levels of 50 characters: 5,100 bytes, past Linux's PATH_MAX of 4,096
            os.mkdir("d" * 50, dir_fd=fd)
            inner = os.open("d" * 50, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("model.safetensors", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    args = (
        ["-o", str(tmp_path / "m.json")]
        if command == "fingerprint"
        else ["--manifest", _manifest_of(checkpoint, tmp_path)]
    )
    run = bounded(command, folder, *args)
    refused(run, "deep", "File name too long; move the checkpoint to a shorter path")
    assert len(run.err) < 400, "a long path is shortened in the error"


# ---------------------------------------------------------------------------------------------------------
# A file cut short while it is being hashed


def _sparse_safetensors(path: Path, size: int) -> None:
    """One U8 tensor filling a sparse file of `size` bytes: costs no disk, reads as zeros."""
    body = size - 8 - 128
    header = json.dumps({"w": {"dtype": "U8", "shape": [body], "data_offsets": [0, body]}}).encode().ljust(128)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(size)


def _leased(path: Path) -> bool:
    """Whether some process holds a lease on the file (Linux lists leases in /proc/locks)."""
    st = path.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any("LEASE" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="leases and /proc/locks are Linux's")
@pytest.mark.parametrize("command", ["fingerprint", "verify"])
def test_file_truncated_while_hashed_is_one_line_not_sigbus(command: str, tmp_path: Path) -> None:
    """Another process truncates the file while the CLI maps it: exit 2 and one line, never SIGBUS (135)."""
    import threading
    import time

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    path = folder / "model.safetensors"
    size = 2 << 30
    _sparse_safetensors(path, size)
    args: list[str | Path] = ["-o", tmp_path / "m.json"]
    if command == "verify":
        args = ["--manifest", _manifest_of(folder, tmp_path)]
    result: list[Run] = []
    runner = threading.Thread(target=lambda: result.append(bounded(command, folder, *args)))
    runner.start()
    deadline = time.monotonic() + SECONDS
    while not _leased(path) and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert runner.is_alive(), "the run ended before it was leased the file"
    os.truncate(path, size // 2)  # waits until the reader gives its lease up
    runner.join(SECONDS)
    assert path.stat().st_size == size // 2
    run = result[0]
    assert run.code == 2, f"exit {run.code}: {run.err!r}"
    assert run.err.count("\n") == 1 and "being written or truncated by another process" in run.err, run.err


def test_truncated_while_hashed_without_a_lease_is_one_line(tmp_path: Path) -> None:
    """A file open for writing cannot be leased: it is read by copy, and a cut ends the read cleanly."""
    from provenance._hashing.engine import HashPlan, hash_file
    from provenance.errors import FileChanged

    path = tmp_path / "model.safetensors"
    _sparse_safetensors(path, 256 << 20)
    writer = os.open(path, os.O_WRONLY)  # a download still writing: no lease can be had
    try:
        cut: list[int] = []

        def progress(done: int) -> None:
            if not cut:
                cut.append(done)
                os.ftruncate(writer, 100 << 20)

        with pytest.raises(FileChanged, match=r"changed size|cut short"):
            hash_file(tmp_path, path.name, HashPlan(frozenset({"sha256"}), parts=True), progress=progress)
        assert cut, "the file was never truncated"
    finally:
        os.close(writer)


def test_view_claiming_far_more_elements_than_the_file_is_refused(tmp_path: Path) -> None:
    """A stride-0 view of 2**40 elements over one byte would take hours to gather: refused up front."""
    from provenance._formats.interface import Layout, ViewRecord
    from provenance._hashing.views import check_views as _check_views
    from provenance.errors import MalformedContainer

    view = ViewRecord("w", "U8", (2**40,), 0, 1, 0, (0,), False)
    layout = Layout("pytorch", 1, (), {}, (view,))
    with pytest.raises(MalformedContainer, match="refusing to gather them"):
        _check_views(layout, 1, "model.bin")
