"""Meta's consolidated LLaMA checkpoints and the Hugging Face Llama layout: the names, shards and settings
files both adapters between them share (`meta_merge` reads Meta's shards as the Hugging Face layout,
`meta_split` the Hugging Face layout as Meta's shards).

Meta ships `consolidated.NN.pth` tensor-parallel shards and `params.json`; the Hugging Face layout has one
tensor per weight under other names, with the rows of q and k permuted for its rotary embedding (grouped
query attention permutes k by the key-value heads). Column-parallel weights (wq, wk, wv, w1, w3, output)
are split along rows, row-parallel ones (wo, w2) along columns, the embedding along columns (LLaMA 1 and
2) or rows (Llama 3: the axis is read from the shapes); norms are replicated and must agree across
shards. Tensors are rebuilt from the candidate's bytes (merged or split, permuted, no arithmetic) and
digested, so the same numbers give the same digest: `equivalent`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from manifests.records import Checkpoint, FileFingerprint, Role
from provenance.errors import UnreadableInput

PARAMS = "params.json"
CONFIG = "config.json"
ROPE_FREQS = "rope.freqs"
INV_FREQ = "rotary_emb.inv_freq"  # older Hugging Face checkpoints saved this computed buffer per layer
CHECKLIST = "checklist.chk"  # md5 of each of Meta's files: the layout's own record, like a shard index
SHARD = re.compile(r"(?:.*/)?consolidated\.(\d+)\.pth")
JSON_CAP = 1 << 20
MAX_HEADS = 1 << 16

# Hugging Face name, Meta name, tensor-parallel split dimension (None: replicated), rotary permutation
_Row = tuple[str, str, int | None, str | None]
_GLOBAL: list[_Row] = [
    ("model.embed_tokens.weight", "tok_embeddings.weight", 1, None),
    ("model.norm.weight", "norm.weight", None, None),
    ("lm_head.weight", "output.weight", 0, None),
]
_PER_LAYER: list[_Row] = [
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
_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_META_LAYER = re.compile(r"layers\.(\d+)\.(.+)")

Mapping = tuple[str, int | None, str | None]  # the other layout's name, split dimension, rotary permutation


def is_meta_layout(checkpoint: Checkpoint) -> bool:
    paths = {f.path for f in checkpoint.files}
    return PARAMS in paths and any(SHARD.fullmatch(p) for p in paths)


def wants_hugging_face(checkpoint: Checkpoint) -> bool:
    """Whether a checkpoint's tensors carry Hugging Face Llama names."""
    return any(t.name.startswith("model.layers.") for f in checkpoint.files for t in f.tensors)


def meta_name(hf_name: str) -> Mapping | None:
    """A Hugging Face Llama tensor's name in Meta's layout, with how it is split and permuted."""
    return _mapped(hf_name, _HF_LAYER, 0, "layers.{}.{}")


def hugging_face_name(name: str) -> Mapping | None:
    """A Meta tensor's name in the Hugging Face layout, with how it is split and permuted."""
    return _mapped(name, _META_LAYER, 1, "model.layers.{}.{}")


def _mapped(name: str, layer: re.Pattern[str], side: int, template: str) -> Mapping | None:
    """`name` on `side` of the tables (0 Hugging Face, 1 Meta) under the other side's name."""
    for hf, meta, split, rope in _GLOBAL:
        if name == (hf, meta)[side]:
            return (hf, meta)[1 - side], split, rope
    match = layer.fullmatch(name)
    for hf, meta, split, rope in _PER_LAYER if match else ():
        if match and match[2] == (hf, meta)[side]:
            return template.format(match[1], (hf, meta)[1 - side]), split, rope
    return None


def stand_ins(reference: Checkpoint, name: str) -> list[FileFingerprint]:
    """The release's settings file `name`, put where the candidate has none (the other layout's plays its role)."""
    return [f for f in reference.files if f.path == name and f.role is Role.OTHER]


def shard_index(path: str) -> int:
    match = SHARD.fullmatch(path)
    return int(match[1]) if match else -1


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """A settings file the mapping depends on, bounded: one that cannot be read stops the mapping."""
    try:
        if path.stat().st_size > JSON_CAP:
            raise UnreadableInput(f"{path} is larger than {what} can be")
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnreadableInput(f"{path} is not {what} ({exc}); the layout cannot be mapped") from None
    except RecursionError:  # [[[[... nested past the interpreter's stack
        raise UnreadableInput(f"{path} is not {what} (it nests too deeply); the layout cannot be mapped") from None
    if not isinstance(document, dict):
        raise UnreadableInput(f"{path} is not {what} (not a JSON object); the layout cannot be mapped")
    return document


def head_counts(document: dict[str, Any], heads_key: str, kv_key: str, name: str) -> tuple[int, int]:
    """Attention and key-value head counts, checked: positive, bounded, the first a multiple of the second."""
    heads = document.get(heads_key)
    kv_heads = document.get(kv_key)
    counts = (heads, heads if kv_heads is None else kv_heads)
    for key, value in zip((heads_key, kv_key), counts, strict=True):
        if type(value) is not int or not 0 < value <= MAX_HEADS:
            raise UnreadableInput(
                f"{name} gives {key} = {value!r}, not a head count; the layout cannot be mapped: fix or restore {name}"
            )
    heads, kv_heads = (int(c) for c in counts if isinstance(c, int))
    if heads % kv_heads:
        raise UnreadableInput(
            f"{name} gives {heads} attention heads, not a multiple of its {kv_heads} key-value heads; the layout "
            f"cannot be mapped: fix or restore {name}"
        )
    return heads, kv_heads


class Settings(NamedTuple):
    """What an adapter found in the settings beside the weights: the head counts q and k are permuted by,
    where the candidate's settings describe another model than the release's, and what it could not check."""

    heads: int
    kv_heads: int
    changes: tuple[str, ...] = ()
    doubts: tuple[str, ...] = ()


def in_layout(
    candidate: Checkpoint, files: Iterable[FileFingerprint], weight_map: dict[str, str], settings: Settings
) -> Checkpoint:
    """The candidate with its files in the other layout. Its root stays: what was rebuilt is still read
    from the candidate's folder (a second look at the tensors that differ, a settings file)."""
    return dataclasses.replace(
        candidate,
        files=tuple(files),
        weight_map=weight_map,
        layout_changes=(*candidate.layout_changes, *settings.changes),
        layout_doubts=(*candidate.layout_doubts, *settings.doubts),
    )
