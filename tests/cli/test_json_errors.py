"""`--json` is for scripts: every outcome, an error too, is one JSON document on stdout with the exit code."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from blake3 import blake3

from tests.conftest import CliResult

Run = Callable[..., CliResult]


def _error(result: CliResult) -> dict[str, str]:
    document = json.loads(result.out)  # exactly one document: json.loads refuses anything after it
    assert set(document) == {"error", "version"}
    return dict(document["error"])


def test_a_missing_path_is_a_json_error(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    result = run_cli("verify", tmp_path / "nothere", "--manifest", release_manifest, "--json", "-q")
    assert result.code == 2
    assert _error(result) == {
        "code": "unreadable_input",
        "message": f"{tmp_path / 'nothere'} does not exist; give the checkpoint's directory or file",
    }
    assert result.err.startswith("error: ")  # the line for a person stays on stderr


def test_a_missing_key_is_a_json_error(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--key", "no.pub", "--json", "-q")
    assert result.code == 2
    assert _error(result) == {
        "code": "unreadable_input",
        "message": "cannot read public key no.pub: No such file or directory",
    }


def test_an_unsigned_manifest_where_a_key_is_given_is_a_json_error_exit_3(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path
) -> None:
    assert run_cli("keygen", tmp_path / "alice").code == 0
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--key", tmp_path / "alice.pub", "--json")
    assert result.code == 3
    assert _error(result)["code"] == "signature_error"


def test_a_bad_manifest_is_a_json_error(run_cli: Run, copy_of_release: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run_cli("verify", copy_of_release, "-m", bad, "--json", "-q")
    assert result.code == 2
    assert _error(result) == {
        "code": "manifest_error",
        "message": f"manifest {bad} is not valid JSON; is it the right file?",
    }


@pytest.mark.parametrize("command", ["verify", "diff", "identify", "torrent"])
def test_a_usage_error_is_a_json_error(run_cli: Run, command: str) -> None:
    result = run_cli(command, "x", "--json", "--bogus")
    assert result.code == 2
    assert _error(result) == {"code": "usage", "message": "No such option: --bogus"}


def test_without_json_stdout_stays_empty_on_error(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    result = run_cli("verify", tmp_path / "nothere", "--manifest", release_manifest, "-q")
    assert result.code == 2 and result.out == ""


def test_a_report_carries_the_version_the_manifest_digest_and_both_digests_of_a_differing_file(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    changed = copy_of_release / "tokenizer.model"
    changed.write_bytes(changed.read_bytes()[:-1] + b"?")
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["version"] == "0.1.0"
    assert report["manifest"]["digest"] == hashlib.sha256(release_manifest.read_bytes()).hexdigest()
    assert report["manifest"]["source"] == str(release_manifest)
    entry = next(f for f in report["files"] if f["name"] == changed.name)
    assert entry["status"] == "modified"
    assert entry["digests"] == {"blake3": blake3(changed.read_bytes()).hexdigest()}  # the one a verify computes
    assert entry["expected_digests"]["blake3"] != entry["digests"]["blake3"]
    assert set(entry["expected_digests"]) >= {"sha256", "blake3"}
    assert all("digests" not in f for f in report["files"] if f["status"] == "match")
