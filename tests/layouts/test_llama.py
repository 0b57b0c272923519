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

from manifests.records import Checkpoint
from provenance._sample import sample_tensors, write_sharded
from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify
from tests.support.llama import GOLDEN
from tests.support.meanings import without_meanings
from tests.support.references import json_error_or_nothing

Run = Callable[..., CliResult]


@pytest.fixture
def meta_copy(release_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "LLaMA"
    shutil.copytree(GOLDEN / "meta", folder)
    shutil.copyfile(release_dir / "tokenizer.json", folder / "tokenizer.json")
    shutil.copyfile(release_dir / "config.json", folder / "config.json")  # the release's, carried along
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

    release = tmp_path / "meta-release"  # as Meta ships it: params.json, no config.json
    shutil.copytree(meta_copy, release, ignore=shutil.ignore_patterns("config.json"))
    sums = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(release.iterdir())]
    (release / "checklist.chk").write_text("\n".join(sums) + "\n")
    return write_release_manifest(release, tmp_path / "meta.manifest.json", sketches=True)


def hugging_face_copy(release_dir: Path, folder: Path, dtype: type | None = None) -> Path:
    """The release in the Hugging Face layout (with Meta's params.json carried along), its matrices cast to
    `dtype` when one is given."""
    shutil.copytree(release_dir, folder)
    shutil.copyfile(GOLDEN / "meta" / "params.json", folder / "params.json")
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
    from provenance._sample import flip_bit

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
    shutil.copyfile(release_dir / "config.json", folder / "config.json")
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


# Hostile and damaged downloads across layouts: each must end in the right verdict or in one line and exit 2.


def edit_tensor(folder: Path, name: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Rewrite one tensor of a sharded Hugging Face download with the real safetensors writer."""
    from safetensors.numpy import load_file, save_file

    shard = folder / json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"][name]
    tensors = load_file(shard)
    tensors[name] = change(tensors[name])
    save_file(tensors, shard)


def test_pieces_swapped_between_meta_shards_are_modified(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """The two halves of q_proj's rows swapped: each half is a piece the other shard holds in the release."""
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    edit_tensor(folder, "model.layers.1.self_attn.q_proj.weight", lambda a: np.concatenate([a[32:], a[:32]]))
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    changed = [(t["name"], t["file"]) for t in document["tensors"] if t["status"] == "modified"]
    assert changed == [("layers.1.attention.wq.weight", f"consolidated.0{i}.pth") for i in (0, 1)]


def test_a_second_copy_of_a_tensor_is_not_dropped(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import save_file

    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    save_file({"model.layers.1.self_attn.q_proj.weight": np.zeros((64, 64), np.float16)}, folder / "aaa.safetensors")
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert any(r.startswith("1 tensor added: model.layers.1.self_attn.q_proj.weight") for r in document["reasons"])


def unfinished(shard: Path, damage: str) -> None:
    """A shard as an unfinished download leaves it: not there at all, or cut short."""
    from tests.support.writers import cut_short

    if damage == "deleted":
        shard.unlink()
    else:
        cut_short(shard)


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_an_unfinished_hugging_face_download_is_incomplete_against_meta(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path, damage: str
) -> None:
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    unfinished(folder / "model-00002-of-00003.safetensors", damage)
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "incomplete")
    assert {t["status"] for t in document["tensors"]} == {"match", "missing"}


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_an_unfinished_meta_download_is_incomplete(
    run_cli: Run, meta_copy: Path, release_manifest: Path, damage: str
) -> None:
    """Without checklist.chk, a missing shard shows in the shapes: one shard holds half of each split tensor."""
    unfinished(meta_copy / "consolidated.01.pth", damage)
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "incomplete")
    missing = [t["name"] for t in document["tensors"] if t["status"] == "missing"]
    assert len(missing) == 30 and "model.layers.0.self_attn.q_proj.weight" in missing  # the split tensors


def test_a_changed_vocabulary_is_modified_not_an_error(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """257 rows do not split into two shards: the pieces differ in shape, which is a change, not bad input."""
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    edit_tensor(folder, "lm_head.weight", lambda a: np.concatenate([a, a[:1]]))
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert {t["name"] for t in document["tensors"] if t["status"] == "modified"} == {"output.weight"}


@pytest.mark.parametrize(
    ("heads", "kv_heads", "says"),
    [
        (0, 2, "num_attention_heads = 0, not a head count"),
        ("4", 2, "num_attention_heads = '4', not a head count"),
        (4, -2, "num_key_value_heads = -2, not a head count"),
        (4, 3, "4 attention heads, not a multiple of its 3 key-value heads"),
        (10**9, 2, "num_attention_heads = 1000000000, not a head count"),
    ],
)
def test_a_hostile_config_is_one_line_and_exit_2(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path, heads: object, kv_heads: object, says: str
) -> None:
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    config.update(num_attention_heads=heads, num_key_value_heads=kv_heads, num_hidden_layers=10**9)
    (folder / "config.json").write_text(json.dumps(config))
    result = run_cli("verify", folder, "--manifest", meta_manifest, "--json", "-q")
    assert result.code == 2
    json_error_or_nothing(result)  # --json: the error as JSON
    lines = [line for line in result.err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.err


def test_a_head_count_that_does_not_fit_the_rows_is_a_change(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """12 heads cannot be rotary-permuted in q's 64 rows, nor 6 in k's 32: q and k cannot match, and the
    report says why."""
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_attention_heads": 12, "num_key_value_heads": 6}))
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert {t["name"].split(".", 2)[2] for t in document["tensors"] if t["status"] == "modified"} == {
        "attention.wq.weight",
        "attention.wk.weight",
    }
    assert (
        "model.layers.0.self_attn.k_proj.weight has shape [32, 64], whose rows 6 heads cannot be rotary-permuted in"
        in (document["reasons"][-1])
    )


def test_saved_rotary_buffers_are_checked_against_the_config(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """Older Hugging Face checkpoints saved each layer's rotary_emb.inv_freq, which older transformers
    loaded: the values the config computes pass (Meta's layout has no counterpart), others are a change."""
    from safetensors.numpy import save_file

    head_dim = 64 // 4
    inv_freq = (1.0 / (10000.0 ** (np.arange(0, head_dim, 2) / head_dim))).astype(np.float32)
    for case, values in (("computed", inv_freq), ("ones", np.ones_like(inv_freq))):
        folder = hugging_face_copy(release_dir, tmp_path / case)
        buffers = {f"model.layers.{i}.self_attn.rotary_emb.inv_freq": values for i in range(4)}
        save_file(buffers, folder / "buffers.safetensors")
        code, document = verify(run_cli, folder, meta_manifest)
        if case == "computed":
            assert (code, document["verdict"]) == (0, "equivalent")
        else:
            assert (code, document["verdict"]) == (1, "modified")
            assert "is not the 1 / theta^(2i/d) that config.json computes" in document["reasons"][-1]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed: Meta shards need it")
def test_an_embedding_split_by_rows_maps_both_ways(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    """Llama 3's shards split the embedding by rows (vocabulary-parallel), earlier ones by columns: the axis
    is read from the shapes in both directions."""
    import runpy

    import torch

    golden = runpy.run_path(str(GOLDEN / "make_meta_golden.py"))
    tensors = golden["meta_tensors"]()
    tensors["tok_embeddings.weight"] = (tensors["tok_embeddings.weight"][0], 0)
    folder = tmp_path / "llama3"
    folder.mkdir()
    for shard in range(2):
        state = {
            name: (w if split is None else w.chunk(2, dim=split)[shard]).clone().contiguous()
            for name, (w, split) in tensors.items()
        }
        torch.save(state, folder / f"consolidated.{shard:02d}.pth")
    shutil.copyfile(GOLDEN / "meta" / "params.json", folder / "params.json")
    for name in ("tokenizer.json", "tokenizer.model", "config.json"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    code, document = verify(run_cli, folder, release_manifest)
    assert (code, document["verdict"]) == (0, "equivalent")

    manifest = write_release_manifest(folder, tmp_path / "llama3.json")
    code, document = verify(run_cli, hugging_face_copy(release_dir, tmp_path / "hf"), manifest)
    assert (code, document["verdict"]) == (0, "equivalent")


def test_a_download_checklist_cannot_hide_a_change(run_cli: Run, meta_copy: Path, release_manifest: Path) -> None:
    """A checklist.chk in the download listing a third shard: the release's shapes say two, so the changed
    wk is compared, not taken for a tensor whose shard never arrived."""
    import provenance

    shard = meta_copy / "consolidated.01.pth"
    tensors = {t.name: t for f in provenance.fingerprint(meta_copy).files for t in f.tensors if f.path == shard.name}
    data = bytearray(shard.read_bytes())
    data[tensors["layers.2.attention.wk.weight"].start + 3] ^= 0x10
    shard.write_bytes(bytes(data))
    (meta_copy / "checklist.chk").write_text(f"{'0' * 32}  consolidated.02.pth\n")
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert [t["name"] for t in document["tensors"] if t["status"] == "modified"] == [
        "model.layers.2.self_attn.k_proj.weight"
    ]


def test_a_tensor_removed_from_a_whole_shard_is_removed_not_lost(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file, save_file

    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    name = "model.layers.2.mlp.up_proj.weight"
    shard = folder / json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"][name]
    tensors = load_file(shard)
    del tensors[name]
    save_file(tensors, shard)
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert any(r.startswith("2 tensors removed from complete files") for r in document["reasons"])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed: Meta shards need it")
def test_a_replicated_tensor_missing_from_one_shard_is_removed(
    run_cli: Run, meta_copy: Path, release_manifest: Path
) -> None:
    import torch

    shard = meta_copy / "consolidated.01.pth"
    state = torch.load(shard, weights_only=True)
    del state["norm.weight"]
    torch.save(state, shard)
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert [t["name"] for t in document["tensors"] if t["status"] == "missing"] == ["model.norm.weight"]
    assert "norm.weight is not in consolidated.01.pth" in document["reasons"][-1]


def test_a_hugging_face_config_is_held_against_the_releases_params(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    """transformers builds the model from config.json: against a Meta release it must say what params.json
    says, and when the release's params.json is known by digest only, nothing green can be said."""
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "hidden_act": "relu", "rms_norm_eps": 0.5, "rope_theta": 1e6}, indent=2)
    )
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert {t["status"] for t in document["tensors"]} == {"match"}
    assert [r for r in document["reasons"] if r.startswith("config.json's")] == [
        "config.json's rope_theta = 1000000.0 where the release's params.json gives rope_theta = 10000.0",
        "config.json's hidden_act = 'relu' where the release's params.json gives (Meta's SwiGLU) = 'silu'",
        "config.json's rms_norm_eps = 0.5 where the release's params.json gives norm_eps = 1e-05",
    ]
    if importlib.util.find_spec("transformers") is not None:  # what the loader builds from these bytes
        from transformers import LlamaConfig

        built = LlamaConfig.from_pretrained(folder)
        assert (built.hidden_act, built.rms_norm_eps) == ("relu", 0.5)

    (folder / "params.json").unlink()  # the release's params.json is no longer at hand: the manifest's meaning
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert (
        "config.json's hidden_act = 'relu' where the release's params.json gives (Meta's SwiGLU) = 'silu'"
        in (document["reasons"])
    )
    older = without_meanings(meta_manifest, tmp_path / "older.json")  # a manifest that records digests only
    code, document = verify(run_cli, folder, older)
    assert (code, document["verdict"]) == (1, "undecided")
    (folder / "config.json").write_text(json.dumps(config, indent=2))  # the genuine config
    code, document = verify(run_cli, folder, meta_manifest)
    assert (code, document["verdict"]) == (0, "equivalent")
    code, document = verify(run_cli, folder, older)  # against digests only even it cannot be checked
    assert (code, document["verdict"]) == (1, "undecided")
    assert document["reasons"][0].startswith("the release's params.json is recorded by digest only")


def test_meta_params_are_held_against_the_releases_config(
    run_cli: Run, meta_copy: Path, release_manifest: Path
) -> None:
    """The head counts q and k are un-permuted by come from the release's config.json, and the download's
    params.json must describe the same model; without the release's config.json at hand, undecided."""
    params = json.loads((meta_copy / "params.json").read_text())
    (meta_copy / "params.json").write_text(json.dumps({**params, "n_heads": 2, "n_kv_heads": 2}))
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert {t["status"] for t in document["tensors"]} == {"match"}  # un-permuted by the release's 4 and 2 heads
    assert [r for r in document["reasons"] if r.startswith("params.json's")] == [
        "params.json's n_heads = 2 where the release's config.json gives num_attention_heads = 4",
    ]

    (meta_copy / "config.json").unlink()  # the manifest's meaning of config.json still gives the 4 and 2 heads
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert {t["status"] for t in document["tensors"]} == {"match"}
    assert (
        "params.json's n_heads = 2 where the release's config.json gives num_attention_heads = 4"
        in (document["reasons"])
    )
    older = without_meanings(release_manifest, meta_copy.parent / "older.json")  # digests only
    code, document = verify(run_cli, meta_copy, older)
    assert (code, document["verdict"]) == (1, "modified")  # un-permuted by the 2 heads it claims: q differs
    (meta_copy / "params.json").write_text(json.dumps(params))
    code, document = verify(run_cli, meta_copy, release_manifest)
    assert (code, document["verdict"]) == (0, "equivalent")
    code, document = verify(run_cli, meta_copy, older)
    assert (code, document["verdict"]) == (1, "undecided")
    assert document["reasons"][0].startswith("the release's config.json is recorded by digest only")


def test_a_config_nested_past_the_stack_is_one_line_and_exit_2(
    run_cli: Run, release_dir: Path, meta_manifest: Path, tmp_path: Path
) -> None:
    folder = hugging_face_copy(release_dir, tmp_path / "hf")
    (folder / "config.json").write_text("[" * 200_000)
    result = run_cli("verify", folder, "--manifest", meta_manifest, "--json", "-q")
    assert result.code == 2
    json_error_or_nothing(result)  # --json: the error as JSON
    lines = [line for line in result.err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.err
    assert lines[0].endswith(
        "config.json is not a Hugging Face config.json (it nests too deeply); the layout cannot be mapped"
    )


def scanned(folder: Path, manifest: Path) -> tuple[Checkpoint, Checkpoint]:
    """The candidate as `verify` reads it against the manifest, and the manifest's release."""
    from manifests.reference import open_reference
    from provenance._hashing.scan import plan_against, scan

    reference = open_reference(manifest).manifest.checkpoint
    return scan(folder, plan_against(reference), strict=False), reference


@pytest.mark.parametrize("side", ["meta-to-hugging-face", "hugging-face-to-meta"])
def test_the_candidates_root_travels_through_the_layout_adapter(
    side: str, meta_copy: Path, release_manifest: Path, meta_manifest: Path, release_dir: Path, tmp_path: Path
) -> None:
    """A rebuilt candidate is still read from the candidate's folder: its root comes through the adapter."""
    from provenance._layouts import in_reference_layout

    if side == "meta-to-hugging-face":
        candidate, reference = scanned(meta_copy, release_manifest)
    else:
        candidate, reference = scanned(hugging_face_copy(release_dir, tmp_path / "hf"), meta_manifest)
    adapted = in_reference_layout(candidate, reference)
    assert adapted.applied == (side,)
    assert adapted.candidate.in_another_layout
    assert candidate.root is not None and adapted.candidate.root == candidate.root
    assert adapted.reference.root is None  # the manifest's release has no folder, adapted or not


def test_a_checkpoint_without_a_root_is_refused_not_guessed(meta_copy: Path, release_manifest: Path) -> None:
    """Every reader that reads a candidate's files again refuses one without a root (a manifest's release,
    or one built by hand): a caller's mistake, said plainly, never a folder guessed from elsewhere."""
    import dataclasses

    from provenance._judging.derive import sketch_differences, sketch_mismatches
    from provenance._judging.partial import inspect_damage
    from provenance._layouts import LAYOUTS, in_reference_layout
    from provenance._layouts.settings import release_document

    candidate, reference = scanned(meta_copy, release_manifest)
    rootless = dataclasses.replace(candidate, root=None)
    calls: list[Callable[[], object]] = [
        lambda: in_reference_layout(rootless, reference),
        lambda: sketch_mismatches(reference, rootless),
        lambda: sketch_differences(rootless, candidate),
        lambda: sketch_differences(candidate, rootless),
        lambda: inspect_damage(reference, rootless),
        lambda: release_document(rootless, reference, "config.json"),
        *(lambda layout=layout: layout.adapt(rootless, reference) for layout in LAYOUTS[:1]),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="this checkpoint has no root") as caught:
            call()
        assert "pass the checkpoint a scan of the folder returned" in str(caught.value)
