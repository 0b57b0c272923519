"""Meta's consolidated LLaMA checkpoints and the Hugging Face Llama layout, each read as the other.

Meta ships `consolidated.NN.pth` tensor-parallel shards and `params.json`; the Hugging Face layout has one
tensor per weight under other names, with the rows of q and k permuted for its rotary embedding (grouped
query attention permutes k by the key-value heads). Column-parallel weights (wq, wk, wv, w1, w3, output)
are split along rows, row-parallel ones (wo, w2) and the embedding along columns; norms are replicated
and must agree across shards. Tensors are rebuilt from the candidate's bytes (merged or split, permuted,
no arithmetic) and digested, so the same numbers give the same digest: `equivalent`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from blake3 import blake3

from provenance.errors import UnreadableInput
from provenance.fingerprint import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance.layouts.interface import Adapted
from provenance.layouts.tensors import elements, hugging_face_rows, meta_rows, rebuilt

PARAMS = "params.json"
CONFIG = "config.json"
ROPE_FREQS = "rope.freqs"
CHECKLIST = "checklist.chk"  # md5 of each of Meta's files: the layout's own record, like a shard index
_SHARD = re.compile(r"(?:.*/)?consolidated\.(\d+)\.pth")
JSON_CAP = 1 << 20

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
_LAYER = re.compile(r"layers\.(\d+)\.(.+)")
MERGED = "consolidated.*.pth (merged, Hugging Face names)"
SPLIT = " (rebuilt from the Hugging Face layout)"

NOTE = (
    "read in Meta's layout: the consolidated shards merged and the q and k rows permuted into the Hugging Face "
    "layout; params.json stands in for config.json (the tensors' shapes and digests check it)"
)
REVERSE_NOTE = (
    "read in the Hugging Face layout: each tensor split into Meta's tensor-parallel shards and the q and k rows "
    "permuted into Meta's order; config.json stands in for params.json (the tensors' shapes and digests check "
    "it); rope.freqs, computed from params.json and absent from the Hugging Face layout, and checklist.chk, "
    "md5 sums of Meta's files, are not compared"
)


def is_meta_layout(checkpoint: Checkpoint) -> bool:
    paths = {f.path for f in checkpoint.files}
    return PARAMS in paths and any(_SHARD.fullmatch(p) for p in paths)


def wants_hugging_face(checkpoint: Checkpoint) -> bool:
    """Whether a checkpoint's tensors carry Hugging Face Llama names."""
    return any(t.name.startswith("model.layers.") for f in checkpoint.files for t in f.tensors)


def _meta_plan(layers: int) -> list[tuple[str, str, int | None, str | None]]:
    return list(_GLOBAL) + [
        (f"model.layers.{i}.{hf}", f"layers.{i}.{meta}", split, rope)
        for i in range(layers)
        for hf, meta, split, rope in _PER_LAYER
    ]


def _stand_ins(reference: Checkpoint, name: str) -> list[FileFingerprint]:
    return [f for f in reference.files if f.path == name and f.role is Role.OTHER]


class MetaToHuggingFace:
    """A download in Meta's layout checked against a manifest in the Hugging Face layout."""

    name = "meta-to-hugging-face"

    def adapt(self, root: Path, candidate: Checkpoint, reference: Checkpoint) -> Adapted | None:
        if not (is_meta_layout(candidate) and wants_hugging_face(reference)):
            return None
        params = _read_json(root / PARAMS, ("n_heads", "n_layers", "dim"), "Meta's params.json")
        shards = sorted((f for f in candidate.files if _SHARD.fullmatch(f.path)), key=lambda f: f.path)
        if any(f.error is not None or not f.tensors for f in shards):
            return None  # a damaged shard: compared as it is, and reported corrupt
        heads = int(params["n_heads"])
        kv_heads = int(params.get("n_kv_heads") or heads)
        wanted = {t.name: t for f in reference.files for t in f.tensors}
        tables = [{t.name: t for t in f.tensors} for f in shards]
        merged: list[TensorFingerprint] = []
        used: set[str] = set()
        replicated: list[tuple[str, str, list[TensorFingerprint]]] = []
        for hf_name, meta_name, split, rope in _meta_plan(int(params["n_layers"])):
            found = [table.get(meta_name) for table in tables]
            pieces = [p for p in found if p is not None and not p.view]
            if len(pieces) != len(found):
                continue
            used.add(meta_name)
            if split is None:
                replicated.append((hf_name, meta_name, pieces))
            group = heads if rope == "q" else kv_heads
            merged.append(_merge(root, shards, hf_name, pieces, split, group, rope, wanted.get(hf_name)))
        leftovers = [t for table in tables for name, t in table.items() if name not in used and name != ROPE_FREQS]
        size = sum(f.size or 0 for f in shards)
        synthetic = FileFingerprint(MERGED, size, Role.WEIGHTS, format="pytorch", tensors=tuple(merged + leftovers))
        others = [f for f in candidate.files if not _SHARD.fullmatch(f.path) and f.path != PARAMS]
        files = (*others, synthetic, *_stand_ins(reference, CONFIG))
        disagreeing = [_disagreement(shards, name, pieces) for _, name, pieces in replicated]
        note = "; ".join([NOTE, *(d for d in disagreeing if d)])
        return Adapted(dataclasses.replace(candidate, files=files), reference, note)


class HuggingFaceToMeta:
    """A download in the Hugging Face layout checked against a manifest of Meta's consolidated shards."""

    name = "hugging-face-to-meta"

    def adapt(self, root: Path, candidate: Checkpoint, reference: Checkpoint) -> Adapted | None:
        if is_meta_layout(candidate) or not is_meta_layout(reference) or not wants_hugging_face(candidate):
            return None
        ref_shards = sorted((f for f in reference.files if _SHARD.fullmatch(f.path)), key=lambda f: f.path)
        if not all(f.has_layout for f in ref_shards) or CONFIG not in {f.path for f in candidate.files}:
            return None  # a checksum list cannot be held tensor by tensor; without config.json no head counts
        config = _read_json(root / CONFIG, ("num_attention_heads", "num_hidden_layers"), "a Hugging Face config.json")
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        located = {t.name: (f, t) for f in candidate.files if f.error is None for t in f.tensors if not t.view}
        ref_tables = [{t.name: t for t in f.tensors} for f in ref_shards]
        pieces: list[list[TensorFingerprint]] = [[] for _ in ref_shards]
        used: set[str] = set()
        for hf_name, meta_name, split, rope in _meta_plan(int(config["num_hidden_layers"])):
            if hf_name not in located or not all(meta_name in table for table in ref_tables):
                continue
            f, t = located[hf_name]
            if not t.intact:
                continue
            used.add(hf_name)
            values = elements(root / f.path, t)
            if rope is not None:
                values = meta_rows(values, heads if rope == "q" else kv_heads)
            parts = [values] * len(ref_shards) if split is None else _split(values, split, len(ref_shards))
            for shard, (table, part) in enumerate(zip(ref_tables, parts, strict=True)):
                pieces[shard].append(rebuilt(meta_name, t.dtype, part, table[meta_name]))
        whole = [f for f in candidate.files if f.role is Role.WEIGHTS and f.error is None]
        rest = [t for f in whole for t in f.tensors if t.name not in used]  # compared under their own names
        files = [f for f in candidate.files if f.path != CONFIG and f not in whole]
        for shard, ref in enumerate(ref_shards):
            tensors = tuple(pieces[shard] + (rest if shard == 0 else []))
            files.append(FileFingerprint(ref.path + SPLIT, None, Role.WEIGHTS, format="pytorch", tensors=tensors))
        files.extend(_stand_ins(reference, PARAMS))
        comparable = [
            dataclasses.replace(f, tensors=tuple(t for t in f.tensors if t.name != ROPE_FREQS))
            for f in reference.files
            if f.path.rsplit("/", 1)[-1] != CHECKLIST
        ]
        adapted = dataclasses.replace(candidate, files=tuple(files))
        return Adapted(adapted, dataclasses.replace(reference, files=tuple(comparable)), REVERSE_NOTE)


def _disagreement(shards: list[FileFingerprint], name: str, pieces: list[TensorFingerprint]) -> str | None:
    """Which shards' copies of a replicated tensor differ from the first shard's, said in a sentence."""
    odd = [f.path for f, p in zip(shards, pieces, strict=True) if p.blake3 != pieces[0].blake3]
    if not odd:
        return None
    verb = "holds another copy" if len(odd) == 1 else "hold other copies"
    return f"{name} is replicated in every shard, but {', '.join(odd)} {verb} than {shards[0].path}"


def _split(values: Any, axis: int, count: int) -> list[Any]:
    import numpy as np

    if values.shape[axis] % count:
        raise UnreadableInput(
            f"a tensor of shape {tuple(values.shape)} does not split into {count} tensor-parallel shards; "
            "the layouts cannot be mapped"
        )
    return list(np.split(values, count, axis=axis))


def _read_json(path: Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > JSON_CAP:
            raise UnreadableInput(f"{path} is larger than {what} can be")
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnreadableInput(f"{path} is not {what} ({exc}); the layout cannot be mapped") from None
    if not isinstance(document, dict) or not all(type(document.get(k)) is int and document[k] > 0 for k in keys):
        raise UnreadableInput(f"{path} lacks {', '.join(keys)}; the layout cannot be mapped")
    return document


def _merge(
    root: Path,
    shards: list[FileFingerprint],
    name: str,
    pieces: list[TensorFingerprint],
    split: int | None,
    heads: int,
    rope: str | None,
    reference: TensorFingerprint | None,
) -> TensorFingerprint:
    import numpy as np

    first = pieces[0]
    if split is None:  # replicated: every shard must hold the same bytes
        if len({p.blake3 for p in pieces}) != 1:  # one copy was changed: no digest of the release can match
            mixed = blake3("|".join(str(p.blake3) for p in pieces).encode()).hexdigest()
            return TensorFingerprint(name, first.dtype, first.shape, 0, 0, mixed, True)
        if reference is not None and (reference.blake3, reference.dtype) == (first.blake3, first.dtype):
            return TensorFingerprint(name, first.dtype, first.shape, 0, 0, first.blake3, True)
        return rebuilt(name, first.dtype, elements(root / shards[0].path, first), reference)
    arrays = [elements(root / shard.path, piece) for shard, piece in zip(shards, pieces, strict=True)]
    whole = np.concatenate(arrays, axis=split)
    if rope is not None:
        whole = hugging_face_rows(whole, heads)
    return rebuilt(name, first.dtype, whole, reference)
