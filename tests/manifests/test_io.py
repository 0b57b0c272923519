"""Reading manifests: a document of bounded size and parse cost, read within 60 s and 1 GiB, and one line
for a pipe or a flood of tiny values."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.limits import bounded, fifo, refused

DOCUMENT_BYTES = (128 << 20) - 64


def test_manifest_of_many_tiny_values_is_refused_within_bounds(checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(b'{"x":[' + b"{}," * (DOCUMENT_BYTES // 3 - 4) + b"{}]}")
    refused(bounded("verify", checkpoint, "--manifest", path), "hostile.json", "too many JSON values")


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


def test_manifest_that_is_a_pipe_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "pipe.json")
    run = bounded("verify", checkpoint, "--manifest", pipe)
    assert run.err == f"error: manifest {pipe} is not a regular file\n"
    assert run.code == 2
