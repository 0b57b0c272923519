"""The local hub cache: a ref that is endless or never opens is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.limits import GIB4, bounded, fifo, sparse


@pytest.mark.parametrize("kind", ["sparse-4-GiB", "fifo"])
def test_hub_cache_with_an_unreadable_ref_is_one_line(kind: str, manifest: Path, tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--a--b"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "blobs").mkdir()
    ref = sparse(repo / "refs" / "main", GIB4) if kind == "sparse-4-GiB" else fifo(repo / "refs" / "main")
    run = bounded("audit", "cache", "--cache-dir", tmp_path / "hub", "--manifest", manifest)
    why = "4,294,967,296 bytes, where a ref holds one commit" if kind == "sparse-4-GiB" else "not a regular file"
    assert run.err == f"error: hub cache ref {ref} is {why}; delete it or give another --cache-dir\n"
    assert run.code == 2
