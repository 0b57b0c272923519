"""Match a candidate's files and tensors against a reference's and classify the difference.

Tensors are matched by name first, then by digest (same dtype and shape), so re-sharded, renamed and
re-ordered copies are recognised as the same numbers. The verdict then follows DESIGN.md: a tensor absent
because its shard is missing or cut short makes the checkpoint incomplete; one absent from complete,
well-formed containers was removed, which is a modification.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from provenance.errors import ProvenanceError
from provenance.fingerprint import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance.report import FileResult, FileStatus, Report, TensorResult, TensorStatus, Verdict

_NAMES_SHOWN = 3


@dataclass(frozen=True, slots=True)
class _Located:
    file: str
    tensor: TensorFingerprint


def _file_status(ref: FileFingerprint, cand: FileFingerprint) -> tuple[FileStatus, str | None]:
    if cand.error is not None:
        return FileStatus.CORRUPT, cand.error
    if ref.has_layout and cand.has_layout:  # both well-formed containers: compare them part by part
        ref_parts = [(t.start, t.end, t.blake3) for t in ref.tensors]
        cand_parts = [(t.start, t.end, t.blake3) for t in cand.tensors]
        same = ref.size == cand.size and ref.container_blake3 == cand.container_blake3 and ref_parts == cand_parts
        return (FileStatus.MATCH, None) if same else (FileStatus.MODIFIED, "bytes differ")
    if ref.size is not None and cand.size is not None and ref.size != cand.size:
        if cand.size < ref.size:  # what an unfinished download leaves
            return FileStatus.CORRUPT, f"short: {cand.size:,} of {ref.size:,} bytes"
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
    """Compare a candidate checkpoint with a reference and return the full report."""
    cand_by_path = {f.path: f for f in candidate.files}
    ref_paths = {f.path for f in reference.files}

    files: list[FileResult] = []
    file_status: dict[str, FileStatus] = {}
    for ref in reference.files:
        cand = cand_by_path.get(ref.path)
        if cand is None:
            status, detail = FileStatus.MISSING, None
        else:
            status, detail = _file_status(ref, cand)
        file_status[ref.path] = status
        files.append(FileResult(ref.path, status, ref.role.value, cand.size if cand else None, ref.size, detail))
    for cand in candidate.files:
        if cand.path not in ref_paths:
            files.append(FileResult(cand.path, FileStatus.EXTRA, cand.role.value, cand.size, None, cand.error))

    tensors, missing_unexplained, extras = _match_tensors(reference, candidate, file_status)

    reasons: list[str] = []
    modified = [t.name for t in tensors if t.status is TensorStatus.MODIFIED]
    matched = [t for t in tensors if t.status in (TensorStatus.MATCH, TensorStatus.CAST, TensorStatus.QUANTIZED)]
    missing = [t.name for t in tensors if t.status is TensorStatus.MISSING]
    corrupt = [t.name for t in tensors if t.status is TensorStatus.CORRUPT]
    ref_tensor_count = sum(len(f.tensors) for f in reference.files if f.has_layout)
    cand_intact = sum(1 for f in candidate.files for t in f.tensors if t.intact)

    changed_files = [r for r in files if r.status is FileStatus.MODIFIED and r.role == Role.OTHER.value]
    changed_unlaid = [
        r
        for r in files
        if r.status is FileStatus.MODIFIED and r.role == Role.WEIGHTS.value and not _has_layout(reference, r.name)
    ]
    # A lost weights file costs nothing when every tensor it held turned up elsewhere (re-sharded copies).
    held_elsewhere = {
        f.path
        for f in reference.files
        if f.has_layout and all(t.status is TensorStatus.MATCH for t in tensors if t.file == f.path)
    }
    lost_files = [
        r
        for r in files
        if r.status in (FileStatus.MISSING, FileStatus.CORRUPT)
        and r.role != Role.INDEX.value
        and r.name not in held_elsewhere
    ]

    if ref_tensor_count and cand_intact and not matched:
        verdict = Verdict.UNRELATED
        reasons.append(f"none of the candidate's {_plural(cand_intact, 'tensor')} matches a reference tensor")
    else:
        if modified:
            reasons.append(f"{_plural(len(modified), 'tensor')} changed: {_names(modified)}")
        if extras:
            reasons.append(f"{_plural(len(extras), 'tensor')} added: {_names(extras)}")
        if missing_unexplained:
            reasons.append(
                f"{_plural(len(missing_unexplained), 'tensor')} removed from complete files: "
                f"{_names(missing_unexplained)}"
            )
        for r in changed_files + changed_unlaid:
            reasons.append(f"{r.name} differs ({r.detail})")
        if reasons:
            verdict = Verdict.MODIFIED
        for r in lost_files:
            reasons.append(f"{r.name} is {'missing' if r.status is FileStatus.MISSING else r.detail}")
        explained = [n for n in missing if n not in set(missing_unexplained)]
        if explained:
            reasons.append(f"{_plural(len(explained), 'tensor')} missing with their shard: {_names(explained)}")
        if corrupt:
            reasons.append(f"{_plural(len(corrupt), 'tensor')} cut short: {_names(corrupt)}")
        if not modified and not extras and not missing_unexplained and not changed_files and not changed_unlaid:
            if lost_files or missing or corrupt:
                verdict = Verdict.INCOMPLETE
            elif all(file_status[p] is FileStatus.MATCH for p in ref_paths):
                verdict = Verdict.IDENTICAL
                reasons.append("every reference file is present and byte-identical")
            else:
                verdict = Verdict.EQUIVALENT
                reasons.append(
                    f"all {_plural(ref_tensor_count, 'tensor')} are bit-identical; only the container differs "
                    f"({_container_change(reference, candidate)})"
                )
    return Report(
        verdict=verdict,
        reasons=tuple(reasons),
        files=tuple(files),
        tensors=tuple(tensors),
        reference=reference_label,
        candidate=candidate_label,
        evidence=evidence,
    )


def _has_layout(checkpoint: Checkpoint, path: str) -> bool:
    found = checkpoint.file(path)
    return found is not None and found.has_layout


def _container_change(reference: Checkpoint, candidate: Checkpoint) -> str:
    ref_w = {f.path for f in reference.files if f.role is Role.WEIGHTS}
    cand_w = {f.path for f in candidate.files if f.role is Role.WEIGHTS}
    if len(ref_w) != len(cand_w):
        return f"re-sharded from {_plural(len(ref_w), 'file')} into {len(cand_w)}"
    if ref_w != cand_w:
        return "weight files renamed"
    return "headers, metadata or tensor order differ"


def _match_tensors(
    reference: Checkpoint, candidate: Checkpoint, file_status: dict[str, FileStatus]
) -> tuple[list[TensorResult], list[str], list[str]]:
    """Statuses of reference tensors, the missing ones not explained by a lost shard, and added ones."""
    by_name: dict[str, list[_Located]] = defaultdict(list)
    by_content: dict[tuple[str | None, str, tuple[int, ...]], list[_Located]] = defaultdict(list)
    for f in candidate.files:
        for t in f.tensors:
            located = _Located(f.path, t)
            by_name[t.name].append(located)
            if t.intact:
                by_content[(t.blake3, t.dtype, t.shape)].append(located)
    used: set[int] = set()

    def take(located: _Located) -> None:
        used.add(id(located))

    results: dict[tuple[str, str], TensorResult] = {}
    pending: list[tuple[FileFingerprint, TensorFingerprint]] = []
    ref_tensors = [(f, t) for f in reference.files if f.has_layout for t in f.tensors]
    for f, t in ref_tensors:
        hit = next((c for c in by_name.get(t.name, ()) if id(c) not in used), None)
        if hit is None:
            pending.append((f, t))
            continue
        take(hit)
        c = hit.tensor
        if not c.intact:
            status, detail = TensorStatus.CORRUPT, "cut short"
        elif (c.blake3, c.dtype, c.shape) == (t.blake3, t.dtype, t.shape):
            status, detail = TensorStatus.MATCH, None
        else:
            status, detail = TensorStatus.MODIFIED, _difference(t, c)
        results[(f.path, t.name)] = TensorResult(
            t.name, status, f.path, t.dtype, t.shape, None, hit.file if hit.file != f.path else None, detail
        )
    for f, t in pending:
        hit = next((c for c in by_content.get((t.blake3, t.dtype, t.shape), ()) if id(c) not in used), None)
        if hit is not None:
            take(hit)
            results[(f.path, t.name)] = TensorResult(
                t.name,
                TensorStatus.MATCH,
                f.path,
                t.dtype,
                t.shape,
                hit.tensor.name,
                hit.file if hit.file != f.path else None,
                "same numbers under another name",
            )
        else:
            results[(f.path, t.name)] = TensorResult(t.name, TensorStatus.MISSING, f.path, t.dtype, t.shape)

    # A missing tensor is explained by a lost shard when its reference file is gone (and none of that
    # file's tensors turned up elsewhere), when the candidate's own index puts it in a lost file, or when
    # some candidate weights file is unreadable (it may have held anything).
    found_elsewhere = {
        f.path
        for f in reference.files
        if any(results[(f.path, t.name)].status is not TensorStatus.MISSING for t in f.tensors)
    }
    cand_lost = {f.path for f in candidate.files if f.error is not None}
    cand_paths = {f.path for f in candidate.files}
    unreadable = any(f.error is not None and not f.tensors for f in candidate.files if f.role is Role.WEIGHTS)
    unexplained: list[str] = []
    for f, t in pending:
        if results[(f.path, t.name)].status is not TensorStatus.MISSING:
            continue
        shard_lost = file_status[f.path] in (FileStatus.MISSING, FileStatus.CORRUPT) and f.path not in found_elsewhere
        indexed = candidate.weight_map.get(t.name)
        index_lost = indexed is not None and (indexed not in cand_paths or indexed in cand_lost)
        if not (shard_lost or index_lost or unreadable):
            unexplained.append(t.name)

    tensors = [results[(f.path, t.name)] for f, t in ref_tensors]
    extras: list[str] = []
    unlaid = {f.path for f in reference.files if not f.has_layout}  # compared as whole files only
    for f in candidate.files:
        if f.path in unlaid:
            continue
        for t in f.tensors:
            if any(id(c) in used for c in by_name[t.name] if c.tensor is t):
                continue
            if t.intact:
                extras.append(t.name)
                tensors.append(TensorResult(t.name, TensorStatus.EXTRA, None, t.dtype, t.shape, None, f.path))
            else:  # named only by a damaged file's header: evidence of damage, not of an addition
                tensors.append(
                    TensorResult(
                        t.name,
                        TensorStatus.CORRUPT,
                        None,
                        t.dtype,
                        t.shape,
                        None,
                        f.path,
                        "declared by a cut-short file; not in the reference",
                    )
                )
    return tensors, unexplained, extras


def _difference(ref: TensorFingerprint, cand: TensorFingerprint) -> str:
    if cand.dtype != ref.dtype:
        return f"dtype {cand.dtype}, expected {ref.dtype}"
    if cand.shape != ref.shape:
        return f"shape {list(cand.shape)}, expected {list(ref.shape)}"
    return "values differ"
