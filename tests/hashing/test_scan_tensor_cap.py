"""A checkpoint or manifest of more tensors than any release holds is refused in one line, before the comparison
(whose cost grows with the tensor count) could pass DESIGN's 60 s and 1 GiB."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

from blake3 import blake3

from manifests.records import MAX_TENSORS
from tests.conftest import CliResult

Run = Callable[..., CliResult]


def _many_tensors(path: Path, count: int) -> None:
    """One safetensors file of `count` one-byte U8 tensors, written header first as the format says."""
    parts = [f'"t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}' for i in range(count)]
    header = ("{" + ",".join(parts) + "}").encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(count))


def test_a_checkpoint_of_too_many_tensors_is_refused(run_cli: Run, tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    _many_tensors(weights, MAX_TENSORS + 1)
    result = run_cli("fingerprint", weights, "-o", tmp_path / "m.json", "-q")
    assert (result.code, result.err) == (
        2,
        f"error: {weights} holds {MAX_TENSORS + 1:,} tensors, more than the {MAX_TENSORS:,} any release holds\n",
    )


def test_a_manifest_of_too_many_tensors_is_refused(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "release").mkdir()
    _many_tensors(tmp_path / "release" / "model.safetensors", 1)
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", tmp_path / "release", "-o", manifest, "-q").code == 0
    statement = json.loads(manifest.read_text())
    entry = statement["predicate"]["weights_provenance/v1"]["files"][0]
    empty = {"dtype": "U8", "shape": [0], "begin": 8, "end": 8, "blake3": blake3(b"").hexdigest()}
    entry["tensors"] = [{"name": f"e{i}", **empty} for i in range(MAX_TENSORS + 1)]
    manifest.write_text(json.dumps(statement))
    result = run_cli("verify", tmp_path / "release", "--manifest", manifest, "-q")
    assert result.code == 2
    assert result.err.endswith(f"it lists more than {MAX_TENSORS:,} tensors, more than any release holds\n")


def test_many_copies_of_one_digest_under_other_names_are_matched_in_bounds(tmp_path: Path) -> None:
    """40,000 identical tensors renamed: every one is matched by digest in linear time (it was quadratic)."""
    from tests.support.limits import bounded

    count = 40_000
    for side, prefix in (("release", "t"), ("cand", "u")):
        (tmp_path / side).mkdir()
        parts = [f'"{prefix}{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}' for i in range(count)]
        header = ("{" + ",".join(parts) + "}").encode()
        header += b" " * (-len(header) % 8)
        (tmp_path / side / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(count))
    assert bounded("fingerprint", tmp_path / "release", "-o", tmp_path / "m.json", "-q").code == 0
    run = bounded("verify", tmp_path / "cand", "--manifest", tmp_path / "m.json", "--json", "-q")
    report = json.loads(run.out)
    assert (run.code, report["verdict"]) == (1, "modified")
    assert report["summary"]["tensors"] == {"modified": count}  # the release's numbers under other names
