"""Which candidate tensor stands for each reference tensor, and what became of the rest.

Tensors are matched by name (the copy in the reference's own file first, then a copy with the same
digest, then an intact copy, then any copy), then by digest under another name, so re-sharded, renamed
and re-ordered copies are recognised as the same numbers and a leftover duplicate of a shard changes
nothing. A reference tensor found nowhere is lost with its shard or was removed; a candidate tensor
left over is a harmless copy, an addition, or damage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from manifests.records import Checkpoint, FileFingerprint, Role, Sketch, TensorFingerprint, TreePath
from provenance._judging.classify import DERIVED, Figures, classify, finite, renamed
from provenance.report import FileStatus, TensorResult, TensorStatus

FOUND = (TensorStatus.MATCH, TensorStatus.CAST, TensorStatus.QUANTIZED)  # statuses of a tensor that is there

_Key = tuple[str, str]  # (file, tensor name)


@dataclass(frozen=True, slots=True)
class _Located:
    file: str
    tensor: TensorFingerprint


@dataclass
class TensorOutcome:
    """Every reference tensor's result and the candidate's leftovers, with the lists the verdict reads."""

    results: list[TensorResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # missing from complete, well-formed files
    lost: list[str] = field(default_factory=list)  # missing with a shard that is gone or cut short
    added: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (release name, candidate name)
    hits: set[_Key] = field(default_factory=set)  # (file, name) of each candidate copy judged
    harmless: set[_Key] = field(default_factory=set)  # (file, name) of leftover copies of the release's
    foreign: dict[str, list[str]] = field(default_factory=dict)  # file -> tensors that are not the release's
    # Names of changed tensors of the release's dtype and shape whose values no sample compared: a fine-tune
    # of the release or other weights of its shape, which only sketches tell apart
    unsampled: list[str] = field(default_factory=list)
    # names of tensors found, or changed but derived, that show derivation (not trivial)
    telling: set[str] = field(default_factory=set)


class _Claims:
    """Candidate copies claimed for reference tensors, each copy at most once, in preference order."""

    def __init__(self, pool: list[_Located]) -> None:
        self.pool = pool
        self.used: set[int] = set()
        self.hits: dict[_Key, int] = {}
        self.renamed: set[_Key] = set()
        self._skip: dict[int, int] = {}  # per list of options: how many leading ones are used (claimed in order)

    def claim(self, key: _Key, options: list[int], accept: Callable[[_Located], bool]) -> None:
        first = self._skip.get(id(options), 0)
        while first < len(options) and options[first] in self.used:  # many copies of one name or digest: linear
            first += 1
        self._skip[id(options)] = first
        for j in range(first, len(options)):
            i = options[j]
            if i not in self.used and accept(self.pool[i]):
                self.used.add(i)
                self.hits[key] = i
                return


def _claim_all(pool: list[_Located], ref_tensors: list[tuple[FileFingerprint, TensorFingerprint]]) -> _Claims:
    """Preference order: the reference's own file, then a bit-identical copy, then any copy by that name,
    then the same numbers under another name."""
    by_name: dict[tuple[str, TreePath | None], list[int]] = defaultdict(list)
    by_content: dict[tuple[str | None, str, tuple[int, ...]], list[int]] = defaultdict(list)
    for i, c in enumerate(pool):
        by_name[c.tensor.key].append(i)  # a nested tensor is not the flat name its dotted path spells
        if c.tensor.intact:
            by_content[(c.tensor.blake3, c.tensor.dtype, c.tensor.shape)].append(i)
    claims = _Claims(pool)
    for f, t in ref_tensors:
        claims.claim((f.path, t.name), by_name.get(t.key, []), lambda c: c.file == f.path)  # noqa: B023 - called at once
    for f, t in ref_tensors:
        if (f.path, t.name) not in claims.hits:
            claims.claim((f.path, t.name), by_name.get(t.key, []), lambda c: c.tensor.blake3 == t.blake3)  # noqa: B023
    for f, t in ref_tensors:
        if (f.path, t.name) not in claims.hits:
            claims.claim((f.path, t.name), by_name.get(t.key, []), lambda c: c.tensor.intact)
    for f, t in ref_tensors:
        if (f.path, t.name) not in claims.hits:
            claims.claim((f.path, t.name), by_name.get(t.key, []), lambda c: True)
    for f, t in ref_tensors:
        key = (f.path, t.name)
        if key not in claims.hits:
            claims.claim(key, by_content.get((t.blake3, t.dtype, t.shape), []), lambda c: True)
            if key in claims.hits:
                claims.renamed.add(key)
    return claims


def match_tensors(reference: Checkpoint, candidate: Checkpoint, file_status: dict[str, FileStatus]) -> TensorOutcome:
    """Each reference tensor matched and judged, why the unmatched ones are missing, and the leftovers."""
    pool = [_Located(f.path, t) for f in candidate.files for t in f.tensors]
    ref_tensors = [(f, t) for f in reference.files if f.has_layout for t in f.tensors]
    claims = _claim_all(pool, ref_tensors)
    outcome = TensorOutcome()
    status_of = {(f.path, t.name): _judge(f, t, claims, outcome) for f, t in ref_tensors}
    _why_missing(candidate, ref_tensors, status_of, file_status, outcome)
    if reference.tensor_level:  # a reference that lists files only: tensors are neither added nor removed
        _left_over(reference, pool, claims.used, ref_tensors, outcome)
    return outcome


def _judge(f: FileFingerprint, t: TensorFingerprint, claims: _Claims, outcome: TensorOutcome) -> TensorStatus:
    """One reference tensor's result, from the candidate copy claimed for it (if any)."""
    key = (f.path, t.name)
    if key not in claims.hits:
        outcome.results.append(TensorResult(t.name, TensorStatus.MISSING, f.path, t.dtype, t.shape))
        return TensorStatus.MISSING
    c = claims.pool[claims.hits[key]]
    figures: Figures = None
    proven: bool | None = None
    outcome.hits.add((c.file, c.tensor.name))
    moved = key in claims.renamed
    if moved:  # outside a layout's mapping: a loader asking for the release's name finds nothing
        status, detail = TensorStatus.MODIFIED, renamed(t, c.tensor)
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
        if status is TensorStatus.MODIFIED and figures is None and proven is None and _same_kind(t, c.tensor):
            outcome.unsampled.append(t.name)
    derived = proven is True or (figures is not None and figures[1] >= DERIVED)  # a change of the release's
    if (status in FOUND or derived) and _telling(t, c.tensor):
        outcome.telling.add(t.name)
    outcome.results.append(
        TensorResult(
            t.name,
            status,
            f.path,
            t.dtype,
            t.shape,
            c.tensor.name if moved else None,
            c.file if c.file != f.path else None,
            detail,
            c.tensor.dtype if status in (TensorStatus.CAST, TensorStatus.QUANTIZED) else None,
            None if figures is None else finite(figures[0]),
            None if figures is None else finite(figures[1]),
            proven,
        )
    )
    return status


def _same_kind(ref: TensorFingerprint, cand: TensorFingerprint) -> bool:
    return (cand.dtype, cand.shape) == (ref.dtype, ref.shape)


def _telling(ref: TensorFingerprint, cand: TensorFingerprint) -> bool:
    """Whether a tensor found or derived shows that the candidate derives from the release: not when it is trivial (one
    value repeated, as norms at initialisation, or empty), which unrelated models of one shape share. Known
    from a sketch on either side; without one, only a matrix counts (a vector may be such a constant)."""
    sketch = ref.sketch or cand.sketch
    if sketch is None:
        return len(ref.shape) >= 2 and all(ref.shape)
    return not constant(sketch)


def constant(sketch: Sketch) -> bool:
    """One value repeated (or none): what any model of the shape may hold."""
    return sketch.count <= 1 or (sketch.min == sketch.max and sketch.nans + sketch.infs == 0)


def _why_missing(
    candidate: Checkpoint,
    ref_tensors: list[tuple[FileFingerprint, TensorFingerprint]],
    status_of: dict[_Key, TensorStatus],
    file_status: dict[str, FileStatus],
    outcome: TensorOutcome,
) -> None:
    """Why is a tensor missing? Its shard is gone (and none of that shard's tensors turned up elsewhere, or
    an unreadable candidate file may have held them), or the candidate's own index puts it in a lost file.
    Otherwise it was removed from complete, well-formed files."""
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


def _left_over(
    reference: Checkpoint,
    pool: list[_Located],
    used: set[int],
    ref_tensors: list[tuple[FileFingerprint, TensorFingerprint]],
    outcome: TensorOutcome,
) -> None:
    """Candidate tensors left over: another copy of a tensor already matched changes nothing; a new intact
    tensor was added; a tensor named only by a cut-short header is damage, not an addition."""
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
