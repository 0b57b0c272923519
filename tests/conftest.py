"""Shared fixtures: the sample release built with the real safetensors writer, and the real CLI entry point."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.app import main
from provenance._sample import build_sample_release
from tests.support.hubserver import FakeHub

# huggingface_hub reads these once, at import: no test may reach huggingface.co (its user-agent lookup included).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "fixtures" / "real"
REAL_TOKENIZER = REAL / "tokenizer.model"

needs_shared = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/fixtures/real is absent (a user's clone)")

# Fixtures that tests of several rooms use: the bound on hostile input, and references as users name them.
pytest_plugins = ["tests.support.limits", "tests.support.references"]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run the real console entry point in-process and return its exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["provenance", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release in 3 shards with index, config and tokenizer (the real LLaMA tokenizer.model if present)."""
    folder = build_sample_release(tmp_path_factory.mktemp("release") / "release")
    if REAL_TOKENIZER.is_file():
        shutil.copyfile(REAL_TOKENIZER, folder / "tokenizer.model")
    return folder


def verify_json(run_cli: Callable[..., CliResult], folder: Path, manifest: Path) -> tuple[int, dict[str, Any]]:
    """`provenance verify FOLDER --manifest M --json`: its exit code and the document it printed."""
    result = run_cli("verify", folder, "--manifest", manifest, "--json", "-q")
    document: dict[str, Any] = json.loads(result.out)
    return result.code, document


def write_release_manifest(
    release: Path, path: Path, piece_length: int = 0, *, sketches: bool = False, name: str = "sample-release"
) -> Path:
    """The release's manifest, through the library; with a piece length, BEP 52 roots and chunk hashes too."""
    import provenance
    from manifests import build_manifest, write_atomic
    from manifests.io import dump_json

    checkpoint = provenance.fingerprint(release, piece_length=piece_length, sketches=sketches)
    write_atomic(path, dump_json(build_manifest(checkpoint, name).statement()))
    return path


@pytest.fixture(scope="session")
def release_manifest(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("manifest") / "release.manifest.json")


@pytest.fixture
def copy_of_release(release_dir: Path, tmp_path: Path) -> Path:
    """A fresh copy of the release to damage."""
    destination = tmp_path / "download"
    shutil.copytree(release_dir, destination)
    return destination


OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The hub-compatible server, with the real client pointed at it (HF_ENDPOINT), no telemetry, no token."""
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        for name in OFFLINE_SWITCHES:  # tests of local loaders set them for the session; processes inherit them
            monkeypatch.delenv(name, raising=False)
        yield server


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trusted keys, policy and the record of seen releases live in per-test folders, never the user's."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.delenv("PROVENANCE_KEY_PASSWORD", raising=False)
