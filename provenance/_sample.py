"""A small, deterministic Llama-shaped release: the bundled sample data for the demo (and the tests).

Also the damage the demo shows, a flipped bit, applied with the same reader the verifier uses. Writers only
the tests need live in tests/support/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from provenance._formats.safetensors import SafetensorsReader

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "torch_dtype": "float16",
}


def sample_tensors(seed: int = 0, layers: int = 4, hidden: int = 64, vocab: int = 256) -> dict[str, np.ndarray]:
    """Llama-like weights (grouped-query attention), float16 matrices and float32 norms."""
    rng = np.random.default_rng(seed)
    kv = hidden // 2

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float16)

    tensors: dict[str, np.ndarray] = {"model.embed_tokens.weight": mat(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors[p + "self_attn.q_proj.weight"] = mat(hidden, hidden)
        tensors[p + "self_attn.k_proj.weight"] = mat(kv, hidden)
        tensors[p + "self_attn.v_proj.weight"] = mat(kv, hidden)
        tensors[p + "self_attn.o_proj.weight"] = mat(hidden, hidden)
        tensors[p + "mlp.gate_proj.weight"] = mat(2 * hidden, hidden)
        tensors[p + "mlp.up_proj.weight"] = mat(2 * hidden, hidden)
        tensors[p + "mlp.down_proj.weight"] = mat(hidden, 2 * hidden)
        tensors[p + "input_layernorm.weight"] = (1 + rng.standard_normal(hidden) * 0.01).astype(np.float32)
        tensors[p + "post_attention_layernorm.weight"] = (1 + rng.standard_normal(hidden) * 0.01).astype(np.float32)
    tensors["model.norm.weight"] = (1 + rng.standard_normal(hidden) * 0.01).astype(np.float32)
    tensors["lm_head.weight"] = mat(vocab, hidden)
    return tensors


def write_sharded(
    folder: Path,
    tensors: dict[str, np.ndarray],
    shards: int,
    *,
    prefix: str = "model",
    metadata: dict[str, str] | None = None,
    order: list[str] | None = None,
) -> list[Path]:
    """Write tensors as `shards` safetensors files plus a `*.safetensors.index.json`, as hubs lay them out."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    names = order or list(tensors)
    per = -(-len(names) // shards)
    written: list[Path] = []
    weight_map: dict[str, str] = {}
    for k in range(shards):
        chunk = names[k * per : (k + 1) * per]
        filename = f"{prefix}-{k + 1:05d}-of-{shards:05d}.safetensors" if shards > 1 else f"{prefix}.safetensors"
        save_file(
            {n: tensors[n] for n in chunk},
            str(folder / filename),
            metadata=metadata if metadata is not None else {"format": "pt"},
        )
        weight_map.update({n: filename for n in chunk})
        written.append(folder / filename)
    if shards > 1:
        total = sum(int(t.nbytes) for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / f"{prefix}.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return written


def build_sample_release(folder: Path, *, shards: int = 3, seed: int = 0) -> Path:
    """The sample release: weights in `shards` shards, their index, a config and a tokenizer file."""
    write_sharded(folder, sample_tensors(seed), shards)
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    vocab = {f"tok{i}": i for i in range(256)}
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab}}) + "\n")
    return folder


def _tensor_range(path: Path, name: str) -> tuple[int, int]:
    with open(path, "rb") as stream:
        layout = SafetensorsReader().read_layout(stream, os.fstat(stream.fileno()).st_size, path.name)
    for tensor in layout.tensors:
        if tensor.name == name:
            return tensor.start, tensor.end
    raise KeyError(f"{name} is not in {path}")


def flip_bit(path: Path, tensor: str, *, byte: int = 0, bit: int = 0) -> None:
    """Flip one bit of one tensor in place, as silent corruption or tampering would."""
    start, _ = _tensor_range(path, tensor)
    with open(path, "r+b") as stream:
        stream.seek(start + byte)
        value = stream.read(1)[0]
        stream.seek(start + byte)
        stream.write(bytes([value ^ (1 << bit)]))
