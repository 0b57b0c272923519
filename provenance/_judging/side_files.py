"""Settings files compared by meaning: key by key, as the loader reads them, not byte for byte.

`save_pretrained` rewrites config.json whenever it saves: it records the transformers version that wrote
it and the dtype the tensors were saved in, so a faithful cast of a release never has the release's
config bytes. Keys that record tooling do not change what is loaded; the dtype key does, so it is
accepted only when it names the dtype every tensor in another dtype was cast to. Every other differing
key makes the file modified, and is listed with both values. A manifest without meanings (older ones)
keeps the digest comparison.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Any

from manifests.records import Checkpoint, FileFingerprint, Role
from provenance._judging.wording import plural
from provenance.report import FileResult, FileStatus, KeyChange, TensorResult, TensorStatus

KEYED = ("config.json", "generation_config.json", "params.json")
# Keys that record what wrote the file, not what is loaded. `architectures` is not one: it picks the class.
TOOLING = frozenset({"transformers_version", "_name_or_path", "_commit_hash", "_from_model_config"})
DTYPE_KEY = "dtype"
DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
ROPE_BASE = 10000.0
_ABSENT = object()
# Keys whose default, when a config leaves them out, is null: written as null or left out, the same config.
NULL_DEFAULT = frozenset(
    {
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "sep_token_id",
        "decoder_start_token_id",
        "rope_scaling",
        "rope_parameters",
        "head_dim",
        "sliding_window",
        "torch_dtype",
        "dtype",
        "quantization_config",
    }
)


def normalised(document: dict[str, Any]) -> dict[str, Any]:
    """A config with transformers 4.x's and 5's spellings made one: `torch_dtype` is `dtype`,
    `rope_parameters` is `rope_theta` plus `rope_scaling` (none for the default rotary embedding); a key
    set to null is a key left out where transformers' default is null."""
    config = {k: v for k, v in document.items() if v is not None or k not in NULL_DEFAULT}
    if "torch_dtype" in config:
        legacy = config.pop("torch_dtype")
        config.setdefault(DTYPE_KEY, legacy)
    # transformers 5 builds from `rope_scaling` when it is set, over `rope_parameters`: both set, each is
    # its own key, so neither hides the other
    parameters = config.pop("rope_parameters", None) if not config.get("rope_scaling") else None
    if isinstance(parameters, dict):
        parameters = dict(parameters)
        if "rope_theta" in parameters:
            config["rope_theta"] = parameters.pop("rope_theta")
        config["rope_scaling"] = parameters
    scaling = config.get("rope_scaling")
    if isinstance(scaling, dict):
        scaling = dict(scaling)
        if "type" in scaling:
            scaling.setdefault("rope_type", scaling.pop("type"))
        if scaling.get("rope_type", "default") == "default" and set(scaling) <= {"rope_type"}:
            config.pop("rope_scaling")
        else:
            config["rope_scaling"] = scaling
    if "rope_theta" not in config and _llama_like(config):  # transformers' default rotary base
        config["rope_theta"] = ROPE_BASE
    return config


def _llama_like(config: dict[str, Any]) -> bool:
    return "num_attention_heads" in config and "hidden_size" in config


def _text(value: Any) -> str | None:
    return None if value is _ABSENT else json.dumps(value, sort_keys=True)


def cast_target(reference: Checkpoint, candidate: Checkpoint, results: list[TensorResult]) -> str | None:
    """The one dtype every tensor held in another dtype than the release's was cast to (a proven cast, or
    one the evidence leaves undecided, never a change); None when there is no such cast, or several."""
    theirs = {t.name: t.dtype for f in candidate.files for t in f.tensors}
    targets: set[str] = set()
    for r in results:
        if r.file is None:
            continue
        if r.status is TensorStatus.CAST and r.candidate_dtype is not None:
            targets.add(r.candidate_dtype)
        elif r.status is TensorStatus.MODIFIED and r.proven is False and r.name in theirs:
            targets.add(theirs[r.name])  # no sketch to judge it: undecided, the verdict says so
        elif r.status not in (TensorStatus.MATCH, TensorStatus.CAST) and theirs.get(r.name, r.dtype) != r.dtype:
            return None  # a tensor in another dtype that is not a cast of the release's
    return targets.pop() if len(targets) == 1 else None


def differing_keys(ref: dict[str, Any], cand: dict[str, Any], cast: str | None) -> list[KeyChange]:
    """Each key whose value differs, with why it is ignored when it does not change what is loaded."""
    a, b = normalised(ref), normalised(cand)
    changes: list[KeyChange] = []
    for key in sorted(set(a) | set(b)):
        ours, theirs = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if (ours == theirs and type(ours) is type(theirs)) or _numbers_equal(ours, theirs):
            continue
        ignored = None
        if key in TOOLING:
            ignored = "records the tool that wrote the file"
        elif key == DTYPE_KEY and cast is not None and DTYPES.get(str(theirs)) == cast:
            ignored = f"names the dtype the tensors were cast to ({cast})"
        changes.append(KeyChange(key, _text(ours), _text(theirs), ignored))
    return changes


def _numbers_equal(a: Any, b: Any) -> bool:
    numeric = (int, float)
    return (
        isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool) and not isinstance(b, bool)
    ) and float(a) == float(b)


def _described(changes: list[KeyChange]) -> str:
    shown = [f"{k.key}: {k.reference or '(absent)'} -> {k.candidate or '(absent)'}" for k in changes[:8]]
    more = f" and {len(changes) - 8} more" if len(changes) > 8 else ""
    return "; ".join(shown) + more


def by_meaning(
    reference: Checkpoint,
    candidate: Checkpoint,
    files: list[FileResult],
    file_status: dict[str, FileStatus],
    results: list[TensorResult],
) -> list[FileResult]:
    """The file results with each settings file both sides record the meaning of judged key by key;
    `file_status` keeps such a file unmatched when its bytes differ (identical means byte-identical)."""
    refs = {f.path: f for f in reference.files}
    cands = {f.path: f for f in candidate.files}
    cast = None
    judged: list[FileResult] = []
    for r in files:
        ref, cand = refs.get(r.name), cands.get(r.name)
        if not _comparable(r, ref, cand):
            judged.append(r)
            continue
        assert ref is not None and cand is not None and ref.meaning is not None and cand.meaning is not None
        cast = cast if cast is not None else (cast_target(reference, candidate, results) or "")
        changes = differing_keys(ref.meaning, cand.meaning, cast or None)
        counted = [k for k in changes if k.ignored is None]
        if counted:
            detail = (
                f"{plural(len(counted), 'key')} {'differ' if len(counted) > 1 else 'differs'}: {_described(counted)}"
            )
            judged.append(dataclasses.replace(r, status=FileStatus.MODIFIED, detail=detail, keys=tuple(changes)))
            file_status[r.name] = FileStatus.MODIFIED
        elif changes:
            detail = f"the same settings; only keys that do not change the model differ: {_described(changes)}"
            judged.append(dataclasses.replace(r, status=FileStatus.MATCH, detail=detail, keys=tuple(changes)))
        else:
            judged.append(r if r.status is FileStatus.MATCH else dataclasses.replace(r, status=FileStatus.MATCH))
    return judged


def _comparable(r: FileResult, ref: FileFingerprint | None, cand: FileFingerprint | None) -> bool:
    """A settings file both sides hold and record the meaning of, whose bytes differ or agree."""
    return (
        r.status in (FileStatus.MATCH, FileStatus.MODIFIED)
        and ref is not None
        and cand is not None
        and ref.role is Role.OTHER
        and not cand.rebuilt
        and cand.error is None
        and ref.meaning is not None
        and cand.meaning is not None
        and posixpath.basename(r.name) in KEYED
    )
