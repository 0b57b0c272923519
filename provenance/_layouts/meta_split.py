"""The Hugging Face Llama layout read as Meta's consolidated shards: each tensor split into the release's
tensor-parallel pieces, q and k rows permuted into Meta's rotary order (see `llama`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance._layouts.interface import Adapted
from provenance._layouts.llama import (
    CHECKLIST,
    CONFIG,
    INV_FREQ,
    PARAMS,
    ROPE_FREQS,
    SHARD,
    Settings,
    _read_json,
    head_counts,
    in_layout,
    is_meta_layout,
    meta_name,
    shard_index,
    stand_ins,
    wants_hugging_face,
)
from provenance._layouts.settings import config_against_params, recorded, release_document
from provenance._layouts.side_roles import hugging_face_extras, meta_roles
from provenance._layouts.tensors import elements, meta_rows, permuted, rebuilt

NOTE = (
    "read in the Hugging Face layout: each tensor split into Meta's tensor-parallel shards and the q and k rows "
    "permuted into Meta's order; config.json plays params.json's role, compared with it by meaning; "
    "rope.freqs and rotary_emb.inv_freq, computed from the parameters, and checklist.chk, md5 sums of Meta's "
    "files, are not compared"
)
PARAMS_UNKNOWN = (
    "the release's params.json is recorded by digest only, so config.json's settings cannot be checked against "
    "it; the release's params.json beside the weights, or a manifest in the Hugging Face layout, would decide"
)


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

    def adapt(self, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False) -> Adapted | None:
        if is_meta_layout(candidate) or not is_meta_layout(reference) or not wants_hugging_face(candidate):
            return None
        ref_shards = sorted((f for f in reference.files if SHARD.fullmatch(f.path)), key=lambda f: shard_index(f.path))
        if not all(f.has_layout for f in ref_shards) or CONFIG not in {f.path for f in candidate.files}:
            return None  # a checksum list cannot be held tensor by tensor; without config.json no head counts
        root = candidate.require_root(f"the {self.name} layout adapter")
        config, settings = _settings(root, candidate, reference)
        weights = [f for f in candidate.files if f.role is Role.WEIGHTS]
        splitting = _Splitting(root, config, settings, ref_shards, sketch_all)
        splitting.locate(weights)
        splitting.split(candidate.weight_map)
        kept = recorded(reference, CONFIG)  # a release with a config.json of its own: the download's is its copy
        accepted, extras = hugging_face_extras(reference, candidate)  # Hugging Face forms of Meta's files
        files = [
            f
            for f in candidate.files
            if (kept or f.path != CONFIG) and f.role is not Role.WEIGHTS and f.path not in accepted
        ]
        files.extend(dataclasses.replace(f, tensors=(), container_blake3=None) for f in weights)  # as files
        for shard, ref in enumerate(ref_shards):
            tensors = tuple(splitting.pieces[shard] + (splitting.rest if shard == 0 else []))
            files.append(FileFingerprint(ref.path, None, Role.WEIGHTS, format="pytorch", tensors=tensors, rebuilt=True))
        if not any(f.path == PARAMS for f in candidate.files):
            files.extend(stand_ins(reference, PARAMS))
        roles = meta_roles(reference, dataclasses.replace(candidate, files=tuple(files)))
        roles.played.extend(extras.played)
        roles.changes.extend(extras.changes)
        roles.doubts.extend(extras.doubts)
        files.extend(roles.stand_ins)
        settings = settings._replace(
            changes=(*settings.changes, *roles.changes), doubts=(*settings.doubts, *roles.doubts)
        )
        adapted = in_layout(candidate, files, splitting.lost, settings)
        note = "; ".join([NOTE, *([roles.note()] if roles.played else []), *splitting.problems])
        return Adapted(adapted, self.comparable(reference), note, (self.name,))


def _settings(root: Path, candidate: Checkpoint, reference: Checkpoint) -> tuple[dict[str, Any], Settings]:
    """The download's config.json (its head counts permute q and k), and where it describes another model
    than the release's params.json, when the download carries that."""
    config = _read_json(root / CONFIG, "a Hugging Face config.json")
    heads, kv_heads = head_counts(config, "num_attention_heads", "num_key_value_heads", CONFIG)
    params = release_document(candidate, reference, PARAMS)
    if params is None:
        return config, Settings(heads, kv_heads, doubts=(PARAMS_UNKNOWN,) if recorded(reference, PARAMS) else ())
    # transformers builds the model from config.json: it must describe the release's
    changes = tuple(
        f"config.json's {ck} = {cv!r} where the release's params.json gives {pk} = {pv!r}"
        for ck, cv, pk, pv in config_against_params(config, params)
    )
    return config, Settings(heads, kv_heads, changes)


@dataclass
class _Splitting:
    """The download's tensors being split into the release's shards, and what splitting them found."""

    root: Path
    config: dict[str, Any]
    settings: Settings
    ref_shards: list[FileFingerprint]
    sketch_all: bool
    located: dict[str, tuple[FileFingerprint, TensorFingerprint]] = field(default_factory=dict)
    rest: list[TensorFingerprint] = field(default_factory=list)  # compared under their own names
    problems: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # Meta tensor -> the candidate file it was lost with
    pieces: list[list[TensorFingerprint]] = field(init=False)
    ref_tables: list[dict[str, TensorFingerprint]] = field(init=False)

    def __post_init__(self) -> None:
        self.ref_tables = [{t.name: t for t in f.tensors} for f in self.ref_shards]
        self.pieces = [[] for _ in self.ref_shards]

    def locate(self, weights: list[FileFingerprint]) -> None:
        """Each Hugging Face tensor Meta's layout has, found once; the rest (unmapped, a second copy that
        differs) compared under their own names."""
        for f in weights:
            for t in f.tensors:
                if t.name.endswith(INV_FREQ) and _computed_as_configured(
                    self.root / f.path, t, self.config, self.settings.heads, self.problems
                ):
                    continue  # older checkpoints saved it; Meta's have rope.freqs, which nobody loads
                first = self.located.get(t.name)
                if first is not None and first[1].intact and (first[1].blake3, first[1].dtype) == (t.blake3, t.dtype):
                    continue  # a second, identical copy changes nothing
                if first is not None or t.view or t.path is not None or meta_name(t.name) is None:
                    self.rest.append(t)
                else:
                    self.located[t.name] = (f, t)

    def split(self, weight_map: dict[str, str]) -> None:
        """Each located tensor cut into the release's shards; those lost, and those of shards that never
        arrived (by the download's shard index), recorded where they should be."""
        heads, kv_heads = self.settings.heads, self.settings.kv_heads
        for hf_name, (f, t) in self.located.items():
            target, split, rope = meta_name(hf_name) or (hf_name, None, None)
            if not all(target in table for table in self.ref_tables):
                self.rest.append(t)
                continue
            if not t.intact:
                self.lost[target] = f.path
                continue
            values = elements(self.root / f.path, t)
            if rope is not None:
                values = permuted(meta_rows, values, heads if rope == "q" else kv_heads, hf_name, self.problems)
            shapes = [table[target].shape for table in self.ref_tables]
            parts = _split_like(values, split, shapes)
            for shard, (table, part) in enumerate(zip(self.ref_tables, parts, strict=True)):
                self.pieces[shard].append(rebuilt(target, t.dtype, part, table[target], sketch_all=self.sketch_all))
        for hf_name, file in weight_map.items():  # tensors of shards that never arrived
            mapping = meta_name(hf_name)
            if mapping is not None and hf_name not in self.located:
                self.lost[mapping[0]] = file


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
