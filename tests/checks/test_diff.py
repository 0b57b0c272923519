"""`provenance diff`: two references or downloads compared, a signed one held to the rollback rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult
from tests.support.references import refused_as_older

Run = Callable[..., CliResult]


def test_diff_refuses_an_older_signed_manifest_as_verify_does(
    run_cli: Run, dated: dict[str, Path], release_dir: Path
) -> None:
    result = run_cli("diff", dated["new"], release_dir, "--json", "-q")
    assert (result.code, json.loads(result.out)["signature"]["status"]) == (0, "valid")
    refused_as_older(run_cli("diff", dated["old"], release_dir, "--json", "-q"))
    refused_as_older(run_cli("diff", release_dir, dated["old"], "--json", "-q"))
    refused_as_older(run_cli("diff", dated["new"], dated["old"], "--json", "-q"))
    result = run_cli("diff", dated["old"], release_dir, "--json", "-q", "--allow-older")
    report = json.loads(result.out)
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "valid")
    assert "checking against the older one as asked" in result.err
