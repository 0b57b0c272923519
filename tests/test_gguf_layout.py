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


def write_llama_gguf(path: Path, quantize: str | None, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """The sample model (or `tensors` of its shapes) as llama.cpp's converter writes it, matrices quantized."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(4)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    for name, array in (sample_tensors() if tensors is None else tensors).items():
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


def gguf_download(
    release_dir: Path, folder: Path, quantize: str | None, tensors: dict[str, np.ndarray] | None = None
) -> Path:
    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", quantize, tensors)
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    return folder


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


def test_a_fine_tune_shows_through_an_8_bit_quantization(
    run_cli: Run, release_dir: Path, sketched: Path, tmp_path: Path
) -> None:
    """5% noise on layer 1, then Q8_0: the quantization's error (0.5%) cannot hide the change."""
    rng = np.random.default_rng(4)
    tuned = {
        k: (v.astype(np.float32) * (1 + 0.05 * rng.standard_normal(v.shape))).astype(v.dtype)
        if ".layers.1." in k and v.ndim == 2
        else v
        for k, v in sample_tensors().items()
    }
    code, document = verify(run_cli, gguf_download(release_dir, tmp_path / "tuned", "Q8_0", tuned), sketched)
    assert (code, document["verdict"]) == (1, "modified")
    changed = sorted(t["name"] for t in document["tensors"] if t["status"] == "modified")
    assert changed == sorted(k for k, v in tuned.items() if ".layers.1." in k and v.ndim == 2)
    assert {t["status"] for t in document["tensors"] if t["name"] not in changed} == {"quantized", "match"}
