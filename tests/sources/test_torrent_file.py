"""Reading .torrent files within 60 s and 1 GiB: floods refused, a piece layer many files name checked
once, names held to the caps of real file systems."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import bencode2
import pytest

from tests.conftest import CliResult
from tests.support.limits import bounded, refused
from tests.support.references import json_error_or_nothing

BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cli.app import main
sys.argv = ["provenance", "torrent", sys.argv[1], "--manifest", sys.argv[2], "--json"]
main()
"""


def _bounded_torrent(torrent: Path, manifest: Path) -> CliResult:
    """`provenance torrent` in a child process held to 1 GiB of address space and 60 s."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", BOUNDED, str(torrent), str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def _shared_layer_bomb() -> bytes:
    """2,000 files naming one 8 MiB piece layer: checked once per file, it costs minutes and gigabytes."""
    import bencode2

    from manifests.pieces import layer_root

    count = 1 << 18
    nodes = [bytes(32)] * count
    root = layer_root(nodes, 16384)
    tree = {b"f%05d" % i: {b"": {b"length": count * 16384, b"pieces root": root}} for i in range(2000)}
    info = {b"file tree": tree, b"meta version": 2, b"name": b"release", b"piece length": 16384}
    return bytes(bencode2.bencode({b"info": info, b"piece layers": {root: b"".join(nodes)}}))


def _many_files() -> bytes:
    import bencode2

    root = bytes(range(32))
    tree = {b"%06d" % i: {b"": {b"length": 1, b"pieces root": root}} for i in range(50_001)}
    info = {b"file tree": tree, b"meta version": 2, b"name": b"release", b"piece length": 16384}
    return bytes(bencode2.bencode({b"info": info}))


def _value_flood() -> bytes:
    """3 million empty lists beside a valid info dictionary: 6 MB on disk, 200 bytes each once decoded."""
    return (
        b"d4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:"
        + bytes(20)
        + b"e1:xl"
        + b"le" * 3_000_000
        + b"ee"
    )


def test_a_piece_layer_named_by_many_files_is_checked_once(release_manifest: Path, tmp_path: Path) -> None:
    torrent = tmp_path / "shared.torrent"
    torrent.write_bytes(_shared_layer_bomb())
    result = _bounded_torrent(torrent, release_manifest)
    assert (result.code, json.loads(result.out)["verdict"]) == (1, "modified"), result.err[-400:]  # files added


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_many_files, "it lists more than 50,000 files, more than any release holds"),
        (_value_flood, "it holds more than 2,000,000 bencode values, more than any release needs"),
    ],
    ids=["many-files", "value-flood"],
)
def test_torrent_floods_are_refused_within_the_bound(
    release_manifest: Path, tmp_path: Path, build: Callable[[], bytes], message: str
) -> None:
    torrent = tmp_path / "flood.torrent"
    torrent.write_bytes(build())
    result = _bounded_torrent(torrent, release_manifest)
    assert result.code == 2 and result.out != ""
    json_error_or_nothing(result)  # --json: the error as JSON
    assert result.err.strip().splitlines() == [
        f"error: {torrent} is not a valid torrent: {message}; get the .torrent again from its publisher"
    ]


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
