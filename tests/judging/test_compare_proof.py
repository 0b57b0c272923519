"""How strong the evidence is (`proof`): `exact` where digests prove it, `sampled` where values at sampled
positions agree, per tensor and for the verdict, in the JSON document and the text report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify
from tests.support.llama import gguf_download
from tests.support.writers import bf16_weights, cut_short, variant

Run = Callable[..., CliResult]
SAMPLED_LINE = (
    "proof:     sampled (values at sampled positions agree; a deliberate edit placed between the samples is not "
    "ruled out)"
)


def proofs(document: dict[str, Any]) -> dict[str, set[str | None]]:
    """Per tensor status, the proofs the report gives (every entry carries the key)."""
    found: dict[str, set[str | None]] = {}
    for entry in document["tensors"]:
        assert "proof" in entry, entry
        found.setdefault(entry["status"], set()).add(entry["proof"])
    return found


def text_proof(run_cli: Run, folder: Path, manifest: Path) -> list[str]:
    result = run_cli("verify", folder, "--manifest", manifest, "-q")
    return [line for line in result.out.splitlines() if line.startswith("proof:")]


@pytest.fixture(scope="module")
def bf16_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from provenance._sample import write_sharded

    folder = tmp_path_factory.mktemp("bf16-proof") / "release"
    write_sharded(folder, bf16_weights(), 2)
    return write_release_manifest(folder, folder.parent / "release.json", sketches=True, name="bf16")


def test_an_identical_copy_is_exact(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    code, document = verify(run_cli, copy_of_release, release_manifest)
    assert (code, document["verdict"], document["proof"]) == (0, "identical", "exact")
    assert proofs(document) == {"match": {"exact"}}
    assert text_proof(run_cli, copy_of_release, release_manifest) == ["proof:     exact"]


def test_a_cast_proven_by_digest_is_exact(run_cli: Run, bf16_reference: Path, tmp_path: Path) -> None:
    folder = variant(tmp_path, "f16", lambda k, v: v.astype(np.float16) if v.dtype == ml_dtypes.bfloat16 else v)
    code, document = verify(run_cli, folder, bf16_reference)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    assert proofs(document) == {"cast": {"exact"}, "match": {"exact"}}
    assert text_proof(run_cli, folder, bf16_reference) == ["proof:     exact"]


def test_a_cast_that_rounds_back_is_exact(run_cli: Run, bf16_reference: Path, tmp_path: Path) -> None:
    folder = variant(tmp_path, "f32", lambda k, v: v.astype(np.float32))
    code, document = verify(run_cli, folder, bf16_reference)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    assert proofs(document) == {"cast": {"exact"}, "match": {"exact"}}


def test_a_cast_within_rounding_is_sampled(run_cli: Run, bf16_reference: Path, tmp_path: Path) -> None:
    """Every value one F16 ulp off the canonical cast: no digest proves it, only the samples agree."""

    def one_ulp_off(name: str, values: np.ndarray) -> np.ndarray:
        if values.dtype != ml_dtypes.bfloat16:
            return values
        bits = values.astype(np.float16).view(np.uint16)
        return np.where(bits != 0, bits + np.uint16(1), bits).astype(np.uint16).view(np.float16)

    folder = variant(tmp_path, "ulp", one_ulp_off)
    code, document = verify(run_cli, folder, bf16_reference)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "sampled")
    by_detail = {(t["detail"].split(" (")[0], t["proof"]) for t in document["tensors"] if t["status"] == "cast"}
    assert ("values within F16 rounding of the release's", "sampled") in by_detail
    assert by_detail <= {
        ("values within F16 rounding of the release's", "sampled"),
        ("the release's BF16 values in F16", "exact"),
    }
    assert proofs(document)["match"] == {"exact"}
    assert text_proof(run_cli, folder, bf16_reference) == [SAMPLED_LINE]


@pytest.fixture(scope="module")
def sketched(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("gguf-proof") / "release.json", sketches=True)


def test_a_quantized_gguf_is_sampled(run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    folder = gguf_download(release_dir, tmp_path / "q8", "Q8_0")
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "sampled")
    assert proofs(document) == {"quantized": {"sampled"}, "match": {"exact"}}
    assert text_proof(run_cli, folder, sketched) == [SAMPLED_LINE]


def test_no_green_verdict_has_no_proof(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    """A cut-short shard and an added tensor: the missing, corrupt and extra entries carry null, as does the verdict."""
    from safetensors.numpy import save_file

    cut_short(copy_of_release / "model-00002-of-00003.safetensors", 0.5)
    save_file({"added.weight": np.ones(4, dtype=np.float32)}, str(copy_of_release / "added.safetensors"))
    code, document = verify(run_cli, copy_of_release, release_manifest)
    assert (code, document["verdict"], document["proof"]) == (1, "modified", None)
    found = proofs(document)
    assert found["extra"] == {None} and found["corrupt"] == {None} and found["match"] == {"exact"}
    assert text_proof(run_cli, copy_of_release, release_manifest) == []
