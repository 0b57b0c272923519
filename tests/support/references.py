"""The sample release's manifest as users name it: an entry of their registry, signed and dated (to test
rollback), with BEP 52 roots (to check torrents); and the one line a refused run ends in.

A plugin of tests/conftest.py: its fixtures are there for every test module.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, write_release_manifest
from tests.support.torrents import PIECE

Run = Callable[..., CliResult]


def user_dir(kind: str) -> Path:
    """The user's folder of `kind` (registry, trusted_keys) under the per-test XDG_CONFIG_HOME."""
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def one_error_line(result: CliResult, code: int) -> str:
    """The run ended with `code`, one `error:` line on stderr, and on stdout nothing, or with --json that
    same error as the one JSON document: that line."""
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    json_error_or_nothing(result)
    return lines[0]


def json_error_or_nothing(result: CliResult) -> None:
    """stdout after an error: empty, or (--json) exactly one document holding the error stderr ends with."""
    if result.out == "":
        return
    document = json.loads(result.out)
    assert set(document) == {"error", "version"}, document
    assert document["error"]["message"] == result.err.strip().splitlines()[-1].removeprefix("error: ")


def refused_as_older(result: CliResult) -> None:
    """Exit 3, one line naming both dates and the flag that accepts the older manifest."""
    line = one_error_line(result, 3)
    assert "2025-01-01T00:00:00Z" in line and "2026-06-01T00:00:00Z" in line and "--allow-older" in line


@pytest.fixture
def registered(release_manifest: Path) -> str:
    """The sample release in the user's registry, as `sample`."""
    shutil.copyfile(release_manifest, user_dir("registry") / "sample.json")
    return "sample"


@pytest.fixture
def dated(run_cli: Run, release_manifest: Path, tmp_path: Path) -> dict[str, Path]:
    """An old and a new signed manifest of the release, by a key in the trusted-keys folder."""
    assert run_cli("keygen", tmp_path / "alice").code == 0
    shutil.copyfile(tmp_path / "alice.pub", user_dir("trusted_keys") / "alice.pub")
    signed = {}
    for label, date in (("old", "2025-01-01T00:00:00Z"), ("new", "2026-06-01T00:00:00Z")):
        statement = json.loads(release_manifest.read_text())
        statement["predicate"]["weights_provenance/v1"]["release"]["created"] = date
        (tmp_path / f"{label}.json").write_text(json.dumps(statement))
        signed[label] = tmp_path / label / "release.sig"
        signed[label].parent.mkdir()
        result = run_cli("sign", tmp_path / f"{label}.json", "--key", tmp_path / "alice.key", "-o", signed[label])
        assert result.code == 0, result.err
    return signed


@pytest.fixture(scope="module")
def v2_reference(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release's manifest with BEP 52 pieces roots and layers of PIECE bytes."""
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("v2ref") / "release.json", PIECE)


def registry_of(manifest: Path, folder: Path) -> Path:
    """A registry folder (for `identify --registry`) holding `manifest` alone, as sample-release.json."""
    folder.mkdir()
    (folder / "sample-release.json").write_bytes(manifest.read_bytes())
    return folder
