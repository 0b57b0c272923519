"""A Hugging Face cache snapshot, made by the real huggingface_hub client against the test hub server: its
files are symlinks to `../../blobs/SHA`, inside the repository's cache folder, so they are read without
--allow-symlinks; a link that leaves that folder is still refused."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.support.hubserver import FakeHub
from tests.support.references import registry_of

Run = Callable[..., CliResult]


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def snapshot(release_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The release as `snapshot_download` lays it out in a cache: snapshots/REV/FILE -> ../../blobs/SHA."""
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import snapshot_download

    with FakeHub() as hub:
        hub.add_repo("acme/release", files_of(release_dir))
        folder = snapshot_download("acme/release", endpoint=hub.endpoint, cache_dir=tmp_path / "hub", token=False)
    path = Path(folder)
    assert path.parent.parent.name == "models--acme--release"
    assert all(p.is_symlink() for p in path.iterdir())
    yield path


def test_verify_a_snapshot_without_allow_symlinks(run_cli: Run, snapshot: Path, release_manifest: Path) -> None:
    result = run_cli("verify", snapshot, "--manifest", release_manifest, "--json", "-q")
    assert result.code == 0, result.err
    assert json.loads(result.out)["verdict"] == "identical"


def test_fingerprint_a_snapshot_without_allow_symlinks(run_cli: Run, snapshot: Path, tmp_path: Path) -> None:
    result = run_cli("fingerprint", snapshot, "-o", tmp_path / "m.json", "-q")
    assert result.code == 0, result.err
    assert (tmp_path / "m.json").is_file()


def test_identify_a_snapshot_without_allow_symlinks(
    run_cli: Run, snapshot: Path, release_manifest: Path, tmp_path: Path
) -> None:
    registry = registry_of(release_manifest, tmp_path / "registry")
    result = run_cli("identify", snapshot, "--registry", registry, "--json", "-q")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["matches"][0]["verdict"] == "identical"
    assert document["version"] == "0.1.0"


def test_a_link_leaving_the_repository_folder_is_refused(
    run_cli: Run, snapshot: Path, release_manifest: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((snapshot / "config.json").read_bytes())
    (snapshot / "config.json").unlink()
    os.symlink(os.path.relpath(outside, snapshot), snapshot / "config.json")
    for command in (("verify", snapshot, "--manifest", release_manifest), ("identify", snapshot)):
        result = run_cli(*command, "-q")
        assert result.code == 2
        assert result.err == (
            f"error: {snapshot / 'config.json'} is a symlink that leaves the checkpoint (to {outside}); "
            "pass --allow-symlinks if that is intended\n"
        )
    result = run_cli("identify", snapshot, "--allow-symlinks", "-q")
    assert result.code in (0, 1) and "error" not in result.err


def test_a_link_into_another_repository_of_the_cache_is_refused(
    run_cli: Run, snapshot: Path, release_manifest: Path
) -> None:
    cache = snapshot.parent.parent.parent
    other = cache / "models--acme--other" / "blobs"
    other.mkdir(parents=True)
    (other / "config").write_bytes((snapshot / "config.json").read_bytes())
    (snapshot / "config.json").unlink()
    os.symlink(os.path.relpath(other / "config", snapshot), snapshot / "config.json")
    result = run_cli("verify", snapshot, "--manifest", release_manifest, "-q")
    assert result.code == 2 and "is a symlink that leaves the checkpoint" in result.err


def test_a_plain_folder_named_like_a_cache_still_bounds_links_to_its_repository(tmp_path: Path) -> None:
    from provenance._hashing.paths import link_bound

    repo = tmp_path / "models--a--b"
    (repo / "snapshots" / "rev" / "sub").mkdir(parents=True)
    assert link_bound(repo / "snapshots" / "rev") == repo.resolve()
    assert link_bound(repo / "snapshots" / "rev" / "sub") == repo.resolve()
    assert link_bound(repo / "snapshots") == (repo / "snapshots").resolve()
    assert link_bound(tmp_path) == tmp_path.resolve()
