"""Meta's consolidated LLaMA checkpoints and the Hugging Face Llama layout, each read as the other.

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
from pathlib import Path
from typing import Any

from blake3 import blake3

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance._layouts.interface import Adapted
from provenance._layouts.settings import config_against_params, recorded, release_document
from provenance._layouts.tensors import elements, hugging_face_rows, meta_rows, permuted, rebuilt
from provenance.errors import UnreadableInput

PARAMS = "params.json"
CONFIG = "config.json"
ROPE_FREQS = "rope.freqs"
INV_FREQ = "rotary_emb.inv_freq"  # older Hugging Face checkpoints saved this computed buffer per layer
CHECKLIST = "checklist.chk"  # md5 of each of Meta's files: the layout's own record, like a shard index
_SHARD = re.compile(r"(?:.*/)?consolidated\.(\d+)\.pth")
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
MERGED = "consolidated.*.pth (merged, Hugging Face names)"

Mapping = tuple[str, int | None, str | None]  # the other layout's name, split dimension, rotary permutation

NOTE = (
    "read in Meta's layout: the consolidated shards merged and the q and k rows permuted into the Hugging Face "
    "layout (by the release's head counts when its config.json is at hand); params.json plays config.json's "
    "role, compared with it by meaning; "
    "rope.freqs and rotary_emb.inv_freq, computed from the parameters, are not compared"
)
REVERSE_NOTE = (
    "read in the Hugging Face layout: each tensor split into Meta's tensor-parallel shards and the q and k rows "
    "permuted into Meta's order; config.json plays params.json's role, compared with it by meaning; "
    "rope.freqs and rotary_emb.inv_freq, computed from the parameters, and checklist.chk, md5 sums of Meta's "
    "files, are not compared"
)
CONFIG_UNKNOWN = (
    "the release's config.json is recorded by digest only, so params.json's settings and head counts cannot be "
    "checked against it; the release's config.json beside the shards, or a manifest in Meta's layout, would decide"
)
PARAMS_UNKNOWN = (
    "the release's params.json is recorded by digest only, so config.json's settings cannot be checked against "
    "it; the release's params.json beside the weights, or a manifest in the Hugging Face layout, would decide"
)


def is_meta_layout(checkpoint: Checkpoint) -> bool:
    paths = {f.path for f in checkpoint.files}
    return PARAMS in paths and any(_SHARD.fullmatch(p) for p in paths)


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


def _stand_ins(reference: Checkpoint, name: str) -> list[FileFingerprint]:
    return [f for f in reference.files if f.path == name and f.role is Role.OTHER]


def _shard_index(path: str) -> int:
    match = _SHARD.fullmatch(path)
    return int(match[1]) if match else -1


class MetaToHuggingFace:
    """A download in Meta's layout checked against a manifest in the Hugging Face layout."""

    name = "meta-to-hugging-face"

    def comparable(self, reference: Checkpoint) -> Checkpoint:
        files = [
            dataclasses.replace(f, tensors=tuple(t for t in f.tensors if not t.name.endswith(INV_FREQ)))
            for f in reference.files
        ]
        return dataclasses.replace(reference, files=tuple(files))

    def adapt(
        self, root: Path, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False
    ) -> Adapted | None:
        if not (is_meta_layout(candidate) and wants_hugging_face(reference)):
            return None
        params = _read_json(root / PARAMS, "Meta's params.json")
        config = release_document(root, candidate, reference, CONFIG)
        changes: list[str] = []
        doubts: list[str] = []
        if config is None:  # the head counts and settings can only be the download's own
            heads, kv_heads = _head_counts(params, "n_heads", "n_kv_heads", PARAMS)
            doubts.extend([CONFIG_UNKNOWN] if recorded(reference, CONFIG) else [])
        else:  # the release's head counts permute q and k; params.json must describe the same model
            heads, kv_heads = _head_counts(config, "num_attention_heads", "num_key_value_heads", CONFIG)
            changes.extend(
                f"params.json's {pk} = {pv!r} where the release's config.json gives {ck} = {cv!r}"
                for ck, cv, pk, pv in config_against_params(config, params)
            )
        present = {f.path: f for f in candidate.files if _SHARD.fullmatch(f.path)}
        wanted = {t.name: t for f in reference.files for t in f.tensors}
        # How many shards: the release's shapes say (a download's own checklist.chk cannot be trusted over
        # them), the checklist when the shapes cannot.
        expected = sorted(
            set(present) | (_shards_by_shape(present, wanted) or _listed_shards(root, candidate)), key=_shard_index
        )
        tables = [{t.name: t for t in present[p].tensors if t.path is None} if p in present else {} for p in expected]
        released = [mapping[0] for name in wanted if (mapping := meta_name(name)) is not None]
        names = list(dict.fromkeys([*(name for table in tables for name in table), *released]))
        merged: list[TensorFingerprint] = []
        # Nested in a shard's object tree: not the names Meta's loader looks up; compared under their own.
        leftovers = [t for f in present.values() for t in f.tensors if t.path is not None]
        lost: dict[str, str] = {}  # Hugging Face tensor -> the shard it should be in, but is not usable from
        problems = [f"{p} is missing" for p in expected if p not in present]
        for name in names:
            mapping = hugging_face_name(name)
            if mapping is None:
                if name != ROPE_FREQS:
                    leftovers.extend(t for table in tables if (t := table.get(name)) is not None)
                continue
            hf_name, split, rope = mapping
            found = [table.get(name) for table in tables]
            removed = [p for p, t in zip(expected, found, strict=True) if t is None and _complete(present.get(p))]
            unusable = [
                p for p, t in zip(expected, found, strict=True) if p not in removed and (t is None or not t.intact)
            ]
            pieces = [(p, t) for p, t in zip(expected, found, strict=True) if t is not None and t.intact and not t.view]
            reference_tensor = wanted.get(hf_name)
            if removed:  # gone from a shard that is whole: removed, not an unfinished download
                problems.append(f"{name} is not in {', '.join(removed)}")
                lost[hf_name] = removed[0]  # where it should be: a whole shard, so compare calls it removed
                continue
            if split is None and pieces:  # replicated: any shard's intact copy will do
                merged.append(_replicated(root, hf_name, name, pieces, reference_tensor, problems, sketch_all))
                continue
            if unusable or not pieces or split is None:
                lost[hf_name] = (unusable or expected)[0]
                continue
            group = heads if rope == "q" else kv_heads
            heads_of = group if rope else 0
            merged.append(_merge(root, hf_name, pieces, split, heads_of, reference_tensor, problems, sketch_all))
        synthetic = FileFingerprint(
            MERGED, None, Role.WEIGHTS, format="pytorch", tensors=tuple(merged + leftovers), rebuilt=True
        )
        shards = [dataclasses.replace(f, tensors=(), container_blake3=None) for f in present.values()]  # as files
        kept = recorded(reference, PARAMS)  # a release with a params.json of its own: the download's is its copy
        others = [f for f in candidate.files if not _SHARD.fullmatch(f.path) and (kept or f.path != PARAMS)]
        stand_ins = [] if any(f.path == CONFIG for f in others) else _stand_ins(reference, CONFIG)
        files = (*others, *shards, synthetic, *stand_ins)
        adapted = dataclasses.replace(
            candidate,
            files=files,
            weight_map={**candidate.weight_map, **lost},
            layout_changes=(*candidate.layout_changes, *changes),
            layout_doubts=(*candidate.layout_doubts, *doubts),
        )
        return Adapted(adapted, self.comparable(reference), "; ".join([NOTE, *problems]), (self.name,))


class HuggingFaceToMeta:
    """A download in the Hugging Face layout checked against a manifest of Meta's consolidated shards."""

    name = "hugging-face-to-meta"

    def comparable(self, reference: Checkpoint) -> Checkpoint:
        files = [
            dataclasses.replace(f, tensors=tuple(t for t in f.tensors if t.name != ROPE_FREQS))
            for f in reference.files
            if f.path.rsplit("/", 1)[-1] != CHECKLIST
        ]
        return dataclasses.replace(reference, files=tuple(files))

    def adapt(
        self, root: Path, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False
    ) -> Adapted | None:
        if is_meta_layout(candidate) or not is_meta_layout(reference) or not wants_hugging_face(candidate):
            return None
        ref_shards = sorted(
            (f for f in reference.files if _SHARD.fullmatch(f.path)), key=lambda f: _shard_index(f.path)
        )
        if not all(f.has_layout for f in ref_shards) or CONFIG not in {f.path for f in candidate.files}:
            return None  # a checksum list cannot be held tensor by tensor; without config.json no head counts
        config = _read_json(root / CONFIG, "a Hugging Face config.json")
        heads, kv_heads = _head_counts(config, "num_attention_heads", "num_key_value_heads", CONFIG)
        params = release_document(root, candidate, reference, PARAMS)
        changes: list[str] = []
        doubts: list[str] = []
        if params is None:
            doubts.extend([PARAMS_UNKNOWN] if recorded(reference, PARAMS) else [])
        else:  # transformers builds the model from config.json: it must describe the release's
            changes.extend(
                f"config.json's {ck} = {cv!r} where the release's params.json gives {pk} = {pv!r}"
                for ck, cv, pk, pv in config_against_params(config, params)
            )
        weights = [f for f in candidate.files if f.role is Role.WEIGHTS]
        located: dict[str, tuple[FileFingerprint, TensorFingerprint]] = {}
        rest: list[TensorFingerprint] = []  # compared under their own names: unmapped, or a second copy
        problems: list[str] = []
        for f in weights:
            for t in f.tensors:
                if t.name.endswith(INV_FREQ) and _computed_as_configured(root / f.path, t, config, heads, problems):
                    continue  # older checkpoints saved it; Meta's have rope.freqs, which nobody loads
                first = located.get(t.name)
                if first is not None and first[1].intact and (first[1].blake3, first[1].dtype) == (t.blake3, t.dtype):
                    continue  # a second, identical copy changes nothing
                if first is not None or t.view or t.path is not None or meta_name(t.name) is None:
                    rest.append(t)
                else:
                    located[t.name] = (f, t)
        ref_tables = [{t.name: t for t in f.tensors} for f in ref_shards]
        pieces: list[list[TensorFingerprint]] = [[] for _ in ref_shards]
        lost: dict[str, str] = {}  # Meta tensor -> the candidate file its source was lost with, or should be in
        for hf_name, (f, t) in located.items():
            target, split, rope = meta_name(hf_name) or (hf_name, None, None)
            if not all(target in table for table in ref_tables):
                rest.append(t)
                continue
            if not t.intact:
                lost[target] = f.path
                continue
            values = elements(root / f.path, t)
            if rope is not None:
                values = permuted(meta_rows, values, heads if rope == "q" else kv_heads, hf_name, problems)
            shapes = [table[target].shape for table in ref_tables]
            parts = _split_like(values, split, shapes)
            for shard, (table, part) in enumerate(zip(ref_tables, parts, strict=True)):
                pieces[shard].append(rebuilt(target, t.dtype, part, table[target], sketch_all=sketch_all))
        for hf_name, file in candidate.weight_map.items():  # tensors of shards that never arrived
            mapping = meta_name(hf_name)
            if mapping is not None and hf_name not in located:
                lost[mapping[0]] = file
        kept = recorded(reference, CONFIG)  # a release with a config.json of its own: the download's is its copy
        files = [f for f in candidate.files if (kept or f.path != CONFIG) and f.role is not Role.WEIGHTS]
        files.extend(dataclasses.replace(f, tensors=(), container_blake3=None) for f in weights)  # as files
        for shard, ref in enumerate(ref_shards):
            tensors = tuple(pieces[shard] + (rest if shard == 0 else []))
            files.append(FileFingerprint(ref.path, None, Role.WEIGHTS, format="pytorch", tensors=tensors, rebuilt=True))
        if not any(f.path == PARAMS for f in candidate.files):
            files.extend(_stand_ins(reference, PARAMS))
        adapted = dataclasses.replace(
            candidate,
            files=tuple(files),
            weight_map=lost,
            layout_changes=(*candidate.layout_changes, *changes),
            layout_doubts=(*candidate.layout_doubts, *doubts),
        )
        return Adapted(adapted, self.comparable(reference), "; ".join([REVERSE_NOTE, *problems]), (self.name,))


def _computed_as_configured(
    path: Path, tensor: TensorFingerprint, config: dict[str, Any], heads: int, problems: list[str]
) -> bool:
    """Whether a saved rotary_emb.inv_freq holds what the config computes (1 / theta^(2i/d)): older
    transformers loaded it from the checkpoint, so a changed one changes the model."""
    import numpy as np

    hidden = config.get("hidden_size")
    theta = config.get("rope_theta", 10000.0)
    if type(hidden) is not int or not isinstance(theta, int | float) or hidden % heads or not tensor.intact:
        problems.append(f"{tensor.name} cannot be checked against config.json")
        return False
    dim = hidden // heads
    expected = 1.0 / (float(theta) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    from provenance._hashing.sketch import numpy_dtype

    try:
        stored = elements(path, tensor).view(numpy_dtype(tensor.dtype)).astype(np.float64).reshape(-1)
    except (KeyError, ValueError, TypeError):  # not a float tensor: not what a config computes
        stored = np.zeros(0)
    tolerance = {"F32": 1e-6, "F16": 1e-3, "BF16": 8e-3}.get(tensor.dtype, 0.0)
    same = stored.shape == expected.shape and bool(np.all(np.abs(stored - expected) <= tolerance * expected))
    if not same:
        problems.append(f"{tensor.name} is not the 1 / theta^(2i/d) that config.json computes")
    return same


def _complete(shard: FileFingerprint | None) -> bool:
    """A shard that arrived whole and was read: a tensor it lacks was taken out."""
    return shard is not None and shard.error is None


def _shards_by_shape(present: dict[str, FileFingerprint], wanted: dict[str, TensorFingerprint]) -> set[str]:
    """The shards a download must have, from how much of a split tensor one shard holds against the
    reference's whole: what tells a shard that never arrived when there is no checklist.chk."""
    if not present:
        return set()
    first = min(present, key=_shard_index)
    folder = first[: len(first) - len(first.rsplit("/", 1)[-1])]
    for t in present[first].tensors:
        mapping = hugging_face_name(t.name)
        whole = wanted.get(mapping[0]) if mapping is not None else None
        if mapping is None or mapping[1] is None or whole is None or len(whole.shape) != len(t.shape):
            continue
        axis = mapping[1]
        others_equal = whole.shape[:axis] + whole.shape[axis + 1 :] == t.shape[:axis] + t.shape[axis + 1 :]
        if others_equal and t.shape[axis] and whole.shape[axis] % t.shape[axis] == 0:
            count = whole.shape[axis] // t.shape[axis]
            return {f"{folder}consolidated.{i:02d}.pth" for i in range(min(count, 1024))}
    return set()


def _listed_shards(root: Path, candidate: Checkpoint) -> set[str]:
    """The consolidated shards Meta's checklist.chk lists, when the download has one: what tells a shard
    that never arrived from a checkpoint that has fewer."""
    listed: set[str] = set()
    for f in candidate.files:
        if f.path.rsplit("/", 1)[-1] != CHECKLIST or (f.size or 0) > JSON_CAP:
            continue
        folder = f.path.rsplit("/", 1)[0] + "/" if "/" in f.path else ""
        try:
            lines = (root / f.path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and _SHARD.fullmatch(parts[1]) and "/" not in parts[1]:
                listed.add(folder + parts[1])
    return listed


def _split_like(values: Any, split: int | None, shapes: list[tuple[int, ...]]) -> list[Any]:
    """A tensor cut into the reference's pieces: copies when they are replicated, else along the axis their
    shapes say (the default one when they say none), unevenly when it does not divide (a changed shape)."""
    import numpy as np

    full = tuple(values.shape)
    count = len(shapes)
    if all(shape == full for shape in shapes) or not full:  # replicated, or a scalar: nothing to cut
        return [values] * count
    if all(len(shape) == len(full) for shape in shapes):
        for axis in range(len(full)):
            others = full[:axis] + full[axis + 1 :]
            if all(s[axis] * count == full[axis] and s[:axis] + s[axis + 1 :] == others for s in shapes):
                return list(np.split(values, count, axis=axis))
    return list(np.array_split(values, count, axis=split if split is not None and split < len(full) else 0))


def _read_json(path: Path, what: str) -> dict[str, Any]:
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


def _head_counts(document: dict[str, Any], heads_key: str, kv_key: str, name: str) -> tuple[int, int]:
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


def _replicated(
    root: Path,
    name: str,
    stored_name: str,
    pieces: list[tuple[str, TensorFingerprint]],
    reference: TensorFingerprint | None,
    problems: list[str],
    sketch_all: bool,
) -> TensorFingerprint:
    """A replicated tensor: every shard's copy must hold the same bytes; the shards that disagree are named."""
    (path, first), *others = pieces
    odd = [p for p, t in others if t.blake3 != first.blake3]
    if odd:  # one copy was changed: no digest of the release can match
        verb = "holds another copy" if len(odd) == 1 else "hold other copies"
        problems.append(f"{stored_name} is replicated in every shard, but {', '.join(odd)} {verb} than {path}")
        mixed = blake3("|".join(str(t.blake3) for _, t in pieces).encode()).hexdigest()
        return TensorFingerprint(name, first.dtype, first.shape, 0, 0, mixed, True)
    same = reference is not None and (reference.blake3, reference.dtype) == (first.blake3, first.dtype)
    if same and not sketch_all:
        return TensorFingerprint(name, first.dtype, first.shape, 0, 0, first.blake3, True)
    return rebuilt(name, first.dtype, elements(root / path, first), reference, sketch_all=sketch_all)


def _merge(
    root: Path,
    name: str,
    pieces: list[tuple[str, TensorFingerprint]],
    split: int,
    heads: int,
    reference: TensorFingerprint | None,
    problems: list[str],
    sketch_all: bool,
) -> TensorFingerprint:
    import numpy as np

    arrays = [elements(root / path, piece) for path, piece in pieces]
    axis = _joining_axis([a.shape for a in arrays], split, reference.shape if reference else None)
    try:
        whole = np.concatenate(arrays, axis=axis)
    except ValueError:  # the shards' pieces do not fit together: no digest of the release can match
        problems.append(f"the shards' pieces of {name} do not fit together ({[list(a.shape) for a in arrays]})")
        return TensorFingerprint(name, pieces[0][1].dtype, pieces[0][1].shape, 0, 0, "0" * 64, True)
    if heads:
        whole = permuted(hugging_face_rows, whole, heads, name, problems)
    return rebuilt(name, pieces[0][1].dtype, whole, reference, sketch_all=sketch_all)


def _joining_axis(shapes: list[tuple[int, ...]], default: int, target: tuple[int, ...] | None) -> int:
    """The axis the shards' pieces join along to give the reference's shape (Llama 3 splits the embedding
    by rows, earlier releases by columns); the layout's default when the shapes do not say."""
    if target is not None and all(len(s) == len(target) for s in shapes):
        for axis in (default, *range(len(target))):
            rest = [s[:axis] + s[axis + 1 :] for s in shapes]
            if sum(s[axis] for s in shapes) == target[axis] and all(
                r == target[:axis] + target[axis + 1 :] for r in rest
            ):
                return int(axis)
    return default
