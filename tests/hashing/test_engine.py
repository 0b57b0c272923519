"""The engine's share of DESIGN.md's bound on hostile input: many files, huge or crowded shard indexes,
files swapped between listing and hashing, hostile zip directories, sparse files, deep folders.

Each case runs in a child process under 1 GiB of address space and 60 s (tests.support.limits.bounded) and
must end with exit 2 and one line, or with a result: never a traceback, a signal or a hang.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.support.limits import SECONDS, Run, bounded, manifest_of, refused


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, Path]:
    """A release folder (one safetensors file and a 22-byte config.json) and its manifest."""
    folder = tmp_path / "rel"
    folder.mkdir()
    save_file({"a": np.arange(4, dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type":"llama"}')
    manifest = tmp_path / "rel.json"
    assert bounded("fingerprint", folder, "-o", manifest).code == 0
    return folder, manifest


def _copy(folder: Path, to: Path) -> Path:
    to.mkdir()
    for f in folder.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


def test_many_tiny_files_are_fingerprinted_and_verified_within_bounds(tmp_path: Path) -> None:
    """20,000 tiny files: one BLAKE3 thread pool per file used to exhaust 1 GiB and abort (SIGABRT)."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(20_000):
        (folder / f"f{i:05d}.txt").write_text(str(i))
    manifest = tmp_path / "m.json"
    run = bounded("fingerprint", folder, "-o", manifest)
    assert run.code == 0 and "20000 files" in run.err, run.err
    run = bounded("verify", folder, "--manifest", manifest, "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["verdict"] == "identical"


def test_index_of_many_tiny_values_is_not_read_within_bounds(release: tuple[Path, Path], tmp_path: Path) -> None:
    """63 MiB of `{},` in a shard index (under the 64 MiB cap) would take gigabytes to parse: not read."""
    folder, manifest = release
    candidate = _copy(folder, tmp_path / "cand")
    count = (63 << 20) // 3
    (candidate / "model.safetensors.index.json").write_bytes(b'{"weight_map": {}, "x": [' + b"{}," * count + b"{}]}")
    run = bounded("verify", candidate, "--manifest", manifest)
    assert run.code == 1, run.err
    assert "verdict: modified" in run.out
    assert "too many JSON values (parsing would take over 384 MiB), not read" in run.out


def test_index_of_more_entries_than_any_checkpoint_is_not_read_within_bounds(
    release: tuple[Path, Path], tmp_path: Path
) -> None:
    """1,000,001 weight_map entries, every one a stat and a comparison: refused once parsed, in seconds."""
    folder, manifest = release
    candidate = _copy(folder, tmp_path / "cand")
    entries = ",".join(f'"t{i}":"model.safetensors"' for i in range(1_000_001))
    (candidate / "model.safetensors.index.json").write_text('{"weight_map": {' + entries + "}}")
    run = bounded("verify", candidate, "--manifest", manifest)
    assert run.code == 1, run.err
    assert "verdict: modified" in run.out
    assert "1,000,001 entries, more than any checkpoint has tensors; not read" in run.out


def test_index_within_the_entry_cap_is_read_within_bounds(release: tuple[Path, Path], tmp_path: Path) -> None:
    """200,000 entries naming the one shard: read (one stat for the shard, not one per entry) and judged."""
    folder, manifest = release
    candidate = _copy(folder, tmp_path / "cand")
    entries = ",".join(f'"t{i}":"model.safetensors"' for i in range(200_000))
    (candidate / "model.safetensors.index.json").write_text('{"weight_map": {"a":"model.safetensors",' + entries + "}}")
    run = bounded("verify", candidate, "--manifest", manifest, "--json")
    assert run.code == 1, run.err
    assert json.loads(run.out)["verdict"] == "modified"


# A scan whose plan swaps one file after the listing and before the hashing: the race made certain.
SWAP = """
import os, sys
from pathlib import Path
from provenance.errors import ProvenanceError
from provenance._hashing.scan import fingerprint_plan, scan
root, name, how, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base = fingerprint_plan()
def plan(path):
    if path == name:
        os.remove(root / name)
        os.mkfifo(root / name) if how == "fifo" else os.symlink(target, root / name)
    return base(path)
try:
    checkpoint = scan(root, plan, strict=True, allow_symlinks=sys.argv[5] == "allow")
except ProvenanceError as exc:
    print(f"{type(exc).__name__}: {exc}")
else:
    print({f.path: f.digests["sha256"] for f in checkpoint.files}[name])
"""


def _swapped(tmp_path: Path, how: str, target: str = "", allow: bool = False) -> str:
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "inside.json").write_text("{}")
    (folder / "victim.json").write_text('{"a": 1}')
    run = bounded(folder, "victim.json", how, target, "allow" if allow else "deny", entry=SWAP)
    assert run.code == 0, run.err
    return run.out.strip()


def test_file_replaced_by_a_fifo_after_listing_is_one_line_not_a_hang(tmp_path: Path) -> None:
    out = _swapped(tmp_path, "fifo")
    assert out.startswith("FileChanged: ") and out.endswith(
        "victim.json is no longer a regular file (replaced since it was listed); check who writes it"
    ), out


def test_symlink_repointed_outside_after_listing_is_refused(tmp_path: Path) -> None:
    """The listing saw a regular file; at hashing time it leads outside: its digest is never recorded."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    out = _swapped(tmp_path, "link", str(outside))
    assert out.startswith("UnsafePath: ") and "victim.json is a symlink that now leaves the checkpoint" in out, out
    assert str(outside) in out


def test_symlink_repointed_outside_is_hashed_when_symlinks_may_leave(tmp_path: Path) -> None:
    import hashlib

    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    assert _swapped(tmp_path, "link", str(outside), allow=True) == hashlib.sha256(b"secret").hexdigest()


def test_file_replaced_by_a_symlink_inside_is_hashed_through_it(tmp_path: Path) -> None:
    import hashlib

    assert _swapped(tmp_path, "link", "inside.json") == hashlib.sha256(b"{}").hexdigest()


def _torch_zip(path: Path) -> bytearray:
    torch = pytest.importorskip("torch", reason="a real torch.save zip checkpoint")
    torch.save({"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3, dtype=torch.float16)}, path)
    return bytearray(path.read_bytes())


def test_zip_needing_an_unknown_version_is_one_line(tmp_path: Path) -> None:
    """Version needed 12.8 makes zipfile raise NotImplementedError: refused (torch's miniz ignores the field
    and loads it: a refusal is never a green verdict, so the file is only reported, not trusted)."""
    folder = tmp_path / "ck"
    folder.mkdir()
    path = folder / "pytorch_model.bin"
    data = _torch_zip(path)
    at = data.find(b"PK\x01\x02")
    data[at + 6 : at + 8] = (128).to_bytes(2, "little")
    path.write_bytes(data)
    run = bounded("fingerprint", folder, "-o", tmp_path / "m.json")
    refused(run, "pytorch_model.bin", "a zip feature this reader does not take (zip file version 12.8)")


def test_zip64_directory_offset_shifted_below_zero_is_one_line(tmp_path: Path) -> None:
    """zipfile shifts every header offset negative; seeking there raised OSError(22). torch refuses it too."""
    torch = pytest.importorskip("torch", reason="a real torch.save zip checkpoint and torch.load")
    folder = tmp_path / "ck"
    folder.mkdir()
    path = folder / "pytorch_model.bin"
    data = _torch_zip(path)
    data[data.rfind(b"PK\x06\x06") + 51] = 0xFF  # byte 3 of the zip64 end record's directory offset
    path.write_bytes(data)
    with pytest.raises(RuntimeError, match="failed reading zip archive"):
        torch.load(path, weights_only=True)
    run = bounded("fingerprint", folder, "-o", tmp_path / "m.json")
    refused(run, "pytorch_model.bin", "starts before the archive")


def test_sparse_terabyte_files_are_judged_by_size_not_read(release: tuple[Path, Path], tmp_path: Path) -> None:
    """A 1 TiB config.json (the reference's is 22 bytes) and a 1 TiB extra notes file: neither is hashed."""
    folder, manifest = release
    candidate = _copy(folder, tmp_path / "cand")
    os.truncate(candidate / "config.json", 1 << 40)
    (candidate / "notes.txt").touch()
    os.truncate(candidate / "notes.txt", 1 << 40)
    run = bounded("verify", candidate, "--manifest", manifest, "--json")
    assert run.code == 1, run.err
    files = {f["name"]: f for f in json.loads(run.out)["files"]}
    assert files["config.json"]["status"] == "modified"
    assert files["notes.txt"]["status"] == "extra"
    assert files["model.safetensors"]["status"] == "match"


def _gguf_claiming(tmp_path: Path, rows: int) -> Path:
    gguf = pytest.importorskip("gguf", reason="a real GGUF writer")
    folder = tmp_path / "ck"
    folder.mkdir()
    writer = gguf.GGUFWriter(str(folder / "model.gguf"), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(2, 32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = bytearray((folder / "model.gguf").read_bytes())
    at = data.find(b"token_embd.weight") + len("token_embd.weight")
    assert struct.unpack_from("<I", data, at)[0] == 2  # n_dims, then ne0 = 32, ne1 = 2
    struct.pack_into("<Q", data, at + 4 + 8, rows)
    (folder / "model.gguf").write_bytes(data)
    return folder


def test_sketch_of_a_tensor_claiming_2_to_the_64_elements_is_cut_short_not_overflow(tmp_path: Path) -> None:
    """2**62 x 32 F32 elements: the sketch sampler is never built for a tensor the file cannot hold."""
    import provenance
    from provenance._hashing.engine import HashPlan, hash_file
    from provenance.errors import TruncatedContainer

    folder = _gguf_claiming(tmp_path, 2**62)
    with pytest.raises(TruncatedContainer, match="cut short"):
        provenance.fingerprint(folder, sketches=True)
    fingerprint = hash_file(folder, "model.gguf", HashPlan(parts=True, sketches=True), strict=False)
    assert fingerprint.error is not None and fingerprint.error.startswith("cut short")
    assert [t.sketch for t in fingerprint.tensors] == [None]


def test_folders_nested_too_deep_are_one_line(tmp_path: Path) -> None:
    """1,500 levels (3,000 characters, under PATH_MAX): os.walk's RecursionError was told as a symlink loop."""
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "y.txt").write_text("y")
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(1500):
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("x.txt", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        run = bounded("fingerprint", folder, "-o", tmp_path / "m.json")
    finally:  # pytest's own clean-up of old temporary folders recurses too, and would fail on this one
        subprocess.run(["rm", "-rf", str(folder / "a")], check=True)
    refused(run, "ck", "holds folders nested too deep (about a thousand levels) to be walked")


# ---------------------------------------------------------------- a file cut short while it is being hashed


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
        args = ["--manifest", manifest_of(folder, tmp_path)]
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
    from provenance._hashing.views import check_views
    from provenance.errors import MalformedContainer

    view = ViewRecord("w", "U8", (2**40,), 0, 1, 0, (0,), False)
    layout = Layout("pytorch", 1, (), {}, (view,))
    with pytest.raises(MalformedContainer, match="refusing to gather them"):
        check_views(layout, 1, "model.bin")
