"""Exact quantization digests (`fingerprint --quant-digests`): the manifest records the digest of the blocks
the reference quantizer (the gguf package's, which llama.cpp's `convert_hf_to_gguf.py` uses) makes of each
tensor, and a GGUF whose blocks are those reads `converted` with proof `exact`, with or without sketches; one
block altered reads `modified`, naming the tensor. On GGUFs written by the gguf package's own writer, and on
one written by llama.cpp's real converter (skipped, with the reason, where it is not at hand)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import ml_dtypes
import numpy as np
import pytest
from blake3 import blake3

from manifests.errors import ManifestError
from manifests.model import EXTENSION_KEY, manifest_from_statement
from provenance._hashing.quants import QuantBuilder, quant_types
from provenance.errors import ProvenanceError
from tests.conftest import REAL_TOKENIZER, CliResult
from tests.conftest import verify_json as verify
from tests.support.llama import gguf_download, meta_rows, write_llama_gguf

Run = Callable[..., CliResult]
KINDS = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
PLAIN: tuple[str, ...] = ("--no-sketches",)  # fingerprint's flags for a manifest without sketches
NUMPY = {"F16": np.float16, "BF16": ml_dtypes.bfloat16, "F32": np.float32}


def reference_blocks(values: np.ndarray, kind: str) -> str:
    """The digest of what the converter writes: the values as float32, quantized by the gguf package."""
    blocks = gguf.quants.quantize(values.astype(np.float32), gguf.GGMLQuantizationType[kind])
    return blake3(np.ascontiguousarray(blocks).tobytes()).hexdigest()


@pytest.mark.parametrize("dtype", sorted(NUMPY))
def test_the_streamed_digest_is_the_reference_quantizers_blocks(dtype: str) -> None:
    """Fed in pieces of any length (blocks and elements cut in the middle), the digest is that of the
    blocks `gguf.quants.quantize` makes of the whole tensor, for every legacy type."""
    rng = np.random.default_rng(3)
    values = (rng.standard_t(3, (48, 160)) * 0.02).astype(NUMPY[dtype])
    values[5, :32] = 0.0  # a block of zeros: no scale
    raw = values.tobytes()
    builder = QuantBuilder(dtype, frozenset(KINDS))
    cuts = [0, 1, 7, 64, 1001, 4096, 9000, len(raw)]
    for start, end in itertools.pairwise(cuts):
        builder.update(memoryview(raw)[start:end])
    assert builder.finish() == {kind: reference_blocks(values, kind) for kind in KINDS}


def test_only_deterministic_quantizers_are_accepted() -> None:
    assert quant_types("q8_0, Q4_0") == frozenset({"Q8_0", "Q4_0"})
    assert quant_types(()) == frozenset()
    for wrong in ("Q4_K", "Q8_0,IQ4_XS", "F16", ""):
        with pytest.raises(ProvenanceError) as caught:
            quant_types(wrong)
        assert "\n" not in str(caught.value)


def test_the_cli_refuses_another_type_in_one_line(run_cli: Run, release_dir: Path, tmp_path: Path) -> None:
    result = run_cli("fingerprint", release_dir, "--quant-digests", "Q4_K", "-o", tmp_path / "m.json")
    assert result.code == 2
    assert result.err.strip() == (
        "error: --quant-digests Q4_K: only the legacy types have a deterministic reference quantizer (K-quants and "
        "i-quants search their scales); choose from Q4_0,Q4_1,Q5_0,Q5_1,Q8_0"
    )
    assert not (tmp_path / "m.json").exists()


def quant_manifest(run_cli: Run, release: Path, path: Path, kinds: str, *extra: str) -> Path:
    result = run_cli("fingerprint", release, "--quant-digests", kinds, "-o", path, "-q", *extra)
    assert result.code == 0, result.err
    return path


@pytest.fixture(scope="module")
def all_kinds(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample release's manifest with the digests of every legacy type, and no sketches."""
    import provenance
    from manifests import build_manifest, write_atomic
    from manifests.io import dump_json

    path = tmp_path_factory.mktemp("quants") / "release.json"
    checkpoint = provenance.fingerprint(release_dir, sketches=False, quant_digests=KINDS)
    write_atomic(path, dump_json(build_manifest(checkpoint, "sample-release").statement()))
    return path


def tensor_entries(manifest: Path) -> list[dict[str, Any]]:
    document = json.loads(manifest.read_text())
    files = document["predicate"][EXTENSION_KEY]["files"]
    return [t for f in files for t in f.get("tensors", [])]


def test_the_manifest_records_a_digest_per_type_of_each_quantizable_tensor(all_kinds: Path) -> None:
    """Matrices whose rows are whole blocks get one digest per type; vectors too (a writer may quantize
    them); the record validates against the schema and reads back."""
    import jsonschema

    entries = tensor_entries(all_kinds)
    assert entries and all(sorted(t["quants"]) == list(KINDS) for t in entries if t["shape"][-1] % 32 == 0)
    assert all("quants" not in t and "sketch" not in t for t in entries if t["shape"][-1] % 32)
    schema = json.loads((Path(__file__).parents[2] / "manifests" / "schema.json").read_text())
    jsonschema.validate(json.loads(all_kinds.read_text()), schema)
    read = manifest_from_statement(json.loads(all_kinds.read_text())).checkpoint
    assert any(t.quants == {k: t.quants[k] for k in KINDS} for f in read.files for t in f.tensors if t.quants)


def test_a_manifest_naming_another_type_is_refused(all_kinds: Path, tmp_path: Path) -> None:
    document = json.loads(all_kinds.read_text())
    tensor = next(t for f in document["predicate"][EXTENSION_KEY]["files"] for t in f.get("tensors", []))
    tensor["quants"] = {"Q4_K": tensor["blake3"]}
    with pytest.raises(ManifestError, match="quants may name Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 only"):
        manifest_from_statement(document)


@pytest.mark.parametrize("kind", KINDS)
def test_a_gguf_of_the_reference_quantizers_blocks_is_converted_exactly(
    run_cli: Run, release_dir: Path, all_kinds: Path, tmp_path: Path, kind: str
) -> None:
    """Written by the gguf package's writer, q and k rows in llama.cpp's order: every matrix is proven by
    its digest, without a sketch in the manifest."""
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / kind, kind), all_kinds)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    quantized = [t for t in document["tensors"] if t["status"] == "quantized"]
    assert len(quantized) == 30 and {t["candidate_dtype"] for t in quantized} == {kind}
    assert all(t["proof"] == "exact" and "proven by the reference quantizer's digest" in t["detail"] for t in quantized)
    assert {t["status"] for t in document["tensors"]} == {"quantized", "match"}


def test_an_importance_matrix_quantization_is_left_to_the_samples(
    run_cli: Run, release_dir: Path, all_kinds: Path, tmp_path: Path
) -> None:
    """Blocks that an importance matrix chose (the file says so) are not the reference quantizer's by
    design: the digest neither proves nor condemns them, and without sketches nothing decides (`undecided`);
    the reference quantizer's own blocks in such a file are still proven."""
    from tests.layouts.test_gguf_names import tuned

    folder = gguf_download(release_dir, tmp_path / "q4", "Q4_0", tuned(0.01), imatrix=True)
    code, document = verify(run_cli, folder, all_kinds)
    assert (code, document["verdict"]) == (1, "undecided")
    layer_1 = [t for t in document["tensors"] if ".layers.1." in t["name"] and t["shape"][-1] % 32 == 0]
    assert layer_1 and all(
        t["status"] == "modified" and t.get("proven") is False for t in layer_1 if len(t["shape"]) > 1
    )
    exact = [t for t in document["tensors"] if t["status"] == "quantized"]
    assert exact and all(".layers.1." not in t["name"] and t["proof"] == "exact" for t in exact)


def test_a_q8_0_block_changed_in_one_place_is_modified(
    run_cli: Run, release_dir: Path, all_kinds: Path, tmp_path: Path
) -> None:
    """One level of one block moved by one step: between the samples, the grid check would pass it; the
    digest does not."""
    folder = gguf_download(release_dir, tmp_path / "q8", "Q8_0")
    path = folder / "model.gguf"
    reader = gguf.GGUFReader(str(path))
    tensor = next(t for t in reader.tensors if t.name == "blk.2.ffn_gate.weight")
    data = bytearray(path.read_bytes())
    at = int(tensor.data_offset) + 34 * 5 + 2 + 17  # block 5, level 17
    data[at] = (data[at] + 1) % 256
    path.write_bytes(bytes(data))
    code, document = verify(run_cli, folder, all_kinds)
    assert (code, document["verdict"]) == (1, "modified")
    changed = [t for t in document["tensors"] if t["status"] == "modified"]
    assert [t["name"] for t in changed] == ["model.layers.2.mlp.gate_proj.weight"]
    assert changed[0]["detail"].startswith("Q8_0 blocks differ from those the reference quantizer")


def test_q_and_k_rows_left_in_the_release_order_do_not_match(
    run_cli: Run, release_dir: Path, all_kinds: Path, tmp_path: Path
) -> None:
    """llama.cpp's q and k rows are in Meta's rotary order; a GGUF that kept the Hugging Face order loads
    other attention weights, and its blocks, put back in the Hugging Face order, are not the release's."""
    from provenance._sample import sample_tensors
    from tests.support.llama import HEADS, KV_HEADS

    def hugging_face_rows(w: np.ndarray, heads: int) -> np.ndarray:  # what write_llama_gguf's meta_rows undoes
        rows, cols = w.shape
        return w.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)

    tensors = {
        k: hugging_face_rows(v, HEADS if "q_proj" in k else KV_HEADS) if "q_proj" in k or "k_proj" in k else v
        for k, v in sample_tensors().items()
    }
    assert np.array_equal(
        meta_rows(tensors["model.layers.0.self_attn.q_proj.weight"], HEADS),
        sample_tensors()["model.layers.0.self_attn.q_proj.weight"],
    )
    folder = tmp_path / "unpermuted"
    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", "Q8_0", tensors)
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    code, document = verify(run_cli, folder, all_kinds)
    assert (code, document["verdict"]) == (1, "modified")
    changed = sorted(t["name"] for t in document["tensors"] if t["status"] == "modified")
    assert changed == sorted(f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(4) for p in ("q", "k"))


# llama.cpp's real converter -------------------------------------------------------------------------------------


def converter() -> Path | None:
    """convert_hf_to_gguf.py: in PROVENANCE_LLAMA_CPP (a llama.cpp checkout or the fetched copy's folder),
    else where tests/support/fetch_tools unpacks it."""
    configured = os.environ.get("PROVENANCE_LLAMA_CPP")
    if configured:
        return Path(configured) / "convert_hf_to_gguf.py"
    try:
        from tests.support.fetch_tools import LLAMA_CPP, tools_folder
    except ImportError:
        return None
    return Path(tools_folder()) / LLAMA_CPP / "convert_hf_to_gguf.py"


def _unavailable() -> str | None:
    script = converter()
    if script is None or not script.is_file():
        return f"llama.cpp's convert_hf_to_gguf.py is not at hand ({script}): set PROVENANCE_LLAMA_CPP to its folder"
    for module in ("torch", "transformers", "sentencepiece"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed: the real converter and the release's writer need it"
    if not REAL_TOKENIZER.is_file():
        return f"{REAL_TOKENIZER} is absent: the converter needs LLaMA's tokenizer.model"
    return None


SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def _write_release(folder: Path) -> None:
    """A tiny LlamaForCausalLM in float16 by transformers' save_pretrained, norms away from all ones."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.copy_(1 + 0.1 * torch.randn_like(parameter))
    model.to(torch.float16).save_pretrained(folder)
    LlamaTokenizer(vocab_file=str(REAL_TOKENIZER)).save_pretrained(folder)
    if not (folder / "tokenizer.model").is_file():
        shutil.copyfile(REAL_TOKENIZER, folder / "tokenizer.model")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The release and llama.cpp's `--outtype q8_0` GGUF of it, the release's side files beside the GGUF."""
    why = _unavailable()
    if why is not None:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("real-q8")
    release, gguf_folder = base / "release", base / "q8_0"
    _write_release(release)
    gguf_folder.mkdir()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    script = converter()
    assert script is not None
    command = [sys.executable, str(script), str(release), "--outtype", "q8_0", "--outfile", str(gguf_folder / "x.gguf")]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in SIDE_FILES:
        shutil.copyfile(release / name, gguf_folder / name)
    return release, gguf_folder


def _statuses(document: dict[str, Any]) -> dict[tuple[str, str | None], int]:
    counts: dict[tuple[str, str | None], int] = {}
    for t in document["tensors"]:
        counts[(t["status"], t["proof"])] = counts.get((t["status"], t["proof"]), 0) + 1
    return counts


def test_the_real_converters_q8_0_is_converted_exactly(
    run_cli: Run, converted: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every matrix (embeddings and output included: the converter quantizes them too) is the reference
    quantizer's blocks, q and k through the row permutation; the F32 norms round back to the release's."""
    release, folder = converted
    manifest = quant_manifest(run_cli, release, tmp_path / "m.json", "Q8_0", "--sketches")
    code, document = verify(run_cli, folder, manifest)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")
    assert _statuses(document) == {("quantized", "exact"): 16, ("cast", "exact"): 5}


def test_the_real_converters_q8_0_without_sketches(run_cli: Run, converted: tuple[Path, Path], tmp_path: Path) -> None:
    """The digests need no sketch: every Q8_0 matrix is proven exact by them alone."""
    release, folder = converted
    manifest = quant_manifest(run_cli, release, tmp_path / "m.json", "Q8_0", *PLAIN)
    _, document = verify(run_cli, folder, manifest)
    quantized = [t for t in document["tensors"] if t["candidate_dtype"] == "Q8_0"]
    assert len(quantized) == 16 and {(t["status"], t["proof"]) for t in quantized} == {("quantized", "exact")}


def test_the_real_converters_q8_0_against_a_manifest_without_quant_digests(
    run_cli: Run, converted: tuple[Path, Path], tmp_path: Path
) -> None:
    """What the sampled checks give, as before: the grid check with sketches, undecided without."""
    release, folder = converted
    sketched = tmp_path / "sketched.json"
    assert run_cli("fingerprint", release, "--sketches", "-o", sketched, "-q").code == 0
    code, document = verify(run_cli, folder, sketched)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "sampled")
    assert _statuses(document) == {("quantized", "sampled"): 16, ("cast", "exact"): 5}
    plain = tmp_path / "plain.json"
    assert run_cli("fingerprint", release, "-o", plain, "-q", *PLAIN).code == 0
    code, document = verify(run_cli, folder, plain)
    assert (code, document["verdict"]) == (1, "undecided")


@pytest.mark.parametrize(("where", "offset"), [("scale", 0), ("level", 2 + 9)])
def test_one_block_of_the_real_converters_q8_0_altered_is_modified(
    run_cli: Run, converted: tuple[Path, Path], tmp_path: Path, where: str, offset: int
) -> None:
    release, original = converted
    manifest = quant_manifest(run_cli, release, tmp_path / "m.json", "Q8_0", "--sketches")
    folder = tmp_path / "altered"
    shutil.copytree(original, folder)
    path = folder / "x.gguf"
    tensor = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == "blk.1.attn_q.weight")
    data = bytearray(path.read_bytes())
    at = int(tensor.data_offset) + 34 * 40 + offset  # block 40 (row 20), its scale's low byte or one level
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    code, document = verify(run_cli, folder, manifest)
    assert (code, document["verdict"]) == (1, "modified")
    changed = [t["name"] for t in document["tensors"] if t["status"] == "modified"]
    assert changed == ["model.layers.1.self_attn.q_proj.weight"]
