"""Regenerate the golden Meta-layout checkpoint. Needs torch (`pip install torch==2.13.0`); commit what it writes.

    python tests/golden/llama/make_meta_golden.py [OUT_DIR]

The sample model (provenance._sample.sample_tensors: 4 layers, 4 heads, 2 key-value heads) as Meta ships
LLaMA: the q and k rows in Meta's rotary order (the inverse of the Hugging Face conversion's permutation),
split over two tensor-parallel shards (wq, wk, wv, w1, w3 and output by rows; wo, w2 and the embedding by
columns; norms and rope.freqs replicated), written by torch.save as consolidated.00.pth and
consolidated.01.pth, with params.json. The .pth files are not byte-identical across runs (torch writes a
random serialization id); the tests compare tensors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from provenance._sample import sample_tensors

HEADS, KV_HEADS, LAYERS, SHARDS = 4, 2, 4, 2
NAMES = {
    "self_attn.q_proj.weight": ("attention.wq.weight", 0, HEADS),
    "self_attn.k_proj.weight": ("attention.wk.weight", 0, KV_HEADS),
    "self_attn.v_proj.weight": ("attention.wv.weight", 0, None),
    "self_attn.o_proj.weight": ("attention.wo.weight", 1, None),
    "mlp.gate_proj.weight": ("feed_forward.w1.weight", 0, None),
    "mlp.down_proj.weight": ("feed_forward.w2.weight", 1, None),
    "mlp.up_proj.weight": ("feed_forward.w3.weight", 0, None),
    "input_layernorm.weight": ("attention_norm.weight", None, None),
    "post_attention_layernorm.weight": ("ffn_norm.weight", None, None),
}


def to_meta_rotary(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Undo the Hugging Face conversion's permute(): w.view(h, 2, d/h/2, cols).transpose(1, 2)."""
    rows, cols = w.shape
    return w.view(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def meta_tensors() -> dict[str, tuple[torch.Tensor, int | None]]:
    hf = {k: torch.from_numpy(v.copy()) for k, v in sample_tensors().items()}
    out: dict[str, tuple[torch.Tensor, int | None]] = {
        "tok_embeddings.weight": (hf["model.embed_tokens.weight"], 1),
        "norm.weight": (hf["model.norm.weight"], None),
        "output.weight": (hf["lm_head.weight"], 0),
        "rope.freqs": (torch.arange(8, dtype=torch.float32) / 8, None),
    }
    for i in range(LAYERS):
        for hf_name, (meta_name, split, heads) in NAMES.items():
            w = hf[f"model.layers.{i}.{hf_name}"]
            out[f"layers.{i}.{meta_name}"] = (to_meta_rotary(w, heads) if heads else w, split)
    return out


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = meta_tensors()
    for shard in range(SHARDS):
        state = {
            name: (w if split is None else w.chunk(SHARDS, dim=split)[shard]).clone().contiguous()
            for name, (w, split) in tensors.items()
        }
        torch.save(state, folder / f"consolidated.{shard:02d}.pth")
    params = {
        "dim": 64,
        "multiple_of": 32,
        "n_heads": HEADS,
        "n_kv_heads": KV_HEADS,
        "n_layers": LAYERS,
        "norm_eps": 1e-5,
        "vocab_size": 256,
    }
    (folder / "params.json").write_text(json.dumps(params) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "meta")
