"""Meta's consolidated LLaMA checkpoints read as the Hugging Face Llama layout.

Meta ships `consolidated.NN.pth` tensor-parallel shards and `params.json`; the Hugging Face layout has one
tensor per weight under other names, with the rows of q and k permuted for its rotary embedding (grouped
query attention permutes k by the key-value heads). Column-parallel weights (wq, wk, wv, w1, w3, output)
are split along rows, row-parallel ones (wo, w2) and the embedding along columns; norms are replicated
and must agree across shards. Each Hugging Face tensor is rebuilt from the shards' bytes (merged,
permuted, no arithmetic) and digested, so the same numbers give the same digest: `equivalent`.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import re
from pathlib import Path
from typing import Any

from blake3 import blake3

from provenance.dtypes import DTYPE_BITS
from provenance.fingerprint import Checkpoint, FileFingerprint, Role, TensorFingerprint

PARAMS = "params.json"
_SHARD = re.compile(r"(?:.*/)?consolidated\.(\d+)\.pth")
PARAMS_CAP = 1 << 20

# Hugging Face name, Meta name, tensor-parallel split dimension (None: replicated), rotary permutation
_GLOBAL = [
    ("model.embed_tokens.weight", "tok_embeddings.weight", 1, None),
    ("model.norm.weight", "norm.weight", None, None),
    ("lm_head.weight", "output.weight", 0, None),
]
_PER_LAYER = [
    ("self_attn.q_proj.weight", "attention.wq.weight", 0, "q"),
    ("self_attn.k_proj.weight", "attention.wk.weight", 0, "k"),
    ("self_attn.v_proj.weight", "attention.wv.weight", 0, None),
    ("self_attn.o_proj.weight", "attention.wo.weight", 1, None),
    ("mlp.gate_proj.weight", "feed_forward.w1.weight", 0, None),
    ("mlp.down_proj.weight", "feed_forward.w2.weight", 1, None),
    ("mlp.up_proj.weight", "feed_forward.w3.weight", 0, None),
    ("input_layernorm.weight", "attention_norm.weight", None, None),
    ("post_attention_layernorm.weight", "ffn_norm.weight", None, None),
]
MERGED = "consolidated.*.pth (merged, Hugging Face names)"


NOTE = (
    "read in Meta's layout: the consolidated shards merged and the q and k rows permuted into the Hugging Face "
    "layout; params.json stands in for config.json (the tensors' shapes and digests check it)"
)


def is_meta_layout(candidate: Checkpoint) -> bool:
    paths = {f.path for f in candidate.files}
    return PARAMS in paths and any(_SHARD.fullmatch(p) for p in paths)


def wants_hugging_face(reference: Checkpoint) -> bool:
    return any(t.name.startswith("model.layers.") for f in reference.files for t in f.tensors)


def meta_as_hugging_face(root: Path, candidate: Checkpoint, reference: Checkpoint) -> Checkpoint:
    """The candidate with its Meta shards replaced by one file of Hugging Face tensors; unchanged when it
    is not in Meta's layout or the reference is not in Hugging Face's."""
    if not (is_meta_layout(candidate) and wants_hugging_face(reference)):
        return candidate
    params = _params(root / PARAMS)
    shards = sorted((f for f in candidate.files if _SHARD.fullmatch(f.path)), key=lambda f: f.path)
    if any(f.error is not None or not f.tensors for f in shards):
        return candidate  # a damaged shard: compared as it is, and reported corrupt
    heads = int(params["n_heads"])
    kv_heads = int(params.get("n_kv_heads") or heads)
    layers = int(params["n_layers"])
    plan = list(_GLOBAL) + [
        (f"model.layers.{i}.{hf}", f"layers.{i}.{meta}", split, rope)
        for i in range(layers)
        for hf, meta, split, rope in _PER_LAYER
    ]
    tables = [{t.name: t for t in f.tensors} for f in shards]
    merged: list[TensorFingerprint] = []
    used: set[str] = set()
    for hf_name, meta_name, split, rope in plan:
        found = [table.get(meta_name) for table in tables]
        pieces = [p for p in found if p is not None and not p.view]
        if len(pieces) != len(found):
            continue
        used.add(meta_name)
        merged.append(_merge(root, shards, hf_name, pieces, split, heads if rope == "q" else kv_heads, rope))
    leftovers = [t for table in tables for name, t in table.items() if name not in used and name != "rope.freqs"]
    size = sum(f.size or 0 for f in shards)
    synthetic = FileFingerprint(MERGED, size, Role.WEIGHTS, format="pytorch", tensors=tuple(merged + leftovers))
    others = [f for f in candidate.files if not _SHARD.fullmatch(f.path) and f.path != PARAMS]
    stand_ins = [
        dataclasses.replace(f, path=f.path) for f in reference.files if f.path == "config.json" and f.role is Role.OTHER
    ]
    return dataclasses.replace(candidate, files=tuple([*others, synthetic, *stand_ins]))


def _params(path: Path) -> dict[str, Any]:
    from provenance.errors import UnreadableInput

    try:
        if path.stat().st_size > PARAMS_CAP:
            raise UnreadableInput(f"{path} is larger than a params.json can be")
        params = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnreadableInput(f"{path} is not Meta's params.json ({exc}); the layout cannot be mapped") from None
    if not isinstance(params, dict) or not all(isinstance(params.get(k), int) for k in ("n_heads", "n_layers", "dim")):
        raise UnreadableInput(f"{path} lacks n_heads, n_layers or dim; the layout cannot be mapped")
    return params


def _merge(
    root: Path,
    shards: list[FileFingerprint],
    name: str,
    pieces: list[TensorFingerprint],
    split: int | None,
    heads: int,
    rope: str | None,
) -> TensorFingerprint:
    import numpy as np

    first = pieces[0]
    if split is None:  # replicated: every shard must hold the same bytes
        if len({p.blake3 for p in pieces}) != 1:  # one copy was changed: no digest of the release can match
            mixed = blake3("|".join(str(p.blake3) for p in pieces).encode()).hexdigest()
            return TensorFingerprint(name, first.dtype, first.shape, 0, 0, mixed, True)
        return TensorFingerprint(name, first.dtype, first.shape, 0, 0, first.blake3, True)
    arrays = [elements(root / shard.path, piece) for shard, piece in zip(shards, pieces, strict=True)]
    whole = np.concatenate(arrays, axis=split)
    if rope is not None:
        whole = hugging_face_rows(whole, heads)
    digest = blake3(np.ascontiguousarray(whole).tobytes()).hexdigest()
    return TensorFingerprint(name, first.dtype, tuple(int(d) for d in whole.shape), 0, 0, digest, True)


def tensor_bytes(path: Path, tensor: TensorFingerprint) -> bytes:
    """A plain tensor's bytes, file[start:end], through a read-only map of just that range."""
    with open(path, "rb", buffering=0) as stream:
        aligned = tensor.start - tensor.start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(stream.fileno(), tensor.end - aligned, access=mmap.ACCESS_READ, offset=aligned) as mapped:
            return bytes(mapped[tensor.start - aligned : tensor.end - aligned])


def elements(path: Path, tensor: TensorFingerprint) -> Any:
    """A plain tensor's elements as unsigned integers of its width, in its shape: rearranged, never computed."""
    import numpy as np

    unit = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[DTYPE_BITS[tensor.dtype]]
    return np.frombuffer(tensor_bytes(path, tensor), dtype=unit).reshape(tensor.shape)


def hugging_face_rows(values: Any, heads: int) -> Any:
    """Rows of q or k from Meta's rotary order to the Hugging Face one (the conversion script's permute)."""
    rows, cols = values.shape
    return values.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)
