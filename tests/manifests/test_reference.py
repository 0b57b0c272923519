"""`--manifest NAME`: a file or an entry of the user's registry, never silently one for the other."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import CliResult, write_release_manifest
from tests.support.references import one_error_line

Run = Callable[..., CliResult]


def test_a_bare_name_that_is_both_a_file_and_a_registry_entry_is_refused(
    run_cli: Run, registered: str, copy_of_release: Path, release_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_release_manifest(release_dir, work / registered, name="shadow")
    line = one_error_line(run_cli("verify", copy_of_release, "--manifest", registered, "--json", "-q"), 2)
    assert line == (
        "error: sample names both the file ./sample and the registry entry sample; "
        "give ./sample for the file or registry:sample for the registry entry"
    )
    for spec, reference in (("./sample", "shadow (./sample)"), ("registry:sample", "sample-release (registry:sample)")):
        result = run_cli("verify", copy_of_release, "--manifest", spec, "--json", "-q")
        report = json.loads(result.out)
        assert (result.code, report["verdict"], report["reference"]) == (0, "identical", reference)
    for command in (["torrent", work / "none.torrent"], ["audit", "hf://org/repo"]):
        assert "registry:sample" in one_error_line(run_cli(*command, "--manifest", registered), 2)


def test_a_bare_name_without_a_file_is_the_registry_entry_and_a_file_named_is_left_out_of_the_scan(
    run_cli: Run, registered: str, copy_of_release: Path, release_manifest: Path, monkeypatch: Any
) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", registered, "--json", "-q")
    assert (result.code, json.loads(result.out)["reference"]) == (0, "sample-release (sample)")
    shutil.copyfile(release_manifest, copy_of_release / "release.manifest")  # named as a path: not a candidate file
    monkeypatch.chdir(copy_of_release)
    result = run_cli("verify", ".", "--manifest", "./release.manifest", "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (0, "identical")
    assert "release.manifest" not in {f["name"] for f in report["files"]}
    line = one_error_line(run_cli("verify", ".", "--manifest", "registry:nothing-such"), 2)
    assert "nothing-such" in line and "sample" in line
