"""What a new user meets: partial checks, words of the report, and pointers to the right command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from tests.conftest import CliResult

Run = Callable[..., CliResult]
SHARD2 = "model-00002-of-00003.safetensors"
SHARD3 = "model-00003-of-00003.safetensors"


def test_a_single_file_of_the_release_is_checked_alone_and_said_to_be_a_part(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    total = len(list(copy_of_release.iterdir()))
    result = run_cli("verify", copy_of_release / SHARD2, "--manifest", release_manifest, "-q")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "verdict: identical"
    assert lines[4].endswith(f"; part of the release: 1 of {total} files")
    assert f"part checked: 1 of {total} files of the release" in lines
    assert f"  - checked 1 of {total} files of the release; the verdict is about these files only" in lines
    assert "missing" not in result.out


def test_only_globs_check_those_files_and_damage_elsewhere_is_not_seen(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    total = len(list(copy_of_release.iterdir()))
    (copy_of_release / SHARD3).unlink()
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "*.json", "--json", "-q")
    document = json.loads(result.out)
    assert result.code == 0 and document["verdict"] == "identical"
    assert document["part"]["checked"] == f"3 of {total} files of the release"
    assert sorted(f["name"] for f in document["files"]) == [
        "config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]


def test_only_a_changed_shard_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    data = bytearray((copy_of_release / SHARD2).read_bytes())
    data[-1] ^= 1
    (copy_of_release / SHARD2).write_bytes(bytes(data))
    total = len(list(copy_of_release.iterdir()))
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "model-0000[23]*", "-q")
    assert result.code == 1
    assert result.out.splitlines()[0] == "verdict: modified"
    assert (
        f"  - checked 2 of {total} files of the release; the verdict is about these files only"
        in result.out.splitlines()
    )


def test_an_extra_file_matching_only_is_not_hidden(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    save_file({"lm_head.extra": np.ones(4, dtype=np.float32)}, str(copy_of_release / "model-extra.safetensors"))
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "model-*", "--json", "-q")
    assert result.code == 1 and json.loads(result.out)["verdict"] != "identical"


def test_only_matching_nothing_is_one_line_exit_2(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "nothing*", "-q")
    assert result.code == 2
    assert result.err.splitlines()[-1].startswith("error: no file of the release matches --only nothing*;")


def test_missing_rows_have_no_trailing_spaces_and_counts_agree(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / SHARD3).unlink()
    lines = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q").out.splitlines()
    assert f"  missing   {SHARD3}" in lines
    assert all(line == line.rstrip() for line in lines)
    assert f"  missing   13 tensors of {SHARD3}, which is missing" in lines
    assert any(line.startswith("fetch again (109,072 bytes in 1 file;") for line in lines)


def test_a_corrupt_file_is_said_unreadable_not_lost(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    shard = copy_of_release / SHARD3
    shard.write_bytes(shard.read_bytes()[:100])
    lines = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q").out.splitlines()
    assert f"  missing   13 tensors of {SHARD3}, which cannot be read" in lines
    assert any(line.startswith(f"  - {SHARD3} cannot be read: header of ") for line in lines)


def test_verify_of_a_hub_name_points_to_audit(run_cli: Run, release_manifest: Path) -> None:
    result = run_cli("verify", "hf://acme/model", "--manifest", release_manifest, "-q")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "error: hf://acme/model is a hub repository and verify reads files on disk: "
        "`provenance audit` checks a hub repository against the manifest without downloading it"
    )
