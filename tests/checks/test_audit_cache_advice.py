"""`provenance audit cache` in text: each snapshot's path, what to do about a corrupt blob, and how to get
a reference for a snapshot none describes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tests.checks.test_audit_mirror import SHARD, chunk_manifest, files_of
from tests.conftest import CliResult
from tests.support.hubserver import FakeHub

Run = Callable[..., CliResult]
__all__ = ["chunk_manifest"]  # the fixture, shared with the mirror audit's tests


def test_cache_rows_show_paths_advice_and_the_missing_reference(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path, tmp_path: Path
) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    hub.add_repo("org/mirror", files_of(release_dir))
    hub.add_repo("org/other", {"config.json": b'{"x": 1}'})
    cache = tmp_path / "cache"
    snapshot = Path(snapshot_download("org/mirror", cache_dir=cache, endpoint=hub.endpoint))
    other = Path(hf_hub_download("org/other", "config.json", cache_dir=cache, endpoint=hub.endpoint)).parent
    blob = (snapshot / SHARD).resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))

    result = run_cli("audit", "cache", "--cache-dir", cache, "--manifest", chunk_manifest)
    assert result.code == 1
    lines = result.out.splitlines()
    assert f"org/mirror@{snapshot.name[:12]}: {snapshot}" in lines
    assert f"org/other@{other.name[:12]}: {other}" in lines
    assert any(
        line.startswith("org/other@") and line.endswith("no matching reference (pass --manifest)") for line in lines
    )
    corrupt = [line for line in result.err.splitlines() if line.startswith("corrupt: ")]
    assert len(corrupt) == 1
    assert corrupt[0].startswith(f"corrupt: org/mirror@{snapshot.name[:12]} {SHARD}: its bytes hash to sha256 ")
    assert corrupt[0].endswith(
        f"; delete {snapshot / SHARD} and the blob it links to, or download it again "
        f"(hf download org/mirror {SHARD} --revision {snapshot.name} --force-download)"
    )
    document = json.loads(run_cli("audit", "cache", "--cache-dir", cache, "--manifest", chunk_manifest, "--json").out)
    assert {s["repo"]: s["path"] for s in document["snapshots"]} == {
        "org/mirror": str(snapshot),
        "org/other": str(other),
    }
