"""Small inputs read whole (checksum lists, keys, trust policy, the record of seen releases, hub cache refs,
hub metadata answers, torrent names) are bounded like every parser: 60 s and 1 GiB, one line and exit 2.

A device or a FIFO reports a size of 0, so a size check alone passes them and the read then never ends
(/dev/zero) or never starts (a FIFO without a writer). Each case runs the real console entry point in a
child process under the bound of tests/test_bounds.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bencode2
import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.test_bounds import bounded, refused

GIB4 = 4 << 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoint")
    save_file({"w": np.arange(16, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def manifest(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "reference.json"
    assert bounded("fingerprint", checkpoint, "-o", path).code == 0
    return path


@pytest.fixture
def signed(manifest: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(bundle, public key) of the reference signed by a fresh key."""
    assert bounded("keygen", tmp_path / "k").code == 0
    bundle = tmp_path / "reference.sig"
    assert bounded("sign", manifest, "--key", tmp_path / "k.key", "-o", bundle).code == 0
    return bundle, tmp_path / "k.pub"


def _sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.truncate(size)
    return path


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_import_of_a_device_or_pipe_is_one_line(kind: str, tmp_path: Path) -> None:
    path = Path("/dev/zero") if kind == "dev-zero" else _fifo(tmp_path / "checklist.chk")
    run = bounded("import", path, "-o", tmp_path / "m.json")
    refused(run, str(path), "is not a regular file")
    assert run.err == f"error: checksum list {path} is not a regular file\n"


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_public_key_that_is_a_device_or_pipe_is_one_line(
    kind: str, checkpoint: Path, signed: tuple[Path, Path]
) -> None:
    key = Path("/dev/zero") if kind == "dev-zero" else _fifo(signed[1].with_name("pipe.pub"))
    run = bounded("verify", checkpoint, "--manifest", signed[0], "--key", key)
    assert run.err == f"error: public key {key} is not a regular file\n"
    assert run.code == 2


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_private_key_that_is_a_device_or_pipe_is_one_line(kind: str, manifest: Path, tmp_path: Path) -> None:
    key = Path("/dev/zero") if kind == "dev-zero" else _fifo(tmp_path / "pipe.key")
    run = bounded("sign", manifest, "--key", key, "-o", tmp_path / "s.sig")
    assert run.err == f"error: private key {key} is not a regular file\n"
    assert run.code == 2


def test_manifest_that_is_a_pipe_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    pipe = _fifo(tmp_path / "pipe.json")
    run = bounded("verify", checkpoint, "--manifest", pipe)
    assert run.err == f"error: manifest {pipe} is not a regular file\n"
    assert run.code == 2


def _policy() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / "policy.json"


def _seen() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "weights-provenance" / "seen-releases.json"


POLICIES = {
    "nested-deep": ("[" * 60_000, "is not a JSON object"),  # under the cap: json.loads hits RecursionError
    "over-cap": ("[" * 100_000, "is 100,000 bytes, over the 65,536-byte cap"),
    "not-an-object": ("[]", "is not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(POLICIES))
def test_damaged_trust_policy_stops_the_run_naming_it(case: str, checkpoint: Path, manifest: Path) -> None:
    text, wrong = POLICIES[case]
    policy = _policy()
    policy.parent.mkdir(parents=True)
    policy.write_text(text)
    run = bounded("verify", checkpoint, "--manifest", manifest)
    refused(run, str(policy), wrong)
    assert run.err.endswith("; fix it or delete it\n")


def test_trust_policy_that_is_a_pipe_is_one_line(checkpoint: Path, manifest: Path) -> None:
    policy = _fifo(_policy())
    run = bounded("verify", checkpoint, "--manifest", manifest)
    assert run.err == f"error: trust policy {policy} is not a regular file; fix it or delete it\n"
    assert run.code == 2


@pytest.mark.parametrize("kind", ["sparse-4-GiB", "fifo", "nested-deep"])
def test_unreadable_record_of_seen_releases_is_one_line(kind: str, checkpoint: Path, signed: tuple[Path, Path]) -> None:
    seen = _seen()
    if kind == "sparse-4-GiB":
        _sparse(seen, GIB4)
        wrong = "is 4,294,967,296 bytes, over the 8,388,608-byte cap"
    elif kind == "fifo":
        _fifo(seen)
        wrong = "cannot be read (not a regular file)"
    else:
        seen.parent.mkdir(parents=True)
        seen.write_text("{" * 1_000_000)
        wrong = "is damaged (not JSON)"
    run = bounded("verify", checkpoint, "--manifest", signed[0], "--key", signed[1])
    refused(run, f"the record of verified releases {seen} {wrong}", "restore it, or delete it")


@pytest.mark.parametrize("kind", ["sparse-4-GiB", "fifo"])
def test_hub_cache_with_an_unreadable_ref_is_one_line(kind: str, manifest: Path, tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--a--b"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "blobs").mkdir()
    ref = _sparse(repo / "refs" / "main", GIB4) if kind == "sparse-4-GiB" else _fifo(repo / "refs" / "main")
    run = bounded("audit", "cache", "--cache-dir", tmp_path / "hub", "--manifest", manifest)
    why = "4,294,967,296 bytes, where a ref holds one commit" if kind == "sparse-4-GiB" else "not a regular file"
    assert run.err == f"error: hub cache ref {ref} is {why}; delete it or give another --cache-dir\n"
    assert run.code == 2


# ---------------------------------------------------------------------------------------------------------
# A hub whose model-info answer is endless or nested deep


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a body that ends only when the connection does
    mode = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if self.mode == "endless":
                self.wfile.write(b'{"id": "a/b", "sha": "' + b"0" * 40 + b'", "siblings": [')
                chunk = b"{}," * (1 << 18)
                for _ in range(2000):  # 1.5 GB if read whole; the client must stop long before
                    self.wfile.write(chunk)
            else:
                self.wfile.write(b'{"id": "a/b", "sha": "x", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(params=["endless", "nested-deep"])
def hostile_hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    handler = type("Handler", (_Hostile,), {"mode": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # tests of local loaders set them for the session
        monkeypatch.delenv(name, raising=False)
    try:
        yield str(request.param)
    finally:
        server.shutdown()
        server.server_close()


def test_hostile_model_info_answer_is_one_line(hostile_hub: str, manifest: Path) -> None:
    run = bounded("audit", "hf://a/b", "--manifest", manifest)
    wrong = (
        "sent an answer over 64 MiB, more than any repository's metadata takes"
        if hostile_hub == "endless"
        else "sent an answer that is not the Hub's API (maximum recursion depth exceeded"
    )
    refused(run, "hf://a/b: the hub at http://127.0.0.1:", wrong)


def test_hub_audit_in_offline_mode_is_one_line(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    run = bounded("audit", "hf://a/b", "--manifest", manifest)
    assert run.err == (
        "error: hf://a/b: offline mode is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE); unset it to read the hub "
        "at http://127.0.0.1:9\n"
    )
    assert run.code == 2


# ---------------------------------------------------------------------------------------------------------
# Torrent names


def _torrent(info: dict[bytes, object]) -> bytes:
    return bytes(bencode2.bencode({b"info": info}))


def test_torrent_name_longer_than_a_file_name_is_one_short_line(manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "long-name.torrent"
    info = {b"name": b"n" * (60 << 20), b"piece length": 16384, b"pieces": b"", b"length": 0}
    path.write_bytes(_torrent(info))
    run = bounded("torrent", path, "--manifest", manifest)
    refused(run, str(path), f"a file or folder name is longer than 255 bytes ({'n' * 40!r}...)")
    assert len(run.out) + len(run.err) < 1000


def test_torrent_path_longer_than_path_max_is_one_short_line(manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "long-path.torrent"
    files = [{b"length": 1, b"path": [b"d" * 250] * 20}]  # 20 names of 250 bytes: 5,019 bytes with slashes
    info = {b"name": b"release", b"piece length": 16384, b"pieces": b"\0" * 20, b"files": files}
    path.write_bytes(_torrent(info))
    run = bounded("torrent", path, "--manifest", manifest)
    refused(run, str(path), "a path is longer than 4096 bytes")
    assert len(run.out) + len(run.err) < 1000


def test_torrent_names_at_the_caps_are_read(tmp_path: Path) -> None:
    from provenance._sources.torrent_file import parse_torrent

    names = [("é" * 127 + "x").encode()] * 16  # 255 bytes each (127 two-byte letters): 4,095 with slashes
    files = [{b"length": 1, b"path": names}]
    info = {b"name": b"release", b"piece length": 16384, b"pieces": b"\0" * 20, b"files": files}
    torrent = parse_torrent(_torrent(info))
    assert [len(f.path.encode()) for f in torrent.files] == [4095]
