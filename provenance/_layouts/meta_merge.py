"""Meta's consolidated shards read as the Hugging Face Llama layout: each tensor merged from its
tensor-parallel pieces, q and k rows permuted into the Hugging Face rotary order (see `llama`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance._layouts.interface import Adapted
from provenance._layouts.llama import (
    CHECKLIST,
    CONFIG,
    INV_FREQ,
    JSON_CAP,
    PARAMS,
    ROPE_FREQS,
    SHARD,
    Settings,
    _read_json,
    head_counts,
    hugging_face_name,
    in_layout,
    is_meta_layout,
    meta_name,
    shard_index,
    stand_ins,
    wants_hugging_face,
)
from provenance._layouts.settings import config_against_params, recorded, release_document
from provenance._layouts.side_roles import meta_roles
from provenance._layouts.tensors import elements, hugging_face_rows, permuted, rebuilt

MERGED = "consolidated.*.pth (merged, Hugging Face names)"
NOTE = (
    "read in Meta's layout: the consolidated shards merged and the q and k rows permuted into the Hugging Face "
    "layout (by the release's head counts when its config.json is at hand); params.json plays config.json's "
    "role, compared with it by meaning; "
    "rope.freqs and rotary_emb.inv_freq, computed from the parameters, are not compared"
)
CONFIG_UNKNOWN = (
    "the release's config.json is recorded by digest only, so params.json's settings and head counts cannot be "
    "checked against it; the release's config.json beside the shards, or a manifest in Meta's layout, would decide"
)


class MetaToHuggingFace:
    """A download in Meta's layout checked against a manifest in the Hugging Face layout."""

    name = "meta-to-hugging-face"

    def comparable(self, reference: Checkpoint) -> Checkpoint:
        files = [
            dataclasses.replace(f, tensors=tuple(t for t in f.tensors if not t.name.endswith(INV_FREQ)))
            for f in reference.files
        ]
        return dataclasses.replace(reference, files=tuple(files))

    def adapt(self, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False) -> Adapted | None:
        if not (is_meta_layout(candidate) and wants_hugging_face(reference)):
            return None
        root = candidate.require_root(f"the {self.name} layout adapter")
        settings = _settings(root, candidate, reference)
        present = {f.path: f for f in candidate.files if SHARD.fullmatch(f.path)}
        wanted = {t.name: t for f in reference.files for t in f.tensors}
        # How many shards: the release's shapes say (a download's own checklist.chk cannot be trusted over
        # them), the checklist when the shapes cannot.
        expected = sorted(
            set(present) | (_shards_by_shape(present, wanted) or _listed_shards(root, candidate)), key=shard_index
        )
        merging = _Merging(root, present, expected, wanted, settings, sketch_all)
        for name in merging.names():
            merging.take(name)
        synthetic = FileFingerprint(
            MERGED, None, Role.WEIGHTS, format="pytorch", tensors=(*merging.merged, *merging.leftovers), rebuilt=True
        )
        shards = [dataclasses.replace(f, tensors=(), container_blake3=None) for f in present.values()]  # as files
        kept = recorded(reference, PARAMS)  # a release with a params.json of its own: the download's is its copy
        others = [f for f in candidate.files if not SHARD.fullmatch(f.path) and (kept or f.path != PARAMS)]
        extra = [] if any(f.path == CONFIG for f in others) else stand_ins(reference, CONFIG)
        roles = meta_roles(reference, dataclasses.replace(candidate, files=(*candidate.files, *extra)))
        others = [f for f in others if f.path not in roles.dropped or recorded(reference, f.path)]
        files = (*others, *shards, synthetic, *extra, *roles.stand_ins)
        settings = settings._replace(
            changes=(*settings.changes, *roles.changes), doubts=(*settings.doubts, *roles.doubts)
        )
        adapted = in_layout(candidate, files, {**candidate.weight_map, **merging.lost}, settings)
        note = "; ".join([NOTE, *([roles.note()] if roles.played else []), *merging.problems])
        return Adapted(adapted, self.comparable(reference), note, (self.name,))


def _settings(root: Path, candidate: Checkpoint, reference: Checkpoint) -> Settings:
    """The head counts q and k are permuted by (the release's config.json's when the download carries it,
    else params.json's own), and where params.json describes another model than that config."""
    params = _read_json(root / PARAMS, "Meta's params.json")
    config = release_document(candidate, reference, CONFIG)
    if config is None:  # the head counts and settings can only be the download's own
        heads, kv_heads = head_counts(params, "n_heads", "n_kv_heads", PARAMS)
        return Settings(heads, kv_heads, doubts=(CONFIG_UNKNOWN,) if recorded(reference, CONFIG) else ())
    # the release's head counts permute q and k; params.json must describe the same model
    heads, kv_heads = head_counts(config, "num_attention_heads", "num_key_value_heads", CONFIG)
    changes = tuple(
        f"params.json's {pk} = {pv!r} where the release's config.json gives {ck} = {cv!r}"
        for ck, cv, pk, pv in config_against_params(config, params)
    )
    return Settings(heads, kv_heads, changes)


@dataclass
class _Merging:
    """The download's shards being merged into Hugging Face tensors, and what merging them found."""

    root: Path
    present: dict[str, FileFingerprint]
    expected: list[str]
    wanted: dict[str, TensorFingerprint]
    settings: Settings
    sketch_all: bool
    tables: list[dict[str, TensorFingerprint]] = field(init=False)
    merged: list[TensorFingerprint] = field(default_factory=list)
    leftovers: list[TensorFingerprint] = field(init=False)
    lost: dict[str, str] = field(default_factory=dict)  # Hugging Face tensor -> the shard it is not usable from
    problems: list[str] = field(init=False)

    def __post_init__(self) -> None:
        present, expected = self.present, self.expected
        self.tables = [
            {t.name: t for t in present[p].tensors if t.path is None} if p in present else {} for p in expected
        ]
        # Nested in a shard's object tree: not the names Meta's loader looks up; compared under their own.
        self.leftovers = [t for f in present.values() for t in f.tensors if t.path is not None]
        self.problems = [f"{p} is missing" for p in expected if p not in present]

    def names(self) -> list[str]:
        """Every tensor name a shard holds, then the release's tensors under Meta's names, once each."""
        released = [mapping[0] for name in self.wanted if (mapping := meta_name(name)) is not None]
        return list(dict.fromkeys([*(name for table in self.tables for name in table), *released]))

    def take(self, name: str) -> None:
        """One tensor of Meta's name: merged from its intact pieces, or recorded as lost or left over."""
        mapping = hugging_face_name(name)
        if mapping is None:
            if name != ROPE_FREQS:
                self.leftovers.extend(t for table in self.tables if (t := table.get(name)) is not None)
            return
        hf_name, split, rope = mapping
        found = list(zip(self.expected, (table.get(name) for table in self.tables), strict=True))
        removed = [p for p, t in found if t is None and _complete(self.present.get(p))]
        unusable = [p for p, t in found if p not in removed and (t is None or not t.intact)]
        pieces = [(p, t) for p, t in found if t is not None and t.intact and not t.view]
        reference = self.wanted.get(hf_name)
        if removed:  # gone from a shard that is whole: removed, not an unfinished download
            self.problems.append(f"{name} is not in {', '.join(removed)}")
            self.lost[hf_name] = removed[0]  # where it should be: a whole shard, so compare calls it removed
            return
        if split is None and pieces:  # replicated: any shard's intact copy will do
            self.merged.append(_replicated(self.root, hf_name, name, pieces, reference, self.problems, self.sketch_all))
            return
        if unusable or not pieces or split is None:
            self.lost[hf_name] = (unusable or self.expected)[0]
            return
        group = self.settings.heads if rope == "q" else self.settings.kv_heads
        heads = group if rope else 0
        self.merged.append(_merge(self.root, hf_name, pieces, split, heads, reference, self.problems, self.sketch_all))


def _complete(shard: FileFingerprint | None) -> bool:
    """A shard that arrived whole and was read: a tensor it lacks was taken out."""
    return shard is not None and shard.error is None


def _shards_by_shape(present: dict[str, FileFingerprint], wanted: dict[str, TensorFingerprint]) -> set[str]:
    """The shards a download must have, from how much of a split tensor one shard holds against the
    reference's whole: what tells a shard that never arrived when there is no checklist.chk."""
    if not present:
        return set()
    first = min(present, key=shard_index)
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
            if len(parts) == 2 and SHARD.fullmatch(parts[1]) and "/" not in parts[1]:
                listed.add(folder + parts[1])
    return listed


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
