"""Names that differ only in case or Unicode form: on Windows or macOS one file replaces the other, so a
download or a v2 torrent holding both is modified."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

import provenance
from provenance import Verdict
from tests.conftest import CliResult
from tests.support.torrents import write_torrent

Run = Callable[..., CliResult]


@pytest.mark.parametrize(
    ("added", "other"),
    [
        ("CONFIG.JSON", "config.json"),
        ("Config.json", "config.json"),
        ("Tokenizer.JSON", "tokenizer.json"),
    ],
)
def test_a_v2_torrent_with_names_colliding_under_case_folding_is_modified(
    run_cli: Run, copy_of_release: Path, v2_reference: Path, tmp_path: Path, added: str, other: str
) -> None:
    (copy_of_release / added).write_text('{"architectures": ["SomethingElse"]}\n')
    result = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_reference, "--json")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (1, "modified")
    files = {f["name"]: f for f in document["files"]}
    assert (files[other]["status"], files[added]["status"]) == ("modified", "extra")
    assert files[other]["detail"] == f"its name and {added}'s are one file on a case-insensitive file system"
    assert document["reasons"][0].startswith(f"names that differ only in case or Unicode form ({added} and {other})")


def test_a_v2_torrent_with_names_colliding_under_unicode_normalization_is_modified(
    run_cli: Run, copy_of_release: Path, v2_reference: Path, tmp_path: Path
) -> None:
    """macOS stores names decomposed (NFD): café.md (NFC) and café.md (NFD) land on one file there."""
    nfc, nfd = unicodedata.normalize("NFC", "café.md"), unicodedata.normalize("NFD", "café.md")
    (copy_of_release / nfc).write_text("one\n")
    (copy_of_release / nfd).write_text("two\n")
    result = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_reference, "--json")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (1, "modified")
    assert {f["name"]: f["status"] for f in document["files"]}[nfc] == "extra"
    assert "differ only in case or Unicode form" in document["reasons"][0]


def test_a_v2_torrent_without_collisions_stays_identical(
    run_cli: Run, release_dir: Path, v2_reference: Path, tmp_path: Path
) -> None:
    result = run_cli("torrent", write_torrent(tmp_path, release_dir, "v2"), "--manifest", v2_reference, "--json")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")


def test_a_download_with_names_colliding_under_case_folding_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """On a case-sensitive disk both are there; copied to Windows or macOS, either may be the config."""
    (copy_of_release / "CONFIG.JSON").write_text('{"architectures": ["SomethingElse"]}\n')
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    files = {f["name"]: f["status"] for f in report["files"]}
    assert (files["config.json"], files["CONFIG.JSON"]) == ("modified", "extra")
    assert report["reasons"] == [
        "names that differ only in case or Unicode form (CONFIG.JSON and config.json): on a case-insensitive "
        "file system (Windows, macOS) one silently replaces the other, so what loads is not what was checked",
        "1 file added: CONFIG.JSON",
    ]
    (copy_of_release / "CONFIG.JSON").unlink()
    (copy_of_release / "notes.md").write_text("a different name is no collision\n")
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")  # an inert file beside the release


def test_colliding_names_are_modified_whichever_check_reads_them(
    run_cli: Run, release_dir: Path, copy_of_release: Path, release_manifest: Path, tmp_path: Path
) -> None:
    """`diff` (disk against disk, either side a manifest), `identify` and the library's `compare` judge the
    same folder `verify` calls modified: none may call it identical."""
    (copy_of_release / "README.md").write_text("one\n")
    (copy_of_release / "readme.md").write_text("two\n")  # inert each, but one file on Windows or macOS
    assert provenance.verify(copy_of_release, release_manifest).verdict is Verdict.MODIFIED
    for a, b in ((release_dir, copy_of_release), (release_manifest, copy_of_release)):
        result = run_cli("diff", a, b, "--json", "-q")
        assert (result.code, json.loads(result.out)["verdict"]) == (1, "modified"), (a, b)
    registry = tmp_path / "registry"
    registry.mkdir()
    shutil.copyfile(release_manifest, registry / "sample.json")
    result = run_cli("identify", copy_of_release, "--registry", registry, "--json", "-q")
    best = json.loads(result.out)["matches"][0]
    assert (result.code, best["release"], best["verdict"]) == (1, "sample-release", "modified")
    candidate = provenance.fingerprint(copy_of_release)
    assert provenance.compare(provenance.fingerprint(release_dir), candidate).verdict is Verdict.MODIFIED
