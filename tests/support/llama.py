"""The sample model in Llama's other layouts: Meta's consolidated shards (the golden files written by real
torch.save, tests/golden/llama/) and llama.cpp's GGUF (written by the gguf package's writer, names and q/k order
as llama.cpp converts them)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

from provenance._sample import sample_tensors

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "llama"
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


def write_llama_gguf(
    path: Path,
    quantize: str | None,
    tensors: dict[str, np.ndarray] | None = None,
    *,
    imatrix: bool = False,
    heads: int | str = HEADS,
    rope_base: float | None = None,
    key_values: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    """The sample model (or `tensors` of its shapes) as llama.cpp's converter writes it, matrices quantized
    (`imatrix`: with the keys llama-quantize records when given an importance matrix; `heads`: another
    head count, of any type, for hostile files)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    if imatrix:
        writer.add_string("quantize.imatrix.file", "imatrix.dat")
        writer.add_uint32("quantize.imatrix.entries_count", 28)
    writer.add_block_count(4)
    if isinstance(heads, str):
        writer.add_string("llama.attention.head_count", heads)
    elif heads < 0:
        writer.add_int32("llama.attention.head_count", heads)
    else:
        writer.add_head_count(heads)
    writer.add_head_count_kv(KV_HEADS)
    if rope_base is not None:
        writer.add_rope_freq_base(rope_base)
    if key_values is not None:  # more of what the converter writes (the tokenizer's)
        key_values(writer)
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


def gguf_download(
    release_dir: Path,
    folder: Path,
    quantize: str | None,
    tensors: dict[str, np.ndarray] | None = None,
    *,
    imatrix: bool = False,
) -> Path:
    """A download of the release as llama.cpp users get it: the weights in one GGUF, the release's config and
    tokenizer beside it."""
    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", quantize, tensors, imatrix=imatrix)
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release_dir / name).exists():
            shutil.copyfile(release_dir / name, folder / name)
    return folder
