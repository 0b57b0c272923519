"""Meta's consolidated layout against a Hugging Face manifest: the golden shards written by real torch.save
(tests/golden/llama/make_meta_golden.py) hold the sample release's numbers in Meta's order and splits."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
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
