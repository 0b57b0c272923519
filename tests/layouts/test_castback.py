"""Upcasts proven without sketches: the candidate cast back to the release's dtype and digested, inside the
layout adapters too (Meta's shards, llama.cpp GGUF, a Hugging Face download against a Meta manifest), and
for float64 copies. What a plain manifest cannot decide (a lossy cast, a quantization, a widened fine-tune)
is `undecided`, never `unrelated`."""

from __future__ import annotations

import runpy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from provenance._sample import sample_tensors, write_sharded
from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify
from tests.support.llama import GOLDEN, gguf_download

Run = Callable[..., CliResult]
MATRICES = 30  # of the sample model's 39 tensors; the other 9 are float32 norms
WIDENED = "the release's F16 values in F32 (they round back exactly)"
SKETCHED_WOULD = "a sketched manifest (fingerprint without --no-sketches) would decide"


def widened(dtype: type = np.float32, noise: float = 0.0) -> dict[str, np.ndarray]:
    """The sample model with its float16 matrices widened to `dtype`, with relative `noise` added after."""
    rng = np.random.default_rng(11)
    out = {}
    for name, values in sample_tensors().items():
        if values.ndim == 2:
            wide = values.astype(dtype)
            values = (wide * (1 + noise * rng.standard_normal(wide.shape))).astype(dtype) if noise else wide
        out[name] = values
    return out


def casts(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in document["tensors"] if t["status"] == "cast"]


def test_an_f32_gguf_against_a_plain_manifest_is_a_proven_cast(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    folder = gguf_download(release_dir, tmp_path / "f32", None, widened())
    code, document = verify(run_cli, folder, release_manifest)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    assert len(casts(document)) == MATRICES and {t["detail"] for t in casts(document)} == {WIDENED}
    assert {t["proof"] for t in casts(document)} == {"exact"}


def test_a_widened_fine_tune_in_gguf_against_a_plain_manifest_is_undecided(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    folder = gguf_download(release_dir, tmp_path / "tuned", None, widened(noise=0.01))
    code, document = verify(run_cli, folder, release_manifest)
    assert (code, document["verdict"]) == (1, "undecided")
    assert any(r.endswith(SKETCHED_WOULD) for r in document["reasons"])
    assert {t["status"] for t in document["tensors"]} == {"match", "modified"}


@pytest.mark.parametrize(("sketches", "verdict"), [(False, "undecided"), (True, "converted")])
def test_a_q8_0_gguf_is_undecided_against_a_plain_manifest(
    run_cli: Run, release_dir: Path, tmp_path: Path, sketches: bool, verdict: str
) -> None:
    manifest = write_release_manifest(release_dir, tmp_path / "release.json", sketches=sketches)
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / "q8", "Q8_0"), manifest)
    assert (code, document["verdict"]) == (1, verdict)
    if not sketches:
        assert any(r.endswith(SKETCHED_WOULD) for r in document["reasons"])


def meta_shards(folder: Path, release_dir: Path, dtype: Any) -> Path:
    """Meta's consolidated shards written by torch.save (the golden script's split), matrices in `dtype`."""
    torch = pytest.importorskip("torch")
    module = runpy.run_path(str(GOLDEN / "make_meta_golden.py"))
    folder.mkdir()
    tensors = module["meta_tensors"]()
    for shard in range(2):
        state = {
            name: (w if split is None else w.chunk(2, dim=split)[shard]).to(dtype if w.ndim == 2 else w.dtype)
            for name, (w, split) in tensors.items()
        }
        torch.save({k: v.clone().contiguous() for k, v in state.items()}, folder / f"consolidated.{shard:02d}.pth")
    shutil.copyfile(GOLDEN / "meta" / "params.json", folder / "params.json")
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    return folder


@pytest.mark.parametrize("sketches", [False, True])
def test_meta_shards_in_f32_are_a_proven_cast(run_cli: Run, release_dir: Path, tmp_path: Path, sketches: bool) -> None:
    torch = pytest.importorskip("torch")
    manifest = write_release_manifest(release_dir, tmp_path / "release.json", sketches=sketches)
    code, document = verify(run_cli, meta_shards(tmp_path / "meta", release_dir, torch.float32), manifest)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    assert len(casts(document)) == MATRICES
    assert {t["detail"] for t in casts(document)} == {WIDENED}


def test_meta_shards_in_bf16_against_a_plain_manifest_are_undecided(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    code, document = verify(run_cli, meta_shards(tmp_path / "meta", release_dir, torch.bfloat16), release_manifest)
    assert (code, document["verdict"]) == (1, "undecided")
    assert any(r.endswith(SKETCHED_WOULD) for r in document["reasons"])


def test_a_hugging_face_f32_copy_against_a_plain_meta_manifest_is_a_proven_cast(
    run_cli: Run, release_dir: Path, tmp_path: Path
) -> None:
    release = tmp_path / "meta-release"
    shutil.copytree(GOLDEN / "meta", release)
    manifest = write_release_manifest(release, tmp_path / "meta.json", sketches=False)
    folder = tmp_path / "hf-f32"
    shutil.copytree(release_dir, folder, ignore=shutil.ignore_patterns("model*", "tokenizer*"))
    shutil.copyfile(GOLDEN / "meta" / "params.json", folder / "params.json")
    write_sharded(folder, widened(), 2)
    code, document = verify(run_cli, folder, manifest)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    assert len(casts(document)) == 2 * MATRICES  # the shards' halves, each proven
    assert {t["detail"] for t in casts(document)} == {WIDENED}


@pytest.mark.parametrize("release_dtype", [np.float16, np.float32], ids=["f16", "f32"])
def test_a_float64_copy_is_a_proven_upcast(run_cli: Run, tmp_path: Path, release_dtype: type) -> None:
    release = tmp_path / "release"
    tensors = {k: v.astype(release_dtype) for k, v in sample_tensors().items()}
    write_sharded(release, tensors, 2)
    manifest = write_release_manifest(release, tmp_path / "release.json", sketches=False)
    copy = tmp_path / "f64"
    write_sharded(copy, {k: v.astype(np.float64) for k, v in tensors.items()}, 2)
    code, document = verify(run_cli, copy, manifest)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    source = "F16" if release_dtype is np.float16 else "F32"
    assert {t["detail"] for t in casts(document)} == {f"the release's {source} values in F64 (they round back exactly)"}
    assert len(casts(document)) == len(tensors)


def test_a_float64_fine_tune_against_a_plain_manifest_is_undecided(run_cli: Run, tmp_path: Path) -> None:
    release = tmp_path / "release"
    write_sharded(release, sample_tensors(), 2)
    manifest = write_release_manifest(release, tmp_path / "release.json", sketches=False)
    copy = tmp_path / "f64"
    write_sharded(copy, {k: v.astype(np.float64) for k, v in widened(noise=0.01).items()}, 2)
    code, document = verify(run_cli, copy, manifest)
    assert (code, document["verdict"]) == (1, "undecided")
