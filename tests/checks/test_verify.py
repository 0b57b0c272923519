"""Each way a download can differ from its release, checked through the real CLI: verdict, statuses, exit code."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from provenance._sample import flip_bit, sample_tensors, write_sharded
from tests.conftest import REAL_TOKENIZER, CliResult, write_release_manifest
from tests.support.writers import cut_short

SHARD2 = "model-00002-of-00003.safetensors"
SHARD3 = "model-00003-of-00003.safetensors"
Run = Callable[..., CliResult]


def verify_json(run_cli: Run, target: Path, manifest: Path) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify", target, "--manifest", manifest, "--json", "-q")
    assert "Traceback" not in result.err
    return result.code, json.loads(result.out)


def statuses(report: dict[str, Any], kind: str) -> dict[str, str]:
    return {entry["name"]: entry["status"] for entry in report[kind]}


def all_tensors() -> list[str]:
    return list(sample_tensors())


def weights_only(folder: Path) -> None:
    """Remove the weights files and index, keeping config and tokenizer, before re-writing the weights."""
    for path in folder.glob("model*"):
        path.unlink()


def test_exact_copy_is_identical(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert set(statuses(report, "files").values()) == {"match"}
    assert statuses(report, "tensors") == dict.fromkeys(all_tensors(), "match")
    assert report["signature"]["status"] == "unsigned"
    assert report["summary"]["tensors"] == {"match": len(all_tensors())}
    if REAL_TOKENIZER.is_file():
        assert statuses(report, "files")["tokenizer.model"] == "match"


def test_unsigned_manifest_warns_on_stderr_only(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q")
    assert json.loads(result.out)["verdict"] == "identical"
    assert "warning:" in result.err and "unsigned" in result.err


def test_resharded_copy_is_equivalent(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    weights_only(copy_of_release)
    write_sharded(copy_of_release, sample_tensors(), 2)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "equivalent")
    assert statuses(report, "tensors") == dict.fromkeys(all_tensors(), "match")
    files = statuses(report, "files")
    assert files["model-00001-of-00002.safetensors"] == "extra"
    assert files["model-00001-of-00003.safetensors"] == "missing"
    assert files["config.json"] == "match"
    assert any("re-sharded from 3 files into 2" in r for r in report["reasons"])


def test_renamed_shards_are_equivalent(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    weights_only(copy_of_release)
    write_sharded(copy_of_release, sample_tensors(), 3, prefix="weights")
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "equivalent")
    assert set(statuses(report, "tensors").values()) == {"match"}
    assert any("renamed" in r for r in report["reasons"])


def test_reordered_tensors_with_other_metadata_are_equivalent(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    weights_only(copy_of_release)
    tensors = sample_tensors()
    write_sharded(
        copy_of_release, tensors, 3, metadata={"format": "np", "converted_by": "someone"}, order=list(reversed(tensors))
    )
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "equivalent")
    assert set(statuses(report, "tensors").values()) == {"match"}
    assert statuses(report, "files")[SHARD2] == "modified"  # same name, other bytes: the container differs


def test_one_flipped_bit_is_modified_and_named(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    flip_bit(copy_of_release / SHARD2, "model.layers.2.mlp.up_proj.weight", byte=7, bit=5)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    tensors = statuses(report, "tensors")
    assert tensors.pop("model.layers.2.mlp.up_proj.weight") == "modified"
    assert set(tensors.values()) == {"match"}
    assert statuses(report, "files")[SHARD2] == "modified"
    assert report["summary"]["tensors"] == {"match": len(all_tensors()) - 1, "modified": 1}


def test_truncated_shard_is_incomplete(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    shard = copy_of_release / SHARD2
    full = load_file(str(shard))
    cut_short(shard, 0.5)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "incomplete")
    assert statuses(report, "files")[SHARD2] == "corrupt"
    tensors = statuses(report, "tensors")
    in_shard = {t["name"]: t["status"] for t in report["tensors"] if t.get("file") == SHARD2}
    assert set(in_shard) == set(full)
    assert "match" in in_shard.values() and "corrupt" in in_shard.values()  # intact ones still match
    assert set(in_shard.values()) == {"match", "corrupt"}
    assert {s for n, s in tensors.items() if n not in in_shard} == {"match"}


def test_shard_cut_inside_its_header_is_incomplete(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    shard = copy_of_release / SHARD3
    with open(shard, "r+b") as stream:
        stream.truncate(100)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "incomplete")
    assert statuses(report, "files")[SHARD3] == "corrupt"
    assert {t["status"] for t in report["tensors"] if t.get("file") == SHARD3} == {"missing"}


def test_missing_shard_is_incomplete(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    (copy_of_release / SHARD3).unlink()
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "incomplete")
    assert statuses(report, "files")[SHARD3] == "missing"
    in_shard = {t["status"] for t in report["tensors"] if t.get("file") == SHARD3}
    assert in_shard == {"missing"}
    assert {t["status"] for t in report["tensors"] if t.get("file") != SHARD3} == {"match"}


def test_missing_shard_of_a_resharded_copy_is_incomplete_through_its_index(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    weights_only(copy_of_release)
    write_sharded(copy_of_release, sample_tensors(), 2)
    (copy_of_release / "model-00002-of-00002.safetensors").unlink()
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "incomplete")
    assert set(statuses(report, "tensors").values()) == {"match", "missing"}


def test_added_tensor_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    shard = copy_of_release / SHARD2
    tensors = load_file(str(shard))
    tensors["backdoor.weight"] = np.ones((4, 4), dtype=np.float16)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert statuses(report, "tensors")["backdoor.weight"] == "extra"
    assert [t["name"] for t in report["tensors"] if t["status"] != "match"] == ["backdoor.weight"]


def test_removed_tensor_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    shard = copy_of_release / SHARD2
    tensors = load_file(str(shard))
    removed = sorted(tensors)[0]
    del tensors[removed]
    save_file(tensors, str(shard), metadata={"format": "pt"})
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert [(t["name"], t["status"]) for t in report["tensors"] if t["status"] != "match"] == [(removed, "missing")]
    assert any("removed" in r for r in report["reasons"])


def test_unrelated_weights_are_undecided_against_a_plain_manifest(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """Another seed's weights of the release's shape: without sketches a fine-tune looks the same."""
    weights_only(copy_of_release)
    write_sharded(copy_of_release, sample_tensors(seed=1), 3)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "undecided")
    assert "match" not in statuses(report, "tensors").values()
    assert report["reasons"][-1].endswith("a sketched manifest (fingerprint without --no-sketches) would decide")


def test_unrelated_weights_are_unrelated_against_a_sketched_manifest(
    run_cli: Run, copy_of_release: Path, release_dir: Path, tmp_path: Path
) -> None:
    sketched = write_release_manifest(release_dir, tmp_path / "sketched.json", sketches=True)
    weights_only(copy_of_release)
    write_sharded(copy_of_release, sample_tensors(seed=1), 3)
    code, report = verify_json(run_cli, copy_of_release, sketched)
    assert (code, report["verdict"]) == (1, "unrelated")
    assert "match" not in statuses(report, "tensors").values()


def test_unrelated_weights_in_other_files_are_unrelated(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """Another architecture's names in one file: every release tensor absent with its shard, none present
    and changed, but new tensors in their place: not an unfinished download."""
    from safetensors.numpy import save_file

    weights_only(copy_of_release)
    rng = np.random.default_rng(3)
    save_file(
        {f"transformer.h.{i}.attn.weight": rng.standard_normal((64, 64)).astype(np.float16) for i in range(4)},
        copy_of_release / "model.safetensors",
    )
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "unrelated")


def test_changed_config_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    config = copy_of_release / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 4', '"num_hidden_layers": 5'))
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert statuses(report, "files")["config.json"] == "modified"
    assert set(statuses(report, "tensors").values()) == {"match"}


def test_missing_tokenizer_is_incomplete(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    (copy_of_release / "tokenizer.json").unlink()
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "incomplete")
    assert statuses(report, "files")["tokenizer.json"] == "missing"


def test_extra_non_weight_file_is_listed_but_harmless(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / "README.md").write_text("mirrored by someone\n")
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert statuses(report, "files")["README.md"] == "extra"


def test_manifest_inside_the_checkpoint_is_not_an_extra_file(run_cli: Run, copy_of_release: Path) -> None:
    manifest = copy_of_release / "release.manifest.json"
    assert run_cli("fingerprint", copy_of_release, "-o", manifest, "-q").code == 0
    code, report = verify_json(run_cli, copy_of_release, manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert "release.manifest.json" not in statuses(report, "files")


def test_single_file_of_the_release_is_checked_as_a_part(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """One file of the release is checked against its entry alone, the others neither missing nor read."""
    total = len(list(copy_of_release.iterdir()))
    code, report = verify_json(run_cli, copy_of_release / "config.json", release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert statuses(report, "files") == {"config.json": "match"}
    assert report["part"] == {"checked": f"1 of {total} files of the release", "files": ["config.json"]}
    assert report["reasons"][0] == f"checked 1 of {total} files of the release; the verdict is about these files only"


def test_table_output_names_the_changed_tensor(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    flip_bit(copy_of_release / SHARD2, "model.layers.2.mlp.up_proj.weight")
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q")
    assert result.code == 1
    assert result.out.startswith("verdict: modified")
    assert "model.layers.2.mlp.up_proj.weight" in result.out
    assert "values differ" in result.out


@pytest.mark.parametrize("target", ["download", "manifest"])
def test_diff_of_two_checkpoints_and_of_checkpoint_and_manifest(
    run_cli: Run, release_dir: Path, release_manifest: Path, copy_of_release: Path, target: str
) -> None:
    flip_bit(copy_of_release / SHARD2, "model.layers.2.mlp.up_proj.weight")
    reference = release_dir if target == "download" else release_manifest
    result = run_cli("diff", reference, copy_of_release, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    assert [t["name"] for t in report["tensors"] if t["status"] != "match"] == ["model.layers.2.mlp.up_proj.weight"]


def test_diff_of_identical_checkpoints(run_cli: Run, release_dir: Path, copy_of_release: Path) -> None:
    result = run_cli("diff", release_dir, copy_of_release, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")


def test_diff_of_two_manifests(run_cli: Run, release_manifest: Path, copy_of_release: Path, tmp_path: Path) -> None:
    (copy_of_release / "tokenizer.json").unlink()
    other = tmp_path / "other.json"
    assert run_cli("fingerprint", copy_of_release, "-o", other, "-q").code == 0
    result = run_cli("diff", release_manifest, other, "--json")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "incomplete")
    assert statuses(report, "files")["tokenizer.json"] == "missing"


def test_leftover_duplicate_of_a_shard_changes_nothing(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    shutil.copyfile(copy_of_release / SHARD2, copy_of_release / "model-00002-of-00003 (1).safetensors")
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert statuses(report, "files")["model-00002-of-00003 (1).safetensors"] == "extra"
    reference = [t for t in report["tensors"] if t.get("file")]
    assert {t["status"] for t in reference} == {"match"}
    assert all(t.get("candidate_file") is None for t in reference)  # each matched in its own file
    copies = [t for t in report["tensors"] if not t.get("file")]
    assert copies and {t["detail"] for t in copies} == {"another copy of a tensor already matched"}


def test_partial_leftover_copy_of_a_shard_changes_nothing(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    partial = copy_of_release / "model-00002-of-00003 (1).safetensors"
    shutil.copyfile(copy_of_release / SHARD2, partial)
    cut_short(partial, 0.5)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert {t["status"] for t in report["tensors"] if t.get("file")} == {"match"}


def test_junk_weights_file_does_not_excuse_a_removed_tensor(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    shard = copy_of_release / SHARD2
    tensors = load_file(str(shard))
    removed = sorted(tensors)[0]
    del tensors[removed]
    save_file(tensors, str(shard), metadata={"format": "pt"})
    (copy_of_release / "notes.safetensors").write_text("junk\n")
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert statuses(report, "files")["notes.safetensors"] == "extra"
    assert any("removed" in r for r in report["reasons"])


def _ones_for_norms(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.ones_like(v) if v.ndim == 1 else v for name, v in tensors.items()}


@pytest.mark.parametrize(("sketches", "verdict"), [(False, "undecided"), (True, "unrelated")])
def test_unrelated_weights_sharing_only_constant_vectors(
    run_cli: Run, release_dir: Path, tmp_path: Path, sketches: bool, verdict: str
) -> None:
    """Norms at initialisation (all ones) are shared by construction: no evidence of derivation."""
    release = tmp_path / "release"
    release.mkdir()
    write_sharded(release, _ones_for_norms(sample_tensors(seed=0)), 3)
    manifest = write_release_manifest(release, tmp_path / "release.json", sketches=sketches)
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    write_sharded(candidate, _ones_for_norms(sample_tensors(seed=1)), 3)
    code, report = verify_json(run_cli, candidate, manifest)
    assert (code, report["verdict"]) == (1, verdict)
    assert {t["name"] for t in report["tensors"] if t["status"] == "match"} == {
        name for name, v in sample_tensors().items() if v.ndim == 1
    }
    if sketches:
        assert "trivial tensors" in report["reasons"][0]


@pytest.mark.parametrize("sketches", [False, True])
def test_shared_trained_norms_show_derivation(
    run_cli: Run, copy_of_release: Path, release_dir: Path, tmp_path: Path, sketches: bool
) -> None:
    """The release's trained norm vectors (not one value repeated) beside other matrices: derived, so
    `modified` with or without sketches."""
    manifest = write_release_manifest(release_dir, tmp_path / "release.json", sketches=sketches)
    weights_only(copy_of_release)
    ours, theirs = sample_tensors(seed=0), sample_tensors(seed=1)
    mixed = {name: (ours[name] if ours[name].ndim == 1 else theirs[name]) for name in ours}
    write_sharded(copy_of_release, mixed, 3)
    code, report = verify_json(run_cli, copy_of_release, manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert report["reasons"][0].startswith("30 tensors changed: ")


def test_one_matching_matrix_is_evidence(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    weights_only(copy_of_release)
    ours, theirs = sample_tensors(seed=0), sample_tensors(seed=1)
    theirs["model.embed_tokens.weight"] = ours["model.embed_tokens.weight"]
    write_sharded(copy_of_release, theirs, 3)
    code, report = verify_json(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert statuses(report, "tensors")["model.embed_tokens.weight"] == "match"


def test_file_level_reference_cannot_decide_a_resharded_copy(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path
) -> None:
    statement = json.loads(release_manifest.read_text())
    del statement["predicate"]["weights_provenance/v1"]
    plain = tmp_path / "file-level.json"
    plain.write_text(json.dumps(statement))
    weights_only(copy_of_release)
    write_sharded(copy_of_release, sample_tensors(), 2)
    code, report = verify_json(run_cli, copy_of_release, plain)
    assert (code, report["verdict"]) == (1, "undecided")
    assert "tensor-level manifest would decide" in report["reasons"][-1]
    assert statuses(report, "files")["model.safetensors.index.json"] == "modified"


def test_wide_hostile_header_is_read_in_bounded_time(run_cli: Run, tmp_path: Path) -> None:
    """An ignored extra key holding millions of values must not make the depth check explode."""
    import struct

    header = json.dumps({"w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0], "x": [{}] * 2_000_000}})
    (tmp_path / "wide.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    started = time.monotonic()
    result = run_cli("fingerprint", tmp_path / "wide.safetensors", "-q")
    assert result.code == 0, result.err
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("flags", [(), ("--no-sketches",)], ids=["sketched", "plain"])
def test_a_release_of_constants_is_its_own_match(
    run_cli: Callable[..., CliResult], tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """Constant tensors show no derivation when other things differ, but a copy whose every tensor is found
    is the release's: identical as it is, converted in float32, never `unrelated`."""
    release, widened = tmp_path / "release", tmp_path / "f32"
    release.mkdir()
    widened.mkdir()
    tensors = {"norm.weight": np.ones(8, np.float16), "proj.weight": np.zeros((4, 8), np.float16)}
    save_file(tensors, str(release / "model.safetensors"))
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(widened / "model.safetensors"))
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", release, "-o", manifest, "-q", *flags).code == 0
    seen = []
    for folder in (release, widened):
        result = run_cli("verify", folder, "--manifest", manifest, "--json", "-q")
        seen.append((result.code, json.loads(result.out)["verdict"]))
    assert seen == [(0, "identical"), (1, "converted")]
