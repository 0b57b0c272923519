"""llama.cpp GGUF files (written by the gguf package's writer, names and q/k order as llama.cpp converts
them) against the Hugging Face release: F16 is the same numbers, Q8_0 a quantization of them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from provenance._sample import sample_tensors
from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify
from tests.support.llama import HEADS, gguf_download, meta_rows, write_llama_gguf
from tests.support.meanings import without_meanings
from tests.support.references import json_error_or_nothing

Run = Callable[..., CliResult]


@pytest.fixture(scope="module")
def sketched(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("gguf") / "release.json", sketches=True)


def test_f16_gguf_is_equivalent(run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / "f16", None), sketched)
    assert (code, document["verdict"]) == (0, "equivalent")
    assert {t["status"] for t in document["tensors"]} == {"match"}
    assert any(r.startswith("read in llama.cpp's GGUF layout") for r in document["reasons"])


# quantization type, and the sampled relative change its error stays under (measured: Q8_0 0.5%, 5-bit ~4%, 4-bit ~8%)
QUANTIZATIONS = [("Q8_0", 0.01), ("Q5_1", 0.07), ("Q5_0", 0.07), ("Q4_1", 0.13), ("Q4_0", 0.13)]


@pytest.mark.parametrize(("kind", "bound"), QUANTIZATIONS, ids=[q[0] for q in QUANTIZATIONS])
def test_quantized_gguf_is_converted(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path, kind: str, bound: float
) -> None:
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / kind, kind), sketched)
    assert (code, document["verdict"]) == (1, "converted")
    quantized = [t for t in document["tensors"] if t["status"] == "quantized"]
    assert len(quantized) == 30 and {t["candidate_dtype"] for t in quantized} == {kind}
    assert all(t["change"] < bound and t["correlation"] > 0.99 for t in quantized), quantized[0]
    assert {t["status"] for t in document["tensors"]} == {"quantized", "match"}


def tuned(noise: float) -> dict[str, np.ndarray]:
    """The sample model with relative noise on layer 1's matrices."""
    rng = np.random.default_rng(4)
    return {
        k: (v.astype(np.float32) * (1 + noise * rng.standard_normal(v.shape))).astype(v.dtype)
        if ".layers.1." in k and v.ndim == 2
        else v
        for k, v in sample_tensors().items()
    }


LAYER_1 = sorted(k for k, v in sample_tensors().items() if ".layers.1." in k and v.ndim == 2)


@pytest.mark.parametrize(("kind", "noise"), [("Q8_0", 0.01), ("Q8_0", 0.05), ("Q4_0", 0.01), ("Q5_1", 0.01)])
def test_a_fine_tune_shows_through_the_quantization_grid(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path, kind: str, noise: float
) -> None:
    """Noise on layer 1, then quantized: below a 4-bit grid's error (8%), but values land off the levels
    nearest the release's, which the reference quantizers never do. An 8-bit grid shows it in every
    tensor; a 4- or 5-bit one at 1% in a few of 64 samples, so most tensors, not always all."""
    folder = gguf_download(release_dir, tmp_path / "tuned", kind, tuned(noise))
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "modified")
    changed = {t["name"]: t["detail"] for t in document["tensors"] if t["status"] == "modified"}
    if kind == "Q8_0":
        assert sorted(changed) == LAYER_1
    else:
        assert set(changed) <= set(LAYER_1) and len(changed) >= 4, sorted(changed)
    assert all(f"sampled values are not on the level nearest the release's ({kind})" in d for d in changed.values())
    assert {t["status"] for t in document["tensors"] if t["name"] not in changed} == {"quantized", "match"}


def test_an_importance_matrix_leaves_small_4_bit_changes_undecided(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path
) -> None:
    """With `quantize.imatrix.*` keys, a level one off the nearest may be the quantizer's choice: a 1% change
    under Q4_0 is then consistent with the release but not ruled out (`undecided`, `proven: false`); a
    quantization of the release itself is still on every nearest level (`converted`); under Q8_0, which has
    no such quantizer, the change still shows."""
    folder = gguf_download(release_dir, tmp_path / "q4", "Q4_0", tuned(0.01), imatrix=True)
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "undecided")
    layer_1 = [t for t in document["tensors"] if t["name"] in LAYER_1]
    assert {t["status"] for t in layer_1} == {"quantized"}
    loose = [t for t in layer_1 if t.get("proven") is False]
    assert len(loose) >= 4 and all("a change smaller than its error cannot be ruled out" in t["detail"] for t in loose)
    assert any("quantized by a quantizer that searches its scales" in r for r in document["reasons"])

    clean = gguf_download(release_dir, tmp_path / "q4-clean", "Q4_0", imatrix=True)
    code, document = verify(run_cli, clean, sketched)
    quantized = [t for t in document["tensors"] if t["status"] == "quantized"]
    assert (code, document["verdict"], len(quantized)) == (1, "converted", 30)
    assert all("is on the level nearest the release's" in t["detail"] and "proven" not in t for t in quantized)

    folder = gguf_download(release_dir, tmp_path / "q8", "Q8_0", tuned(0.01), imatrix=True)
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "modified")
    assert sorted(t["name"] for t in document["tensors"] if t["status"] == "modified") == LAYER_1


def _blocks(path: Path, name: str) -> tuple[int, int]:
    """Where a GGUF tensor's blocks are in the file: [start, end)."""
    import provenance

    tensor = next(t for f in provenance.fingerprint(path.parent).files for t in f.tensors if t.name == name)
    return tensor.start, tensor.end


@pytest.mark.parametrize(
    ("case", "scale"), [("zeroed", 1.0), ("nan-scale", float("nan")), ("inf-scale", float("inf")), ("huge", 60000.0)]
)
def test_a_destroyed_quantized_tensor_is_not_a_quantization(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path, case: str, scale: float
) -> None:
    """Every block of one Q8_0 tensor given another float16 scale and all-zero levels: whatever the scale,
    the release's values lie within half a step of nothing real, and NaN or Inf scales are not numbers."""
    folder = gguf_download(release_dir, tmp_path / case, "Q8_0")
    path = folder / "model.gguf"
    start, end = _blocks(path, "blk.1.ffn_up.weight")
    data = bytearray(path.read_bytes())
    block = np.array([scale], dtype=np.float16).tobytes() + bytes(32)
    data[start:end] = block * ((end - start) // len(block))
    path.write_bytes(bytes(data))
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "modified")
    changed = [t["name"] for t in document["tensors"] if t["status"] == "modified"]
    assert changed == ["model.layers.1.mlp.up_proj.weight"]


@pytest.mark.parametrize(
    ("heads", "says"),
    [
        (0, "llama.attention.head_count = 0 is not a head count"),
        (-4, "llama.attention.head_count = -4 is not a head count"),
        ("4", "llama.attention.head_count is not an integer"),
        (3, "3 attention heads are not a multiple of 2 key-value heads"),
    ],
)
def test_a_hostile_head_count_is_one_line_and_exit_2(
    run_cli: Run, sketched: Path, tmp_path: Path, heads: int | str, says: str
) -> None:
    (tmp_path / "bad").mkdir()
    write_llama_gguf(tmp_path / "bad" / "model.gguf", None, heads=heads)
    result = run_cli("verify", tmp_path / "bad", "--manifest", sketched, "--json", "-q")
    assert result.code == 2
    json_error_or_nothing(result)  # --json: the error as JSON
    lines = [line for line in result.err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.err


def test_a_cut_short_gguf_is_incomplete(run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    from tests.support.writers import cut_short

    folder = gguf_download(release_dir, tmp_path / "cut", None)
    cut_short(folder / "model.gguf", 0.9)
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "incomplete")
    statuses = {t["status"] for t in document["tensors"]}
    assert statuses <= {"match", "corrupt", "missing"} and "match" in statuses
    assert any(t["status"] in ("corrupt", "missing") and t["name"] == "lm_head.weight" for t in document["tensors"])


@pytest.mark.parametrize("kind", ["Q4_0", "Q5_0", "Q8_0"])
def test_a_heavy_tailed_release_quantized_is_converted(run_cli: Run, tmp_path: Path, kind: str) -> None:
    """Laplace and Student-t weights: 64 samples of a 4-bit quantization's error can exceed any fixed
    tolerance, but every value is on its nearest level in blocks scaled to their extreme value."""
    from provenance._sample import write_sharded

    rng = np.random.default_rng(9)
    heavy = {
        k: ((rng.laplace(size=v.shape) if i % 2 else rng.standard_t(3, size=v.shape)) * 0.02).astype(np.float16)
        if v.ndim == 2
        else v
        for i, (k, v) in enumerate(sample_tensors().items())
    }
    write_sharded(tmp_path / "release", heavy, 2)
    manifest = write_release_manifest(tmp_path / "release", tmp_path / "heavy.json", sketches=True)
    (tmp_path / "q").mkdir()
    write_llama_gguf(tmp_path / "q" / "model.gguf", kind, heavy)
    code, document = verify(run_cli, tmp_path / "q", manifest)
    assert (code, document["verdict"]) == (1, "converted")
    assert {t["status"] for t in document["tensors"]} == {"quantized", "match"}


def hugging_face_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """The inverse of meta_rows: what a loader that believes `heads` heads turns llama.cpp's rows into."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def test_a_relabelled_head_count_is_modified(run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    """head_count 2 where the release's config.json says 4, q rows permuted for 2 heads so that un-permuting
    by the file's own count gives the release's rows back: llama.cpp builds a 2-head model from it."""
    tensors = sample_tensors()
    for name in [n for n in tensors if n.endswith("self_attn.q_proj.weight")]:
        # write_llama_gguf permutes by 4 heads: hand it what comes out as the rows permuted by 2
        tensors[name] = hugging_face_rows(meta_rows(tensors[name], 2), HEADS)
    folder = tmp_path / "relabelled"
    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", None, tensors, heads=2)
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    assert gguf.GGUFReader(str(folder / "model.gguf")).fields["llama.attention.head_count"].contents() == 2
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "modified")
    assert (
        "model.gguf: the GGUF's llama.attention.head_count = 2 where the release's config.json gives "
        "num_attention_heads = 4"
    ) in document["reasons"]


def test_a_changed_rotary_base_is_modified(run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    """The release's config.json gives no rope_theta (10000, the default of both loaders); 500000 is another model."""
    folder = gguf_download(release_dir, tmp_path / "base", None)
    write_llama_gguf(folder / "model.gguf", None, rope_base=500000.0)
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (1, "modified")
    assert (
        "model.gguf: the GGUF's llama.rope.freq_base = 500000.0 where the release's config.json gives "
        "rope_theta = 10000.0"
    ) in document["reasons"]
    write_llama_gguf(folder / "model.gguf", None, rope_base=10000.0)  # the default, written out: the same model
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"]) == (0, "equivalent")


def test_a_gguf_without_the_releases_config_is_not_green(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path
) -> None:
    """Without the release's config.json at hand, or its meaning in the manifest, its settings cannot be held
    against the key-values."""
    folder = gguf_download(release_dir, tmp_path / "alone", None)
    (folder / "config.json").unlink()
    code, document = verify(run_cli, folder, sketched)  # the manifest records what config.json means
    assert (code, document["verdict"]) == (0, "equivalent")
    assert any("config.json by model.gguf's key-values" in r for r in document["reasons"])
    older = without_meanings(sketched, tmp_path / "older.json")
    code, document = verify(run_cli, folder, older)
    # A doubt about what is present outranks the loss: `incomplete` would say everything present matches.
    assert (code, document["verdict"]) == (1, "undecided")
    assert document["reasons"][0] == "1 file missing: config.json"
    assert "the release's config.json beside the GGUF would decide" in document["reasons"][1]
    (folder / "config.json").write_text('{"num_attention_heads": 2}')
    for manifest in (sketched, older):
        code, document = verify(run_cli, folder, manifest)
        assert (code, document["verdict"]) == (1, "modified")
    assert any(r.startswith("config.json differs") for r in document["reasons"])


def test_the_root_travels_through_the_gguf_adapter(release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    """The GGUF read in the Hugging Face layout keeps the folder it is read from (a second look at a tensor
    that differs reads it again there)."""
    from manifests.reference import open_reference
    from provenance._hashing.scan import plan_against, scan
    from provenance._layouts import in_reference_layout

    reference = open_reference(sketched).manifest.checkpoint
    candidate = scan(gguf_download(release_dir, tmp_path / "q8", "Q8_0"), plan_against(reference), strict=False)
    adapted = in_reference_layout(candidate, reference)
    assert adapted.applied == ("gguf-to-hugging-face",)
    assert candidate.root is not None and adapted.candidate.root == candidate.root
