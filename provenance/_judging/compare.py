"""Match a candidate's files and tensors against a reference's and classify the difference.

Tensors are matched by name (the copy in the reference's own file first, then a copy with the same
digest, then any copy), then by digest under another name, so re-sharded, renamed and re-ordered copies
are recognised as the same numbers and a leftover duplicate of a shard changes nothing. The verdict then
follows DESIGN.md: a tensor absent because its shard is missing or cut short makes the checkpoint
incomplete; one absent from complete, well-formed containers was removed, which is a modification.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import posixpath
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from manifests.records import (
    Checkpoint,
    FileFingerprint,
    Role,
    ShardIndex,
    TensorFingerprint,
    TreePath,
    is_weights_file,
)
from provenance._hashing.scan import PICKLES
from provenance._hashing.sketch import compare_samples, not_numbers
from provenance._judging.quantization import off_grid
from provenance.errors import ProvenanceError
from provenance.report import FileResult, FileStatus, Report, TensorResult, TensorStatus, Verdict

_NAMES_SHOWN = 3
FOUND = (TensorStatus.MATCH, TensorStatus.CAST, TensorStatus.QUANTIZED)  # statuses of a tensor that is there


@dataclass(frozen=True, slots=True)
class _Located:
    file: str
    tensor: TensorFingerprint


@dataclass
class _TensorOutcome:
    results: list[TensorResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # missing from complete, well-formed files
    lost: list[str] = field(default_factory=list)  # missing with a shard that is gone or cut short
    added: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (release name, candidate name)
    hits: set[tuple[str, str]] = field(default_factory=set)  # (file, name) of each candidate copy judged
    harmless: set[tuple[str, str]] = field(default_factory=set)  # (file, name) of leftover copies of the release's
    foreign: dict[str, list[str]] = field(default_factory=dict)  # file -> tensors that are not the release's


def file_status_of(ref: FileFingerprint, cand: FileFingerprint) -> tuple[FileStatus, str | None]:
    """How one candidate file compares with its reference, from whatever both record."""
    if cand.rebuilt:  # the candidate holds this file's tensors in another layout, not the file
        return FileStatus.MISSING, None
    if cand.error is not None and cand.hazard is not None:  # refused by the reader: a change, not damage
        return FileStatus.MODIFIED, cand.hazard
    if cand.error is not None:
        return FileStatus.CORRUPT, cand.error
    if ref.has_layout and cand.has_layout:  # both well-formed containers: compare them part by part
        ref_parts = [(t.start, t.end, t.blake3) for t in ref.tensors]
        cand_parts = [(t.start, t.end, t.blake3) for t in cand.tensors]
        same = ref.size == cand.size and ref.container_blake3 == cand.container_blake3 and ref_parts == cand_parts
        return (FileStatus.MATCH, None) if same else (FileStatus.MODIFIED, "bytes differ")
    if ref.size is not None and cand.size is not None and ref.size != cand.size:
        if cand.size < ref.size and ref.role is Role.WEIGHTS:  # what an unfinished download of weights leaves
            return FileStatus.CORRUPT, f"short: {cand.size:,} of {ref.size:,} bytes"
        if cand.size < ref.size:  # a config or tokenizer is small: a shorter one was rewritten, not cut short
            return FileStatus.MODIFIED, f"{cand.size:,} bytes, expected {ref.size:,} (rewritten, not cut short)"
        return FileStatus.MODIFIED, f"{cand.size:,} bytes, expected {ref.size:,}"
    common = [a for a in ref.digests if a in cand.digests]
    if not common:
        raise ProvenanceError(
            f"cannot compare {ref.path}: the reference records {sorted(ref.digests) or 'no digest'}, "
            f"the candidate {sorted(cand.digests) or 'no digest'}; fingerprint both sides with this tool"
        )
    differing = [a for a in common if ref.digests[a] != cand.digests[a]]
    if differing:
        return FileStatus.MODIFIED, f"{'/'.join(differing)} differs"
    return FileStatus.MATCH, None


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_NAMES_SHOWN])
    return shown + (f" and {len(items) - _NAMES_SHOWN} more" if len(items) > _NAMES_SHOWN else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def compare(
    reference: Checkpoint,
    candidate: Checkpoint,
    *,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    evidence: str = "",
) -> Report:
    """Compare a candidate checkpoint with a reference, both in hand (from `fingerprint`, a manifest's
    `checkpoint`, ...), and return the full report; nothing is read from disk, so a mismatch found by bytes
    alone cannot be sketched or located as `verify` and `diff` do. The report's `exit_code`: 0 when the
    verdict passes (identical or equivalent), else 1. Raises ProvenanceError (exit 2) when the reference
    lists no files."""
    if not reference.files:
        raise ProvenanceError("the reference lists no files: nothing can be verified against it")
    cand_by_path = {f.path: f for f in candidate.files}
    ref_paths = {f.path for f in reference.files}
    files: list[FileResult] = []
    file_status: dict[str, FileStatus] = {}
    for ref in reference.files:
        cand = cand_by_path.get(ref.path)
        status, detail = (FileStatus.MISSING, None) if cand is None else file_status_of(ref, cand)
        file_status[ref.path] = status
        files.append(FileResult(ref.path, status, ref.role.value, cand.size if cand else None, ref.size, detail))
    for cand in candidate.files:
        if cand.path not in ref_paths and not (cand.rebuilt and cand.size is None):  # not a made-up table
            detail = cand.hazard or cand.error
            files.append(FileResult(cand.path, FileStatus.EXTRA, cand.role.value, cand.size, None, detail))

    outcome = _match_tensors(reference, candidate, file_status)
    if candidate.in_another_layout:  # the release's files are absent by construction: say when that costs nothing
        lost = {t.file for t in outcome.results if t.file is not None and t.status not in FOUND}
        files = [
            dataclasses.replace(r, detail="its tensors are in the candidate's layout")
            if r.status is FileStatus.MISSING and r.role == Role.WEIGHTS.value and r.name not in lost
            else r
            for r in files
        ]
    verdict, reasons = _decide(reference, candidate, files, file_status, outcome)
    facts = {}
    if candidate.set_aside:  # the user's --ignore: listed, neither compared nor counted
        reasons.append(
            f"{_plural(len(candidate.set_aside), 'file')} set aside by --ignore: {_names(list(candidate.set_aside))}"
        )
        facts["ignored"] = {"files": list(candidate.set_aside)}
    return Report(
        verdict=verdict,
        reasons=tuple(reasons),
        facts=facts,
        files=tuple(files),
        tensors=tuple(outcome.results),
        reference=reference_label,
        candidate=candidate_label,
        evidence=evidence,
    )


def _decide(
    reference: Checkpoint,
    candidate: Checkpoint,
    files: list[FileResult],
    file_status: dict[str, FileStatus],
    outcome: _TensorOutcome,
) -> tuple[Verdict, list[str]]:
    tensors = outcome.results
    ref_tensors = [t for t in tensors if t.file is not None]
    found = [t for t in ref_tensors if t.status in FOUND]
    renamed = {name for name, _ in outcome.renamed}
    # A tensor in another dtype the reference cannot judge (no sketch): neither found nor changed, undecided.
    unjudged = [t for t in ref_tensors if t.status is TensorStatus.MODIFIED and t.proven is False]
    changed = [
        t.name
        for t in ref_tensors
        if t.status is TensorStatus.MODIFIED and t.name not in renamed and t.proven is not False
    ]
    corrupt = [t.name for t in tensors if t.status is TensorStatus.CORRUPT]
    cand_intact = sum(1 for f in candidate.files for t in f.tensors if t.intact)

    # Vectors and empty tensors (norms at init, rotary frequencies, biases) are shared by unrelated models
    # of one architecture; only a matching matrix is evidence that the weights derive from the reference.
    has_matrices = any(len(t.shape) >= 2 and all(t.shape) for t in ref_tensors)
    derived = [  # fine-tuned: sampled values that track the release's, or values that round to them
        t for t in ref_tensors if (t.correlation is not None and t.correlation >= DERIVED) or t.proven is True
    ]
    moved = [t for t in ref_tensors if t.name in renamed]  # the release's numbers, under other names
    evidence = [
        t for t in [*found, *derived, *moved, *unjudged] if not has_matrices or (len(t.shape) >= 2 and all(t.shape))
    ]
    if ref_tensors and cand_intact and not evidence and (changed or outcome.added or not outcome.lost):
        return Verdict.UNRELATED, [
            f"none of the candidate's {_plural(cand_intact, 'tensor')} matches a reference tensor"
            + (" (apart from vectors any model of this shape may share)" if found else "")
        ]

    reasons: list[str] = []
    if changed:
        reasons.append(f"{_plural(len(changed), 'tensor')} changed: {_names(changed)}")
    if outcome.renamed:
        moves = [
            f"{name} as {theirs}" if theirs != name else f"{name} nested otherwise in the object tree"
            for name, theirs in outcome.renamed
        ]
        reasons.append(
            f"{_plural(len(moves), 'tensor')} under another name, outside a layout's mapping (a loader asking for "
            f"the release's name finds nothing): {_names(moves)}"
        )
    if outcome.added:
        reasons.append(f"{_plural(len(outcome.added), 'tensor')} added: {_names(outcome.added)}")
    reasons += _loading_problems(reference, candidate, files, file_status, outcome)
    reasons += candidate.layout_changes  # settings that disagree with the release's: another model
    if outcome.removed:
        reasons.append(
            f"{_plural(len(outcome.removed), 'tensor')} removed from complete files: {_names(outcome.removed)}"
        )
    unlaid = {f.path for f in reference.files if not f.has_layout}
    # With whole-file digests only, an index beside the release's whole weights is the one change: a loader
    # follows it (dropping a shard loads fresh values); beside other weights files the check below is undecided.
    weights_whole = all(file_status[f.path] is FileStatus.MATCH for f in reference.files if f.role is Role.WEIGHTS)
    refused = {f.path for f in candidate.files if f.error is not None and f.hazard is not None}
    for r in files:
        if r.status is FileStatus.MODIFIED and r.name in refused:
            reasons.append(f"{r.name} refused: {r.detail}")
        elif r.status is FileStatus.MODIFIED and (
            r.role == Role.OTHER.value
            or (r.name in unlaid and r.role != Role.INDEX.value)
            or (r.role == Role.INDEX.value and not reference.tensor_level and weights_whole)
        ):
            reasons.append(f"{r.name} differs ({r.detail})")
    modified = bool(reasons)

    # A lost weights file costs nothing when every tensor it held turned up elsewhere (re-sharded copies).
    not_found = {t.file for t in ref_tensors if t.status not in FOUND}
    held_elsewhere = {f.path for f in reference.files if f.has_layout and f.path not in not_found}
    # In another layout the release's weights files are never there: their tensors say what is missing.
    elsewhere = candidate.in_another_layout
    lost_files = [
        r
        for r in files
        if r.status in (FileStatus.MISSING, FileStatus.CORRUPT)
        and r.role != Role.INDEX.value
        and r.name not in held_elsewhere
        and not (elsewhere and r.role == Role.WEIGHTS.value)
    ]
    gone = [r.name for r in lost_files if r.status is FileStatus.MISSING]
    if gone:
        reasons.append(f"{_plural(len(gone), 'file')} missing: {_names(gone)}")
    for r in lost_files:
        if r.status is not FileStatus.MISSING:
            reasons.append(f"{r.name} is {r.detail}")
    if outcome.lost:
        reasons.append(f"{_plural(len(outcome.lost), 'tensor')} missing with their shard: {_names(outcome.lost)}")
    if corrupt:
        reasons.append(f"{_plural(len(corrupt), 'tensor')} not downloaded whole: {_names(corrupt)}")
    if modified:
        return Verdict.MODIFIED, reasons

    if not reference.tensor_level:
        # A file-level reference (a checksum list, a model_signing manifest) cannot see inside weights files:
        # if its weights files are absent while others are present, only a tensor-level manifest can tell.
        lost_weights = [r for r in lost_files if r.role == Role.WEIGHTS.value]
        new_weights = [r for r in files if r.status is FileStatus.EXTRA and r.role == Role.WEIGHTS.value]
        if lost_weights and new_weights:
            reasons.append(
                f"the reference records whole-file digests only and the candidate holds its weights in "
                f"{_plural(len(new_weights), 'other file')}: a tensor-level manifest would decide"
            )
            return Verdict.UNDECIDED, reasons
        new_indexes = [r.name for r in files if r.status is FileStatus.EXTRA and r.role == Role.INDEX.value]
        if new_indexes:  # loading instructions the reference never listed, to places it cannot see into
            reasons.append(
                f"the reference records whole-file digests only, and the candidate adds shard indexes it cannot "
                f"check ({_names(new_indexes)}): a tensor-level manifest would decide"
            )
            return Verdict.UNDECIDED, reasons
    if lost_files or outcome.lost or corrupt:
        return Verdict.INCOMPLETE, reasons
    if candidate.layout_doubts:  # settings a loader builds the model from that could not be checked
        return Verdict.UNDECIDED, [*reasons, *candidate.layout_doubts]
    if unjudged:
        return Verdict.UNDECIDED, [
            *reasons,
            f"{_plural(len(unjudged), 'tensor')} in another dtype than the release's, which the reference has no "
            f"sketch of: a conversion cannot be told from a change ({_names([t.name for t in unjudged])}); "
            f"a manifest made with sketches would decide",
        ]
    casts = [t for t in ref_tensors if t.status in (TensorStatus.CAST, TensorStatus.QUANTIZED)]
    loose = [t.name for t in casts if t.proven is False]
    if loose:
        return Verdict.UNDECIDED, [
            *reasons,
            f"{_plural(len(loose), 'tensor')} quantized by a quantizer that searches its scales (K-quants, or an "
            f"importance matrix): consistent with the release's values, but a change smaller than the "
            f"quantization's error cannot be ruled out ({_names(loose)}); a float copy would decide",
        ]
    if casts:
        kinds = sorted({f"{t.dtype} to {t.candidate_dtype}" for t in casts})
        return Verdict.CONVERTED, [
            *reasons,
            f"{_plural(len(casts), 'tensor')} are the release's values in another dtype ({', '.join(kinds)}); "
            f"{len(ref_tensors) - len(casts)} bit-identical",
        ]
    if all(status is FileStatus.MATCH for status in file_status.values()):
        return Verdict.IDENTICAL, [*reasons, "every reference file is present and byte-identical"]
    return Verdict.EQUIVALENT, [
        *reasons,
        f"all {_plural(len(ref_tensors), 'tensor')} are bit-identical; only the container differs "
        f"({_container_change(reference, candidate)})",
    ]


# Files a loader or a framework never reads (documentation, licences, images, git attributes, Meta's
# checklist.chk of md5 sums): listed when added, without changing the verdict. Anything
# else beside the weights may be picked up (weights in any format, adapters, code, pickles, chat templates,
# configs, tokenizer files such as merges.txt and vocab.txt): at most `modified`.
INERT_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
INERT_NAMES = (
    "readme*",
    "license*",
    "licence*",
    "copying*",
    "notice*",
    ".gitattributes",
    ".gitignore",
    "checklist.chk",
)
# What transformers' from_pretrained opens in a folder, first found first: one file shadows the rest.
PREFERRED = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# Every name it may open by itself, with a variant (`variant="fp16"` inserts it before the last suffix).
ENTRY_POINTS = (
    *PREFERRED,
    "model.*.safetensors",
    "model.safetensors.index.*.json",
    "pytorch_model.*.bin",
    "pytorch_model.bin.index.*.json",
    "tf_model.h5",
    "flax_model.msgpack",
)


# Suffixes something loads whatever the name before them (README.bin is a PyTorch file to torch.load).
LOADABLE_SUFFIXES = (*PICKLES, ".index.json", ".py", ".h5", ".msgpack", ".onnx", ".npy", ".npz", ".joblib")


def is_inert(path: str) -> bool:
    """Whether an added file is one no loader reads: documentation, licences, images, git attributes. A
    file a weights reader claims, a pickle or code is never inert, whatever its name."""
    base = posixpath.basename(path).lower()
    if is_weights_file(base) or base.endswith(LOADABLE_SUFFIXES):
        return False
    if base.endswith(INERT_SUFFIXES):
        return True
    # By name only as plain text: additional_chat_templates/readme.jinja is a template the tokenizer loads.
    suffix = posixpath.splitext(base)[1]
    plain = suffix in ("", ".txt", ".rst") or suffix[1:].isdigit()  # LICENSE, LICENSE.txt, LICENSE-2.0
    return plain and any(fnmatch.fnmatchcase(base, pattern) for pattern in INERT_NAMES)


def _loading_problems(
    reference: Checkpoint,
    candidate: Checkpoint,
    files: list[FileResult],
    file_status: dict[str, FileStatus],
    outcome: _TensorOutcome,
) -> list[str]:
    """What would make a loader load something else than the release's tensors from this candidate: added
    files it may pick up, shard indexes that send it elsewhere, a preferred file that shadows the rest."""
    reasons: list[str] = []
    added = _added_files(reference, candidate, files, outcome)
    if added:
        reasons.append(f"{_plural(len(added), 'file')} added: {_names(added)}")
    for index in candidate.indexes:
        if file_status.get(index.path) is FileStatus.MATCH:
            continue  # the release's own index, byte for byte
        wrong = _index_errors(reference, candidate, index, outcome)
        if wrong:
            reasons.append(
                f"{index.path} sends {_plural(len(wrong), 'tensor')} where a loader would not load the release's: "
                f"{_names(wrong)}"
            )
    return reasons + _shadowing(reference, candidate, file_status, outcome)


def _added_files(
    reference: Checkpoint, candidate: Checkpoint, files: list[FileResult], outcome: _TensorOutcome
) -> list[str]:
    """Extra files that change what may load: each named, with why."""
    by_path = {f.path: f for f in candidate.files}
    indexed = set(candidate.weight_map.values())
    ref_weights_whole = all(
        r.status is FileStatus.MATCH for r in files if r.role == Role.WEIGHTS.value and r.status is not FileStatus.EXTRA
    )
    added: list[str] = []
    for r in files:
        cand = by_path.get(r.name)
        if r.status is not FileStatus.EXTRA or cand is None or cand.role is Role.INDEX:
            continue
        if is_inert(r.name) and cand.hazard is None and cand.role is Role.OTHER:
            continue
        if cand.role is not Role.WEIGHTS:
            added.append(f"{r.name}{f' ({cand.hazard})' if cand.hazard else ''}")
            continue
        if cand.hazard is not None:
            added.append(f"{r.name} ({cand.hazard})")
        elif not reference.tensor_level:  # its tensors cannot be told; only beside the release's whole weights
            if ref_weights_whole:
                added.append(f"{r.name} (weights the reference's whole-file digests cannot place)")
        elif candidate.in_another_layout and not cand.tensors and cand.error is None:
            continue  # its tensors were rebuilt in the reference's layout and compared there
        elif cand.error is not None and not cand.tensors:
            if r.name not in indexed:  # not a shard the candidate's own index expects: a file nothing explains
                added.append(f"{r.name} (unreadable: {cand.error})")
        elif r.name in outcome.foreign:
            added.append(f"{r.name} (holds {_names(outcome.foreign[r.name])}, not the release's)")
    return added


def _index_errors(
    reference: Checkpoint, candidate: Checkpoint, index: ShardIndex, outcome: _TensorOutcome
) -> list[str]:
    """Entries of a candidate's shard index that do not point a release tensor to a checked file holding
    it as judged (the release's digest, or the copy the comparison judged); others' losses are left to
    the missing-shard logic."""
    if index.error is not None:
        return [f"all of them ({index.error}: a loader following it fails or reads other files)"]
    by_path = {f.path: f for f in candidate.files}
    ref_digests = {(t.name, t.blake3, t.dtype, t.shape) for f in reference.files for t in f.tensors}
    ref_names = {name for name, *_ in ref_digests}
    found = {t.name for t in outcome.results if t.file is not None and t.status in FOUND}
    wrong: list[str] = []
    for e in index.entries:
        where = f"{e.tensor} -> {e.target}"
        if e.path is None:
            wrong.append(f"{where} (outside the checkpoint)")
            continue
        cand = by_path.get(e.path)
        if cand is None:
            if e.on_disk:
                wrong.append(f"{where} (a file this check does not read)")
            elif e.tensor in found:
                wrong.append(f"{where} (no such file; the tensor is in another)")
            continue  # else a shard that never arrived: the tensor is missing with it
        if cand.error is not None or candidate.in_another_layout or not reference.tensor_level:
            continue  # a damaged shard is judged as damage; another layout's names are the adapter's
        if e.tensor not in ref_names:
            wrong.append(f"{where} (not a tensor of the release)")
            continue
        copies = [t for t in cand.tensors if t.name == e.tensor and t.path is None]  # an index names flat keys
        if not copies:
            wrong.append(f"{where} (that file does not hold it)")
        elif not any(
            (e.path, t.name) in outcome.hits or (t.name, t.blake3, t.dtype, t.shape) in ref_digests for t in copies
        ):
            wrong.append(f"{where} (that file's copy is not the release's)")
    return wrong


def _shadowing(
    reference: Checkpoint, candidate: Checkpoint, file_status: dict[str, FileStatus], outcome: _TensorOutcome
) -> list[str]:
    """from_pretrained opens the first of PREFERRED it finds and nothing else, and its options (a variant,
    use_safetensors=False) open another: the first one, and every added one, must place every tensor of
    the release's top-level weights as found."""
    if candidate.in_another_layout or not reference.tensor_level:
        return []
    paths = {f.path for f in candidate.files} | {i.path for i in candidate.indexes}
    first = next((name for name in PREFERRED if name in paths), None)
    opened = {name for name in paths if is_entry_point(name) and name not in file_status}  # added ones
    if first is not None and file_status.get(first) is not FileStatus.MATCH:
        opened.add(first)
    required = {t.name for f in reference.files if f.has_layout and "/" not in f.path for t in f.tensors}
    ref_digests = {(t.name, t.blake3, t.dtype, t.shape) for f in reference.files for t in f.tensors}
    found = {(r.candidate_file or r.file, r.name) for r in outcome.results if r.file is not None and r.status in FOUND}
    reasons: list[str] = []
    for name in sorted(opened):
        if name.endswith(".json"):
            index = next((i for i in candidate.indexes if i.path == name), None)
            placed = {e.tensor for e in index.entries} if index is not None else required
        else:
            held = next((f for f in candidate.files if f.path == name), None)
            if held is None or held.error is not None:  # damage: judged as such
                continue
            own = name in file_status  # the release's own file: its changed tensors are reported as such
            placed = {  # flat names only: a tensor nested in an object tree is not the key a loader looks up
                t.name
                for t in held.tensors
                if t.path is None
                and (own or (name, t.name) in found or (t.name, t.blake3, t.dtype, t.shape) in ref_digests)
            }
        absent = sorted(required - placed)
        if absent:
            reasons.append(
                f"{name} is what from_pretrained {'loads' if name == first else 'may load'}, and it does not hold "
                f"{_plural(len(absent), 'tensor')} of the release: {_names(absent)}"
            )
    return reasons


def is_entry_point(path: str) -> bool:
    """A top-level file from_pretrained opens by name, with or without a variant (model.fp16.safetensors,
    pytorch_model.bin.index.fp16.json), rather than because an index sends it there."""
    return "/" not in path and any(fnmatch.fnmatchcase(path, pattern) for pattern in ENTRY_POINTS)


def _container_change(reference: Checkpoint, candidate: Checkpoint) -> str:
    if candidate.in_another_layout:
        return "another layout"
    ref_w = {f.path for f in reference.files if f.role is Role.WEIGHTS}
    cand_w = {f.path for f in candidate.files if f.role is Role.WEIGHTS}
    if len(ref_w) != len(cand_w):
        return f"re-sharded from {_plural(len(ref_w), 'file')} into {len(cand_w)}"
    if ref_w != cand_w:
        return "weight files renamed"
    return "headers, metadata or tensor order differ"


def _match_tensors(reference: Checkpoint, candidate: Checkpoint, file_status: dict[str, FileStatus]) -> _TensorOutcome:
    pool = [_Located(f.path, t) for f in candidate.files for t in f.tensors]
    by_name: dict[tuple[str, TreePath | None], list[int]] = defaultdict(list)
    by_content: dict[tuple[str | None, str, tuple[int, ...]], list[int]] = defaultdict(list)
    for i, c in enumerate(pool):
        by_name[c.tensor.key].append(i)  # a nested tensor is not the flat name its dotted path spells
        if c.tensor.intact:
            by_content[(c.tensor.blake3, c.tensor.dtype, c.tensor.shape)].append(i)
    used: set[int] = set()
    ref_tensors = [(f, t) for f in reference.files if f.has_layout for t in f.tensors]
    hits: dict[tuple[str, str], int] = {}

    skip: dict[int, int] = {}  # per list of options: how many leading ones are used (claimed in order)

    def claim(key: tuple[str, str], options: list[int], accept: Callable[[_Located], bool]) -> None:
        first = skip.get(id(options), 0)
        while first < len(options) and options[first] in used:  # many copies of one name or digest: linear
            first += 1
        skip[id(options)] = first
        for j in range(first, len(options)):
            i = options[j]
            if i not in used and accept(pool[i]):
                used.add(i)
                hits[key] = i
                return

    # Preference order: the reference's own file, then a bit-identical copy, then any copy by that name.
    for f, t in ref_tensors:
        claim((f.path, t.name), by_name.get(t.key, []), lambda c: c.file == f.path)  # noqa: B023 - called at once
    for f, t in ref_tensors:
        if (f.path, t.name) not in hits:
            claim((f.path, t.name), by_name.get(t.key, []), lambda c: c.tensor.blake3 == t.blake3)  # noqa: B023
    for f, t in ref_tensors:
        if (f.path, t.name) not in hits:
            claim((f.path, t.name), by_name.get(t.key, []), lambda c: c.tensor.intact)
    for f, t in ref_tensors:
        if (f.path, t.name) not in hits:
            claim((f.path, t.name), by_name.get(t.key, []), lambda c: True)
    renamed: set[tuple[str, str]] = set()
    for f, t in ref_tensors:
        if (f.path, t.name) not in hits:
            claim((f.path, t.name), by_content.get((t.blake3, t.dtype, t.shape), []), lambda c: True)
            if (f.path, t.name) in hits:
                renamed.add((f.path, t.name))

    outcome = _TensorOutcome()
    status_of: dict[tuple[str, str], TensorStatus] = {}
    for f, t in ref_tensors:
        key = (f.path, t.name)
        if key not in hits:
            status_of[key] = TensorStatus.MISSING
            outcome.results.append(TensorResult(t.name, TensorStatus.MISSING, f.path, t.dtype, t.shape))
            continue
        c = pool[hits[key]]
        figures: Figures = None
        proven: bool | None = None
        outcome.hits.add((c.file, c.tensor.name))
        if key in renamed:  # outside a layout's mapping: a loader asking for the release's name finds nothing
            status, detail = TensorStatus.MODIFIED, _renamed(t, c.tensor)
            outcome.renamed.append((t.name, c.tensor.name))
        elif not c.tensor.intact:
            status, detail = TensorStatus.CORRUPT, c.tensor.damage or "cut short"
        elif (c.tensor.blake3, c.tensor.dtype, c.tensor.shape) == (t.blake3, t.dtype, t.shape):
            status, detail = TensorStatus.MATCH, None
        else:
            status, detail, figures, *loose = classify(t, c.tensor)
            # False: a quantization within a searching quantizer's error, or a cast nothing can judge; True: a
            # change proven to derive from the release (its values round to the release's)
            proven = loose[0] if loose else None
        status_of[key] = status
        outcome.results.append(
            TensorResult(
                t.name,
                status,
                f.path,
                t.dtype,
                t.shape,
                c.tensor.name if key in renamed else None,
                c.file if c.file != f.path else None,
                detail,
                c.tensor.dtype if status in (TensorStatus.CAST, TensorStatus.QUANTIZED) else None,
                None if figures is None else _finite(figures[0]),
                None if figures is None else _finite(figures[1]),
                proven,
            )
        )

    # Why is a tensor missing? Its shard is gone (and none of that shard's tensors turned up elsewhere, or
    # an unreadable candidate file may have held them), or the candidate's own index puts it in a lost file.
    # Otherwise it was removed from complete, well-formed files.
    partly_found = {path for (path, _), status in status_of.items() if status is not TensorStatus.MISSING}
    cand_lost = {f.path for f in candidate.files if f.error is not None}
    cand_paths = {f.path for f in candidate.files}
    unreadable = any(f.error is not None and not f.tensors for f in candidate.files if f.role is Role.WEIGHTS)
    elsewhere = candidate.in_another_layout
    for f, t in ref_tensors:
        if status_of[(f.path, t.name)] is not TensorStatus.MISSING:
            continue
        shard_gone = file_status[f.path] in (FileStatus.MISSING, FileStatus.CORRUPT)
        indexed = candidate.weight_map.get(t.name)
        if indexed is not None and indexed in cand_paths and indexed not in cand_lost and elsewhere:
            outcome.removed.append(t.name)  # another layout places it in a file that is whole
        elif (shard_gone and (f.path not in partly_found or unreadable)) or (
            indexed is not None and (indexed not in cand_paths or indexed in cand_lost)
        ):
            outcome.lost.append(t.name)
        else:
            outcome.removed.append(t.name)

    # Candidate tensors left over: another copy of a tensor already matched changes nothing; a new intact
    # tensor was added; a tensor named only by a cut-short header is damage, not an addition.
    if not reference.tensor_level:  # a reference that lists files only: tensors are neither added nor removed
        return outcome
    ref_digests = {(t.key, t.blake3, t.dtype, t.shape) for _, t in ref_tensors}  # a loader loads all of these
    ref_names = {t.key for _, t in ref_tensors}
    unlaid = {f.path for f in reference.files if not f.has_layout}  # compared as whole files only
    for i, c in enumerate(pool):
        if i in used or c.file in unlaid:
            continue
        t = c.tensor
        if t.intact and (t.key, t.blake3, t.dtype, t.shape) in ref_digests:
            status, detail = TensorStatus.EXTRA, "another copy of a tensor already matched"
            outcome.harmless.add((c.file, t.name))
        elif not t.intact and t.key in ref_names:
            status, detail = TensorStatus.EXTRA, "cut-short copy of a tensor already matched"
            outcome.harmless.add((c.file, t.name))
        elif t.intact:
            status, detail = TensorStatus.EXTRA, None
            outcome.added.append(t.name)
            outcome.foreign.setdefault(c.file, []).append(t.name)
        else:
            status, detail = TensorStatus.CORRUPT, "declared by a cut-short file; not in the reference"
            outcome.foreign.setdefault(c.file, []).append(t.name)
        outcome.results.append(TensorResult(t.name, status, None, t.dtype, t.shape, None, c.file, detail))
    return outcome


# Sampled relative change a K-quant of the same values stays within (the legacy types are held to their grid)
QUANT_TOLERANCE = {"Q6_K": 0.04, "Q5_K": 0.08, "Q4_K": 0.15}
CAST_TOLERANCE = {"F16": 2.0**-10, "BF16": 2.0**-7, "F32": 2.0**-23, "F64": 2.0**-52}  # half an ulp, relative


WIDER = {"F16": ("F32", "F64"), "BF16": ("F32", "F64"), "F32": ("F64",)}  # dtypes that hold every value exactly
Figures = tuple[float, float] | None  # (relative change, correlation) on the sketches' samples
Classified = tuple[TensorStatus, str, Figures] | tuple[TensorStatus, str, Figures, bool]  # bool: see `proven`
DERIVED = 0.5  # a sampled correlation at least this high: the tensor derives from the release's
LOOSE_CORRELATION = 0.9  # a quantization that searches its scales still tracks the release's values this closely


def classify(ref: TensorFingerprint, cand: TensorFingerprint) -> Classified:
    """A tensor that is not bit-identical: a proven cast, values within a cast's rounding, a quantization,
    or a change with figures, from the sketches when both sides have them. A fourth element, False, marks
    a quantization that is consistent with the release but cannot rule out a change below its error."""
    if cand.shape != ref.shape:
        return TensorStatus.MODIFIED, _difference(ref, cand), None
    if cand.dtype != ref.dtype:
        if ref.sketch is not None and ref.sketch.casts.get(cand.dtype) == cand.blake3:
            return TensorStatus.CAST, f"exact {ref.dtype} to {cand.dtype} cast (proven by digest)", None
        if cand.sketch is not None and cand.sketch.casts.get(ref.dtype) == ref.blake3:
            lossless = cand.sketch.lossless
            if lossless is not None and ref.dtype in lossless:  # every value is a ref.dtype value: the release's
                detail = f"the release's {ref.dtype} values in {cand.dtype} (they round back exactly)"
                return TensorStatus.CAST, detail, None
            if lossless is not None and cand.dtype in WIDER.get(ref.dtype, ()):  # an upcast is always lossless
                detail = (
                    f"dtype {cand.dtype}, expected {ref.dtype}: the values round to the release's but are not its "
                    f"values widened (a change within {ref.dtype}'s rounding)"
                )
                return TensorStatus.MODIFIED, detail, _sampled(ref, cand), True
    if ref.sketch is None and cand.dtype != ref.dtype:  # a cast or a change: the release's numbers cannot tell
        detail = (
            f"dtype {cand.dtype}, expected {ref.dtype}: the reference has no sketch of it, so a conversion cannot "
            f"be told from a change (a sketched manifest would decide)"
        )
        return TensorStatus.MODIFIED, detail, None, False
    if ref.sketch is None or cand.sketch is None or not ref.sketch.sample:
        return TensorStatus.MODIFIED, _difference(ref, cand), None
    change, correlation = compare_samples(ref.sketch.sample, cand.sketch.sample)
    size = len(ref.sketch.sample)
    broken = not_numbers(ref.sketch.sample, cand.sketch.sample)
    if broken:  # NaN or Inf where the release has numbers: no cast or quantization makes those
        detail = f"{broken} of {size} sampled values are NaN or Inf where the release's are numbers"
        return TensorStatus.MODIFIED, detail, (change, correlation)
    figures = f"relative change {change:.2%}, correlation {correlation:.3f} (sampled)"
    grid = cand.sketch.grid
    if grid is not None and len(grid.steps) == size:  # each sample's level checked against the release's value
        misses = off_grid(ref.sketch.sample, cand.sketch.sample, grid)
        if misses.faithful():
            detail = (
                f"{cand.dtype} quantization of the release's values: each of {size} sampled values is on the level "
                f"nearest the release's (sampled change {change:.2%})"
            )
            return TensorStatus.QUANTIZED, detail, (change, correlation)
        if misses.consistent(grid) and correlation >= LOOSE_CORRELATION:
            detail = (
                f"{cand.dtype} quantization with an importance matrix, consistent with the release's values "
                f"({misses.off} of {size} samples a level off the nearest, as such quantizers leave them; sampled "
                f"change {change:.2%}): a change smaller than its error cannot be ruled out"
            )
            return TensorStatus.QUANTIZED, detail, (change, correlation), False
        off = misses.off or misses.unspanned
        what = "not on the level nearest the release's" if misses.off else "in blocks scaled beyond their values"
        detail = f"{off} of {size} sampled values are {what} ({cand.dtype}): {figures}"
        return TensorStatus.MODIFIED, detail, (change, correlation)
    tolerance = QUANT_TOLERANCE.get(cand.dtype)
    if tolerance is not None and change <= tolerance and correlation >= LOOSE_CORRELATION:
        detail = (
            f"{cand.dtype} quantization consistent with the release's values (sampled change {change:.2%}, within "
            f"the type's error): a change smaller than that error cannot be ruled out"
        )
        return TensorStatus.QUANTIZED, detail, (change, correlation), False
    narrower = max(CAST_TOLERANCE.get(ref.dtype, 0.0), CAST_TOLERANCE.get(cand.dtype, 0.0))
    if cand.dtype in WIDER.get(ref.dtype, ()):
        narrower = 0.0  # an upcast keeps every value: a sampled value that moved is a change, not rounding
    if cand.dtype != ref.dtype and change <= narrower:
        detail = f"values within {cand.dtype} rounding of the release's (sampled: {change:.1e})"
        return TensorStatus.CAST, detail, (change, correlation)
    if change == 0:
        size = len(ref.sketch.sample)
        detail = f"values differ, but none of the {size} sampled values changed (a sparse change)"
        return TensorStatus.MODIFIED, detail, (change, correlation)
    figures = f"relative change {change:.2%}, correlation {correlation:.3f} (sampled)"
    prefix = f"dtype {cand.dtype}, expected {ref.dtype}; " if cand.dtype != ref.dtype else ""
    return TensorStatus.MODIFIED, f"{prefix}values differ: {figures}", (change, correlation)


def _renamed(ref: TensorFingerprint, cand: TensorFingerprint) -> str:
    """Why the release's numbers under another name (or nested otherwise in a PyTorch object tree) do not load."""
    if cand.name != ref.name or cand.path == ref.path:
        return f"the release's numbers under another name ({cand.name})"

    def where(path: TreePath | None) -> str:
        return "as one key" if path is None else "nested under keys " + " / ".join(repr(k) for k in path)

    return (
        f"the release's numbers {where(cand.path)} in the candidate's object tree, where the release has them "
        f"{where(ref.path)}: a loader looking up {ref.name!r} does not find them"
    )


def _sampled(ref: TensorFingerprint, cand: TensorFingerprint) -> Figures:
    """(relative change, correlation) on the samples, when both sides have them."""
    if ref.sketch is None or cand.sketch is None or not ref.sketch.sample:
        return None
    return compare_samples(ref.sketch.sample, cand.sketch.sample)


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _difference(ref: TensorFingerprint, cand: TensorFingerprint) -> str:
    if cand.dtype != ref.dtype:
        return f"dtype {cand.dtype}, expected {ref.dtype}"
    if cand.shape != ref.shape:
        return f"shape {list(cand.shape)}, expected {list(ref.shape)}"
    return "values differ"
