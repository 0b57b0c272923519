"""Meta's consolidated layout against a Hugging Face manifest: the golden shards written by real torch.save
(tests/golden/llama/make_meta_golden.py) hold the sample release's numbers in Meta's order and splits."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from provenance.sample import sample_tensors, write_sharded
from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify

Run = Callable[..., CliResult]
GOLDEN = Path(__file__).parent / "golden" / "llama"


@pytest.fixture
def meta_copy(release_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "LLaMA"
    shutil.copytree(GOLDEN / "meta", folder)
    shutil.copyfile(release_dir / "tokenizer.json", folder / "tokenizer.json")
    if (release_dir / "tokenizer.model").exists():
        shutil.copyfile(release_dir / "tokenizer.model", folder / "tokenizer.model")
    return folder


def test_meta_shards_are_equivalent_to_the_hugging_face_release(
    run_cli: Run, meta_copy: Path, release_manifest: Path
) -> None:
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (0, "equivalent")
    assert {t["status"] for t in document["tensors"]} == {"match"}
    assert len(document["tensors"]) == 39
    assert any(r.startswith("read in Meta's layout") for r in document["reasons"])


def test_a_changed_shard_is_caught_after_merging(run_cli: Run, meta_copy: Path, release_manifest: Path) -> None:
    """One byte of the second shard's wk: the merged, permuted k_proj no longer matches."""
    import provenance

    shard = meta_copy / "consolidated.01.pth"
    tensors = {t.name: t for f in provenance.fingerprint(meta_copy).files for t in f.tensors if f.path == shard.name}
    target = tensors["layers.2.attention.wk.weight"]
    data = bytearray(shard.read_bytes())
    data[target.start + 3] ^= 0x10
    shard.write_bytes(bytes(data))
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert [t["name"] for t in document["tensors"] if t["status"] == "modified"] == [
        "model.layers.2.self_attn.k_proj.weight"
    ]


def test_replicated_norms_must_agree(run_cli: Run, meta_copy: Path, release_manifest: Path) -> None:
    import provenance

    shard = meta_copy / "consolidated.01.pth"
    tensors = {t.name: t for f in provenance.fingerprint(meta_copy).files for t in f.tensors if f.path == shard.name}
    target = tensors["layers.0.ffn_norm.weight"]
    data = bytearray(shard.read_bytes())
    data[target.start] ^= 0x01
    shard.write_bytes(bytes(data))
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert [t["name"] for t in document["tensors"] if t["status"] == "modified"] == [
        "model.layers.0.post_attention_layernorm.weight"
    ]
    assert document["reasons"][-1].endswith(
        "; layers.0.ffn_norm.weight is replicated in every shard, but consolidated.01.pth holds another copy than "
        "consolidated.00.pth"
    )


@pytest.fixture
def meta_manifest(meta_copy: Path, tmp_path: Path) -> Path:
    """The release in Meta's layout fingerprinted with sketches: a manifest of Meta's consolidated shards
    (with the checklist.chk of md5 sums Meta ships beside them)."""
    import hashlib

    sums = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(meta_copy.iterdir())]
    (meta_copy / "checklist.chk").write_text("\n".join(sums) + "\n")
    return write_release_manifest(meta_copy, tmp_path / "meta.manifest.json", sketches=True)


def hugging_face_copy(release_dir: Path, folder: Path, dtype: type | None = None) -> Path:
    """The release in the Hugging Face layout, its matrices cast to `dtype` when one is given."""
    shutil.copytree(release_dir, folder)
    if dtype is not None:
        for shard in folder.glob("model-*.safetensors"):
            shard.unlink()
        (folder / "model.safetensors.index.json").unlink()
        tensors = {k: v.astype(dtype) if v.ndim == 2 else v for k, v in sample_tensors().items()}
        write_sharded(folder, tensors, 2)
    return folder


def test_hugging_face_download_is_equivalent_to_a_meta_manifest(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """The other way round: each Hugging Face tensor split into Meta's two shards, q and k rows permuted back."""
    code, document = verify(run_cli, hugging_face_copy(release_dir, tmp_path / "hf"), meta_manifest)
    assert (code, document["verdict"]) == (0, "equivalent")
    assert {t["status"] for t in document["tensors"]} == {"match"}
    assert len(document["tensors"]) == 78  # 39 per shard: rope.freqs is computed, not in the Hugging Face layout
    assert {t["file"] for t in document["tensors"]} == {"consolidated.00.pth", "consolidated.01.pth"}
    assert any(r.startswith("read in the Hugging Face layout") for r in document["reasons"])
    assert "refetch" not in document or not document["refetch"]
    absent = {f["name"]: f.get("detail") for f in document["files"] if f["status"] == "missing"}
    assert absent == dict.fromkeys(
        ["consolidated.00.pth", "consolidated.01.pth"], "its tensors are in the candidate's layout"
    )


def test_a_changed_hugging_face_tensor_lands_on_one_meta_shard(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    from provenance.sample import flip_bit

    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    name = "model.layers.1.self_attn.q_proj.weight"
    flip_bit(folder / index[name], name, byte=2 * 64 * 40 + 1, bit=3)  # row 40 of 64: the second shard's rows
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    changed = [(t["name"], t["file"]) for t in document["tensors"] if t["status"] == "modified"]
    assert changed == [("layers.1.attention.wq.weight", "consolidated.01.pth")]


def test_a_cast_across_layouts_is_converted(
    run_cli: Run, release_dir: Path, meta_copy: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """Float32 weights in the Hugging Face layout against the float16 Meta manifest, and the float16 Meta
    shards against a float32 Hugging Face manifest: the release's numbers in another dtype, both ways."""
    wide = hugging_face_copy(release_dir, tmp_path / "hf-f32", np.float32)
    code, document = verify(run_cli, wide, meta_manifest)
    assert (code, document["verdict"]) == (1, "converted")
    casts = [t for t in document["tensors"] if t["status"] == "cast"]
    assert len(casts) == 2 * 30 and {t["candidate_dtype"] for t in casts} == {"F32"}
    assert {t["detail"] for t in casts} == {"the release's F16 values in F32 (they round back exactly)"}
    assert {t["status"] for t in document["tensors"]} == {"cast", "match"}

    wide_manifest = write_release_manifest(wide, tmp_path / "f32.manifest.json", sketches=True)
    code, document = verify(run_cli, meta_copy, wide_manifest)
    assert (code, document["verdict"]) == (1, "converted")
    casts = [t for t in document["tensors"] if t["status"] == "cast"]
    assert len(casts) == 30 and {t["candidate_dtype"] for t in casts} == {"F16"}
    assert {t["detail"] for t in casts} == {"exact F32 to F16 cast (proven by digest)"}


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed: the goldens are checked")
def test_golden_regenerates_with_torch(run_cli: Run, tmp_path: Path, release_dir: Path, release_manifest: Path) -> None:
    import runpy

    folder = tmp_path / "regenerated"
    module = runpy.run_path(str(GOLDEN / "make_meta_golden.py"))
    module["main"](folder)
    shutil.copyfile(release_dir / "tokenizer.json", folder / "tokenizer.json")
    if (release_dir / "tokenizer.model").exists():
        shutil.copyfile(release_dir / "tokenizer.model", folder / "tokenizer.model")
    code, document = verify(run_cli, folder, release_manifest)
    assert (code, document["verdict"]) == (0, "equivalent")
    assert (folder / "params.json").read_text() == (GOLDEN / "meta" / "params.json").read_text()


def test_diff_reads_the_second_side_in_the_first_ones_layout(
    run_cli: Run, release_dir: Path, meta_copy: Path, tmp_path: Path
) -> None:
    """`diff` of two checkpoints on disk in different layouts (and dtypes): the Meta side rebuilt in the
    Hugging Face layout, each differing tensor sketched on both sides, so the casts are proven."""
    wide = hugging_face_copy(release_dir, tmp_path / "hf-f32", np.float32)
    result = run_cli("diff", wide, meta_copy, "--json", "-q")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (1, "converted")
    casts = [t for t in document["tensors"] if t["status"] == "cast"]
    assert len(casts) == 30 and {t["detail"] for t in casts} == {"exact F32 to F16 cast (proven by digest)"}
    assert any(r.startswith("read in Meta's layout") for r in document["reasons"])

    result = run_cli("diff", release_dir, meta_copy, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "equivalent")
