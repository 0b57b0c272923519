"""`provenance identify`: the right release ranked first among several of the same shapes, for each way a
checkpoint derives from a release (copies, other layouts, casts, quantizations, fine-tunes), and nothing
claimed for unrelated weights."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from provenance._sample import sample_tensors, write_sharded
from tests.conftest import CliResult, write_release_manifest
from tests.support.llama import GOLDEN, gguf_download
from tests.support.meanings import without_meanings
from tests.support.references import refused_as_older

Run = Callable[..., CliResult]
RELEASES = 5  # release-0 holds the sample model's numbers (those of the Meta and GGUF goldens)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five float16 releases of one architecture, fingerprinted with sketches into one registry folder."""
    root = tmp_path_factory.mktemp("registry")
    folder = root / "manifests"
    folder.mkdir()
    for seed in range(RELEASES):
        release = root / f"release-{seed}"
        write_sharded(release, sample_tensors(seed), 2)
        write_release_manifest(release, folder / f"release-{seed}.json", sketches=True, name=f"release-{seed}")
    return folder


def ranked(run_cli: Run, folder: Path, registry: Path) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli("identify", folder, "--registry", registry, "--json", "-q")
    matches: list[dict[str, Any]] = json.loads(result.out)["matches"]
    return result.code, [m for m in matches if m["release"].startswith("release-")]


def changed(seed: int, change: Callable[[str, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    return {k: change(k, v) for k, v in sample_tensors(seed).items()}


def noisy(scale: float, where: str, seed: int = 5) -> Callable[[str, np.ndarray], np.ndarray]:
    """Relative noise of `scale` on the tensors whose names hold `where` (matrices only unless `where` is '')."""
    rng = np.random.default_rng(seed)

    def apply(name: str, values: np.ndarray) -> np.ndarray:
        if where not in name or (where and values.ndim != 2):
            return values
        wide = values.astype(np.float32)
        return (wide * (1 + scale * rng.standard_normal(wide.shape))).astype(values.dtype)

    return apply


def test_exact_copy_ranks_its_release_first(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    write_sharded(tmp_path / "copy", sample_tensors(2), 2)
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


# (case, seed of the release it derives from, expected verdict, expected `how` of the first row)
DERIVED = [
    ("bf16", 3, "converted", "9 of 39 tensors bit-identical, 30 cast"),
    ("f32", 3, "converted", "9 of 39 tensors bit-identical, 30 cast"),
    ("noise-0.1%", 1, "modified", "32 of 39 tensors bit-identical, 7 changed but derived"),
    ("noise-1%", 1, "modified", "32 of 39 tensors bit-identical, 7 changed but derived"),
    ("noise-5%", 1, "modified", "32 of 39 tensors bit-identical, 7 changed but derived"),
    ("continued-50%", 4, "modified", "0 of 39 tensors bit-identical, 30 changed but derived"),
]


@pytest.mark.parametrize(("case", "seed", "verdict", "how"), DERIVED, ids=[c[0] for c in DERIVED])
def test_casts_and_fine_tunes_rank_their_release_first(
    run_cli: Run, registry: Path, tmp_path: Path, case: str, seed: int, verdict: str, how: str
) -> None:
    changes: dict[str, Callable[[str, np.ndarray], np.ndarray]] = {
        "bf16": lambda k, v: v.astype(np.float32).astype(ml_dtypes.bfloat16) if v.ndim == 2 else v,
        "f32": lambda k, v: v.astype(np.float32),
        "noise-0.1%": noisy(0.001, ".layers.1."),
        "noise-1%": noisy(0.01, ".layers.1."),
        "noise-5%": noisy(0.05, ".layers.1."),
        "continued-50%": noisy(0.5, ""),  # every tensor, norms too: nothing is bit-identical
    }
    write_sharded(tmp_path / case, changed(seed, changes[case]), 2)
    code, matches = ranked(run_cli, tmp_path / case, registry)
    assert code == 1
    assert (matches[0]["release"], matches[0]["verdict"]) == (f"release-{seed}", verdict)
    assert matches[0]["how"].split(" (median change")[0] == how
    assert {m["verdict"] for m in matches[1:]} == {"unrelated"}


def weights_only(folder: Path) -> Path:
    """The registry's releases are weights only: an added config or tokenizer would make a copy `modified`."""
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        (folder / name).unlink(missing_ok=True)
    return folder


def test_other_layouts_rank_their_release_first(
    run_cli: Run, registry: Path, release_dir: Path, tmp_path: Path
) -> None:
    """Meta's consolidated shards and llama.cpp GGUF files of release-0's numbers."""
    meta = tmp_path / "meta"
    shutil.copytree(GOLDEN / "meta", meta)
    code, matches = ranked(run_cli, meta, registry)
    assert (code, matches[0]["release"], matches[0]["verdict"]) == (0, "release-0", "equivalent")
    assert matches[0]["how"] == "39 of 39 tensors bit-identical"

    code, matches = ranked(run_cli, weights_only(gguf_download(release_dir, tmp_path / "f16", None)), registry)
    assert (code, matches[0]["release"], matches[0]["verdict"], matches[0]["share"]) == (
        0,
        "release-0",
        "equivalent",
        1.0,
    )

    code, matches = ranked(run_cli, weights_only(gguf_download(release_dir, tmp_path / "q8", "Q8_0")), registry)
    assert (code, matches[0]["release"], matches[0]["verdict"]) == (1, "release-0", "converted")
    assert matches[0]["how"] == "9 of 39 tensors bit-identical, 30 quantized"
    assert {m["verdict"] for m in matches[1:]} == {"unrelated"}


def test_a_row_permuted_copy_is_not_a_match(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    """Its trained norms are the release's, so it derives from it (`modified`), but no matrix matches: the
    norm vectors count toward no share."""
    write_sharded(tmp_path / "permuted", changed(2, lambda k, v: v[::-1].copy() if v.ndim == 2 else v), 2)
    code, matches = ranked(run_cli, tmp_path / "permuted", registry)
    assert code == 1
    assert (matches[0]["release"], matches[0]["verdict"], matches[0]["share"]) == ("release-2", "modified", 0.0)
    assert matches[0]["how"] == "9 of 39 tensors bit-identical"
    assert {m["verdict"] for m in matches[1:]} == {"unrelated"}


def test_unrelated_weights_match_nothing(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    write_sharded(tmp_path / "other", sample_tensors(42), 2)
    code, matches = ranked(run_cli, tmp_path / "other", registry)
    assert code == 1
    assert {m["verdict"] for m in matches} == {"unrelated"}
    assert all(m["share"] == 0 for m in matches)
    result = run_cli("identify", tmp_path / "other", "--registry", registry, "--json", "-q")
    bundled = [m for m in json.loads(result.out)["matches"] if m["release"].startswith("llama-")]
    assert bundled and all(m["share"] == 0 for m in bundled)
    assert {m["verdict"] for m in bundled} == {"undecided"}  # checksum lists cannot tell: not `modified`


def test_table_output(run_cli: Run, registry: Path, tmp_path: Path) -> None:
    write_sharded(tmp_path / "copy", sample_tensors(0), 2)
    result = run_cli("identify", tmp_path / "copy", "--registry", registry, "-q")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["release", "verdict", "share", "how", "source"]
    assert lines[1].split()[:3] == ["release-0", "identical", "100%"]
    assert lines[1].endswith(str(registry / "release-0.json"))  # two entries of one release name told apart


def test_a_fine_tune_of_a_fine_tune_ranks_the_nearer_release_first(run_cli: Run, tmp_path: Path) -> None:
    """A chat model (the base with 30% noise on every matrix) tuned again by 2%: both releases share its
    norms and both correlate, but the chat model is far nearer."""
    folder = tmp_path / "registry"
    folder.mkdir()
    base = sample_tensors(7)
    chat = changed(7, noisy(0.3, ".layers.", seed=1))
    for name, weights in (("llama-base", base), ("llama-base-chat", chat)):
        write_sharded(tmp_path / name, weights, 2)
        write_release_manifest(tmp_path / name, folder / f"{name}.json", sketches=True, name=name)
    tuned = noisy(0.02, ".layers.", seed=2)
    write_sharded(tmp_path / "tuned", {k: tuned(k, v) for k, v in chat.items()}, 2)
    result = run_cli("identify", tmp_path / "tuned", "--registry", folder, "--json", "-q")
    matches = [m for m in json.loads(result.out)["matches"] if m["release"].startswith("llama-base")]
    assert [m["release"] for m in matches] == ["llama-base-chat", "llama-base"]
    assert [m["verdict"] for m in matches] == ["modified", "modified"]
    near, far = (float(m["how"].split("median change ")[1].rstrip("%)")) for m in matches)
    assert near < 5 < 20 < far


def test_each_release_is_held_against_its_own_config(run_cli: Run, release_dir: Path, tmp_path: Path) -> None:
    """Two Hugging Face manifests of the same weights, one with another config.json, and a download in Meta's
    layout: the rebuilt candidate is shared between them, the config each stands in with is not."""
    folder = tmp_path / "registry"
    folder.mkdir()
    other = tmp_path / "other-config"
    shutil.copytree(release_dir, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace('"float16"', '"bfloat16"'))
    for name, release in (("release-a-other-config", other), ("release-b", release_dir)):
        write_release_manifest(release, folder / f"{name}.json", name=name)
    meta = tmp_path / "meta"
    shutil.copytree(GOLDEN / "meta", meta)
    for name in ("tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, meta / name)
    result = run_cli("identify", meta, "--registry", folder, "--json", "-q")
    verdicts = {m["release"]: m["verdict"] for m in json.loads(result.out)["matches"]}
    # Each manifest records what its config.json means: params.json is held against it (the dtype is no
    # setting of params.json; the tensors say it).
    assert (verdicts["release-a-other-config"], verdicts["release-b"]) == ("equivalent", "equivalent")
    older = tmp_path / "older-registry"  # manifests that record config.json by digest only
    older.mkdir()
    for manifest in folder.iterdir():
        without_meanings(manifest, older / manifest.name)
    result = run_cli("identify", meta, "--registry", older, "--json", "-q")
    verdicts = {m["release"]: m["verdict"] for m in json.loads(result.out)["matches"]}
    # Neither release's config.json is at hand: params.json cannot be held against it.
    assert (verdicts["release-a-other-config"], verdicts["release-b"]) == ("undecided", "undecided")
    shutil.copyfile(release_dir / "config.json", meta / "config.json")  # release-b's, carried along
    result = run_cli("identify", meta, "--registry", folder, "--json", "-q")
    verdicts = {m["release"]: m["verdict"] for m in json.loads(result.out)["matches"]}
    assert (verdicts["release-a-other-config"], verdicts["release-b"]) == ("modified", "equivalent")


def test_identify_is_not_shadowed_by_a_file_named_like_a_registry_entry(
    run_cli: Run, registered: str, copy_of_release: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / registered).write_text("not a manifest")
    (work / "llama-1").write_text("not a manifest either")
    monkeypatch.chdir(work)
    result = run_cli("identify", copy_of_release, "--json", "-q")
    assert result.code == 0, result.err
    best = json.loads(result.out)["matches"][0]
    assert (best["release"], best["verdict"]) == ("sample-release", "identical")


def test_identify_refuses_an_older_signed_manifest(run_cli: Run, dated: dict[str, Path], release_dir: Path) -> None:
    result = run_cli("identify", release_dir, "--registry", dated["new"].parent, "--json", "-q")
    assert (result.code, json.loads(result.out)["matches"][0]["verdict"]) == (0, "identical")
    refused_as_older(run_cli("identify", release_dir, "--registry", dated["old"].parent, "--json", "-q"))
    result = run_cli("identify", release_dir, "--registry", dated["old"].parent, "--json", "-q", "--allow-older")
    assert (result.code, json.loads(result.out)["matches"][0]["verdict"]) == (0, "identical")


def test_tensor_level_evidence_ranks_above_a_matching_file(run_cli: Run, tmp_path: Path) -> None:
    """A checksum list of three files of which only the tokenizer is the checkpoint's ranks below a sketched
    release that every matrix of the checkpoint derives from (none bit-identical)."""
    import hashlib

    base = sample_tensors(3)
    folder = tmp_path / "registry"
    folder.mkdir()
    release = tmp_path / "release"
    write_sharded(release, base, 1)
    write_release_manifest(release, folder / "tuned-from.json", sketches=True, name="tuned-from")
    tuned = tmp_path / "tuned"
    write_sharded(tuned, changed(3, noisy(0.5, "")), 1)
    (tuned / "tokenizer.json").write_text('{"model": {"vocab": {}}}\n')
    digest = hashlib.sha256((tuned / "tokenizer.json").read_bytes()).hexdigest()
    listing = tmp_path / "SHA256SUMS"
    listing.write_text(
        f"{'1' * 64}  config.json\n{digest}  tokenizer.json\n{'2' * 64}  model.safetensors\n", encoding="utf-8"
    )
    assert run_cli("import", listing, "-o", folder / "checksums.json").code == 0
    result = run_cli("identify", tuned, "--registry", folder, "--json", "-q")
    matches = [m for m in json.loads(result.out)["matches"] if not m["release"].startswith("llama-")]
    assert [(m["verdict"], m["share"]) for m in matches] == [("modified", 0.0), ("undecided", 0.3333)]
    assert matches[0]["release"] == "tuned-from"
    assert matches[1]["how"] == "1 of 3 files identical"


@pytest.mark.parametrize("sketches", [False, True])
def test_constant_norms_count_toward_no_share(run_cli: Run, tmp_path: Path, sketches: bool) -> None:
    """Norms at initialisation (all ones) are the same in every model of the shape: another seed's weights
    hold none of the release."""

    def at_init(seed: int) -> dict[str, np.ndarray]:
        return {k: np.ones_like(v) if v.ndim == 1 else v for k, v in sample_tensors(seed).items()}

    folder = tmp_path / "registry"
    folder.mkdir()
    write_sharded(tmp_path / "release", at_init(0), 2)
    write_release_manifest(tmp_path / "release", folder / "release.json", sketches=sketches, name="release-init")
    write_sharded(tmp_path / "other", at_init(1), 2)
    result = run_cli("identify", tmp_path / "other", "--registry", folder, "--json", "-q")
    best = json.loads(result.out)["matches"][0]
    verdict = "unrelated" if sketches else "undecided"
    assert (best["release"], best["verdict"], best["share"]) == ("release-init", verdict, 0.0)
    assert best["how"] == "9 of 39 tensors bit-identical"


def test_an_upcast_is_identified_against_a_plain_manifest(run_cli: Run, tmp_path: Path) -> None:
    """No sketches in the registry: the float32 copy cast back to float16 is the release's, digest for digest."""
    folder = tmp_path / "registry"
    folder.mkdir()
    for seed in (0, 1):
        write_sharded(tmp_path / f"plain-{seed}", sample_tensors(seed), 2)
        write_release_manifest(tmp_path / f"plain-{seed}", folder / f"plain-{seed}.json", name=f"plain-{seed}")
    write_sharded(tmp_path / "f32", changed(1, lambda k, v: v.astype(np.float32)), 2)
    result = run_cli("identify", tmp_path / "f32", "--registry", folder, "--json", "-q")
    matches = [m for m in json.loads(result.out)["matches"] if m["release"].startswith("plain-")]
    assert [(m["release"], m["verdict"], m["share"]) for m in matches] == [
        ("plain-1", "converted", 1.0),
        ("plain-0", "undecided", 0.0),
    ]
    assert matches[0]["how"] == "9 of 39 tensors bit-identical, 30 cast"
