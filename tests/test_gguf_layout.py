"""llama.cpp GGUF files (written by the gguf package's writer, names and q/k order as llama.cpp converts
them) against the Hugging Face release: F16 is the same numbers, Q8_0 a quantization of them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from provenance.sample import sample_tensors
from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify

Run = Callable[..., CliResult]
HEADS, KV_HEADS = 4, 2
LLAMA_CPP = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def meta_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert script puts q and k rows back in Meta's rotary order (the inverse permutation)."""
    rows, cols = w.shape
    return w.reshape(heads, 2, rows // heads // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def write_llama_gguf(path: Path, quantize: str | None) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(4)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    for name, array in sample_tensors().items():
        if name == "model.embed_tokens.weight":
            target = "token_embd.weight"
        elif name == "model.norm.weight":
            target = "output_norm.weight"
        elif name == "lm_head.weight":
            target = "output.weight"
        else:
            layer, rest = name.removeprefix("model.layers.").split(".", 1)
            target = f"blk.{layer}.{LLAMA_CPP[rest]}"
            if rest.startswith("self_attn.q_proj"):
                array = meta_rows(array, HEADS)
            elif rest.startswith("self_attn.k_proj"):
                array = meta_rows(array, KV_HEADS)
        if quantize and array.ndim == 2:
            kind = gguf.GGMLQuantizationType[quantize]
            writer.add_tensor(target, gguf.quants.quantize(array.astype(np.float32), kind), raw_dtype=kind)
        else:
            writer.add_tensor(target, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def sketched(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("gguf") / "release.json", sketches=True)


def gguf_download(release_dir: Path, folder: Path, quantize: str | None) -> Path:
    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", quantize)
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    return folder


def test_f16_gguf_is_equivalent(run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path) -> None:
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / "f16", None), sketched)
    assert (code, document["verdict"]) == (0, "equivalent")
    assert {t["status"] for t in document["tensors"]} == {"match"}
    assert any(r.startswith("read in llama.cpp's GGUF layout") for r in document["reasons"])


def test_q8_0_gguf_is_converted_by_quantization(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path
) -> None:
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / "q8", "Q8_0"), sketched)
    assert (code, document["verdict"]) == (1, "converted")
    quantized = [t for t in document["tensors"] if t["status"] == "quantized"]
    assert len(quantized) == 30 and {t["candidate_dtype"] for t in quantized} == {"Q8_0"}
    assert all(t["change"] < 0.01 and t["correlation"] > 0.999 for t in quantized)
    assert {t["status"] for t in document["tensors"]} == {"quantized", "match"}
