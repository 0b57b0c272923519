"""`provenance identify`: the right release ranked first among several of the same shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from provenance.sample import sample_tensors, write_sharded
from tests.conftest import CliResult

Run = Callable[..., CliResult]
RELEASES = 5


def weights(seed: int) -> dict[str, np.ndarray]:
    return {
        k: v.astype(np.float32).astype(ml_dtypes.bfloat16) if v.ndim == 2 else v
        for k, v in sample_tensors(seed).items()
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five releases of one architecture, fingerprinted with sketches into one registry folder."""
    import provenance
    from manifests import build_manifest, write_atomic
    from manifests.io import dump_json

    root = tmp_path_factory.mktemp("registry")
    folder = root / "manifests"
    folder.mkdir()
    for seed in range(RELEASES):
        release = root / f"release-{seed}"
        write_sharded(release, weights(seed), 2)
        checkpoint = provenance.fingerprint(release, sketches=True)
        write_atomic(
            folder / f"release-{seed}.json", dump_json(build_manifest(checkpoint, f"release-{seed}").statement())
        )
    return folder


def ranked(run_cli: Run, folder: Path, registry: Path) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli("identify", folder, "--registry", registry, "--json", "-q")
    matches: list[dict[str, Any]] = json.loads(result.out)["matches"]
    return result.code, [m for m in matches if m["release"].startswith("release-")]


def test_exact_copy_ranks_its_release_first(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    write_sharded(tmp_path / "copy", weights(2), 2)
    code, matches = ranked(run_cli, tmp_path / "copy", registry)
    assert code == 0
    assert matches[0] == {
        "release": "release-2",
        "source": str(registry / "release-2.json"),
        "verdict": "identical",
        "share": 1.0,
        "how": "39 of 39 tensors bit-identical",
    }
    assert {m["verdict"] for m in matches[1:]} == {"unrelated"}
    assert len(matches) == RELEASES


def test_a_cast_and_a_fine_tune_rank_their_release_first(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    cast = {k: v.astype(np.float16) if v.dtype == ml_dtypes.bfloat16 else v for k, v in weights(3).items()}
    write_sharded(tmp_path / "cast", cast, 2)
    code, matches = ranked(run_cli, tmp_path / "cast", registry)
    assert code == 1
    assert (matches[0]["release"], matches[0]["verdict"], matches[0]["share"]) == ("release-3", "converted", 1.0)
    assert matches[0]["how"] == "9 of 39 tensors bit-identical, 30 cast"

    rng = np.random.default_rng(0)
    tuned = {
        k: (v.astype(np.float32) * (1 + 0.01 * rng.standard_normal(v.shape))).astype(v.dtype)
        if ".layers.1." in k and v.ndim == 2
        else v
        for k, v in weights(1).items()
    }
    write_sharded(tmp_path / "tuned", tuned, 2)
    code, matches = ranked(run_cli, tmp_path / "tuned", registry)
    assert (matches[0]["release"], matches[0]["verdict"]) == ("release-1", "modified")
    assert matches[0]["how"] == "32 of 39 tensors bit-identical, 7 changed but derived"


def test_unrelated_weights_match_nothing(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    write_sharded(tmp_path / "other", weights(42), 2)
    code, matches = ranked(run_cli, tmp_path / "other", registry)
    assert code == 1
    assert {m["verdict"] for m in matches} == {"unrelated"}
    assert all(m["share"] < 0.3 for m in matches)


def test_table_output(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    write_sharded(tmp_path / "copy", weights(0), 2)
    result = run_cli("identify", tmp_path / "copy", "--registry", registry, "-q")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["release", "verdict", "share", "how"]
    assert lines[1].split()[:3] == ["release-0", "identical", "100%"]
