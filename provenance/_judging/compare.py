"""Compare a candidate's files and tensors with a reference's, and say what that finds.

Files are compared by whatever both sides record, tensors are matched (matching.py) and classified
(classify.py), what a loader would load is checked (loading.py), and the results are translated into
findings for the one verdict function (verdict.py). A tensor absent because its shard is missing or cut
short makes the checkpoint incomplete; one absent from complete, well-formed containers was removed,
which is a modification (DESIGN.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from manifests.records import Checkpoint, FileFingerprint, Role
from provenance._judging.classify import DERIVED
from provenance._judging.collisions import overrule
from provenance._judging.loading import loading_problems
from provenance._judging.matching import FOUND, TensorOutcome, match_tensors
from provenance._judging.side_files import by_meaning
from provenance._judging.verdict import Findings, Judgement, decide
from provenance._judging.wording import are, names, plural
from provenance.errors import ProvenanceError
from provenance.report import FileResult, FileStatus, Report, TensorResult, TensorStatus

__all__ = ["DERIVED", "FOUND", "compare", "file_status_of", "judge"]


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
    return judge(reference, candidate).report(reference=reference_label, candidate=candidate_label, evidence=evidence)


def judge(reference: Checkpoint, candidate: Checkpoint) -> Judgement:
    """The verdict on a candidate against a reference, with every file's and tensor's result."""
    if not reference.files:
        raise ProvenanceError("the reference lists no files: nothing can be verified against it")
    files, file_status = _file_results(reference, candidate)
    outcome = match_tensors(reference, candidate, file_status)
    files = by_meaning(reference, candidate, files, file_status, outcome.results)  # settings files, key by key
    if candidate.in_another_layout:  # the release's files are absent by construction: say when that costs nothing
        lost = {t.file for t in outcome.results if t.file is not None and t.status not in FOUND}
        files = [
            dataclasses.replace(r, detail="its tensors are in the candidate's layout")
            if r.status is FileStatus.MISSING and r.role == Role.WEIGHTS.value and r.name not in lost
            else r
            for r in files
        ]
    verdict, reasons = decide(_Compared(reference, candidate, files, file_status, outcome).findings())
    verdict, reasons, marked = overrule(verdict, tuple(reasons), files)  # every check on files judges names alike
    files = list(marked)
    facts = {}
    if candidate.set_aside:  # the user's --ignore: listed, neither compared nor counted
        aside = list(candidate.set_aside)
        reasons = (*reasons, f"{plural(len(aside), 'file')} set aside by --ignore: {names(aside)}")
        facts["ignored"] = {"files": aside}
    return Judgement(verdict, reasons, tuple(files), tuple(outcome.results), facts)


def _digests(f: FileFingerprint, ref: FileFingerprint) -> tuple[tuple[str, str], ...]:
    """The whole-file digests `f` records of the kinds the reference records (a container read part by
    part has no whole-file SHA-256: its container digest, over all but the tensor data, stands for it)."""
    found = {a: d for a, d in f.digests.items() if a in ref.digests}
    if f.container_blake3 is not None and ref.container_blake3 is not None:
        found["container_blake3"] = f.container_blake3
    return tuple(sorted(found.items()))


def _file_results(reference: Checkpoint, candidate: Checkpoint) -> tuple[list[FileResult], dict[str, FileStatus]]:
    """Each reference file's status, then the candidate's extra files."""
    cand_by_path = {f.path: f for f in candidate.files}
    ref_paths = {f.path for f in reference.files}
    files: list[FileResult] = []
    file_status: dict[str, FileStatus] = {}
    for ref in reference.files:
        cand = cand_by_path.get(ref.path)
        status, detail = (FileStatus.MISSING, None) if cand is None else file_status_of(ref, cand)
        file_status[ref.path] = status
        result = FileResult(ref.path, status, ref.role.value, cand.size if cand else None, ref.size, detail)
        if cand is not None and status in (FileStatus.MODIFIED, FileStatus.CORRUPT):
            result = dataclasses.replace(result, expected_digests=_digests(ref, ref), digests=_digests(cand, ref))
        files.append(result)
    for cand in candidate.files:
        if cand.path not in ref_paths and not (cand.rebuilt and cand.size is None):  # not a made-up table
            detail = cand.hazard or cand.error
            files.append(FileResult(cand.path, FileStatus.EXTRA, cand.role.value, cand.size, None, detail))
    return files, file_status


@dataclass(frozen=True)
class _Compared:
    """A finished comparison, read for the verdict: each method says one kind of finding."""

    reference: Checkpoint
    candidate: Checkpoint
    files: list[FileResult]
    file_status: dict[str, FileStatus]
    outcome: TensorOutcome

    def findings(self) -> Findings:
        changes = tuple(self._changes())
        blind = self.blind
        return Findings(
            unrelated=None if blind else self._unrelated(),
            changes=() if blind else changes,  # derived or not: what differs cannot be called a modification
            facts=changes[1 if self.changed else 0 :] if blind else (),  # the changed tensors: named in the doubt
            losses=tuple(self._losses()),
            doubts=(*self._unplaced(), *self._doubts()),
            conversion=self._conversion(),
            equivalence=self._equivalence(),
            identity="every reference file is present and byte-identical",
        )

    @cached_property
    def ref_tensors(self) -> list[TensorResult]:
        return [t for t in self.outcome.results if t.file is not None]

    @cached_property
    def unjudged(self) -> list[TensorResult]:
        """Tensors in another dtype the reference cannot judge (no sketch): neither found nor changed."""
        return [t for t in self.ref_tensors if t.status is TensorStatus.MODIFIED and t.proven is False]

    @cached_property
    def changed(self) -> list[str]:
        moved = {name for name, _ in self.outcome.renamed}
        return [
            t.name
            for t in self.ref_tensors
            if t.status is TensorStatus.MODIFIED and t.name not in moved and t.proven is not False
        ]

    @cached_property
    def corrupt(self) -> list[str]:
        return [t.name for t in self.outcome.results if t.status is TensorStatus.CORRUPT]

    @cached_property
    def casts(self) -> list[TensorResult]:
        return [t for t in self.ref_tensors if t.status in (TensorStatus.CAST, TensorStatus.QUANTIZED)]

    @cached_property
    def cand_intact(self) -> int:
        return sum(1 for f in self.candidate.files for t in f.tensors if t.intact)

    @cached_property
    def underived(self) -> bool:
        """Nothing shows that the candidate derives from the reference, and something differs. Trivial tensors
        (one value repeated, as norms at initialisation; empty ones) are shared by unrelated models of one
        shape; a found tensor that is not (a trained norm, any matrix), a proven cast, sampled values that track
        the release's, the release's numbers under another name all show derivation."""
        ref_tensors, outcome = self.ref_tensors, self.outcome
        has_matrices = any(len(t.shape) >= 2 and all(t.shape) for t in ref_tensors)
        derived = [  # fine-tuned: sampled values that track the release's, or values that round to them
            t for t in ref_tensors if (t.correlation is not None and t.correlation >= DERIVED) or t.proven is True
        ]
        found = [t for t in ref_tensors if t.status in FOUND]
        telling = [t for t in [*found, *derived] if t.name in outcome.telling or not has_matrices]
        moved_names = {name for name, _ in outcome.renamed}
        moved = [t for t in ref_tensors if t.name in moved_names]  # the release's numbers, under other names
        if (
            not ref_tensors
            or not self.cand_intact
            or telling
            or any(not has_matrices or len(t.shape) >= 2 for t in moved)
        ):
            return False
        if self.changed or outcome.added:
            return True
        if outcome.lost:  # gone with a shard: incomplete, not a sign of other weights
            return False
        # Something differs: a tensor the reference cannot judge, or one removed. A copy whose every tensor
        # is found (trivial ones included: a release of constants) is the release's, not other weights.
        return any(t.status in (TensorStatus.MODIFIED, TensorStatus.MISSING) for t in ref_tensors)

    def _unrelated(self) -> str | None:
        """Nothing of the candidate matches or derives from the reference, and the samples say so."""
        if not self.underived:
            return None
        found = any(t.status in FOUND for t in self.ref_tensors)
        return f"none of the candidate's {plural(self.cand_intact, 'tensor')} matches a reference tensor" + (
            " (apart from trivial tensors any model of this shape may share)" if found else ""
        )

    @cached_property
    def blind(self) -> bool:
        """Nothing shows derivation, and tensors differ that no sample compares (of the release's dtype and
        shape) or that the reference cannot judge (another dtype): a fine-tune, a lossy cast and other weights
        of that shape look alike, so neither `modified` nor `unrelated` is claimed."""
        return self.underived and bool(self.outcome.unsampled or self.unjudged)

    def _unplaced(self) -> list[str]:
        """The doubt about tensors of the release's dtype and shape that differ, when nothing places them."""
        unsampled = self.outcome.unsampled
        if not self.blind or not unsampled:
            return []
        ref_by_name = {t.name: t for f in self.reference.files for t in f.tensors}
        plain = any(ref_by_name[name].sketch is None for name in unsampled if name in ref_by_name)
        would = (
            "the manifest has no sketches: a sketched manifest (fingerprint without --no-sketches) would decide"
            if plain
            else "the candidate's tensors have no sketches: verifying the files themselves would decide"
        )
        return [
            f"{plural(len(unsampled), 'tensor')} {'differs' if len(unsampled) == 1 else 'differ'} from the release's "
            "in the same dtype and shape and no "
            f"other tensor shows derivation ({names(unsampled)}): a fine-tune of the release cannot be told from "
            f"other weights of its shape; {would}"
        ]

    def _changes(self) -> list[str]:
        """Tensors changed, moved, added or removed; what a loader would load instead; other files changed."""
        outcome = self.outcome
        changes: list[str] = []
        if self.changed:
            changes.append(f"{plural(len(self.changed), 'tensor')} changed: {names(self.changed)}")
        if outcome.renamed:
            moves = [
                f"{name} as {theirs}" if theirs != name else f"{name} nested otherwise in the object tree"
                for name, theirs in outcome.renamed
            ]
            changes.append(
                f"{plural(len(moves), 'tensor')} under another name, outside a layout's mapping (a loader asking "
                f"for the release's name finds nothing): {names(moves)}"
            )
        if outcome.added:
            changes.append(f"{plural(len(outcome.added), 'tensor')} added: {names(outcome.added)}")
        changes += loading_problems(self.reference, self.candidate, self.files, self.file_status, outcome)
        changes += self.candidate.layout_changes  # settings that disagree with the release's: another model
        if outcome.removed:
            changes.append(
                f"{plural(len(outcome.removed), 'tensor')} removed from complete files: {names(outcome.removed)}"
            )
        return changes + self._files_changed()

    def _files_changed(self) -> list[str]:
        """Files other than weights compared by tensor: refused ones, and those whose bytes differ. With
        whole-file digests only, an index beside the release's whole weights is the one change: a loader
        follows it (dropping a shard loads fresh values); beside other weights files it is a doubt."""
        reference = self.reference
        unlaid = {f.path for f in reference.files if not f.has_layout}
        weights_whole = all(
            self.file_status[f.path] is FileStatus.MATCH for f in reference.files if f.role is Role.WEIGHTS
        )
        refused = {f.path for f in self.candidate.files if f.error is not None and f.hazard is not None}
        changes: list[str] = []
        for r in self.files:
            if r.status is FileStatus.MODIFIED and r.name in refused:
                changes.append(f"{r.name} refused: {r.detail}")
            elif r.status is FileStatus.MODIFIED and (
                r.role == Role.OTHER.value
                or (r.name in unlaid and r.role != Role.INDEX.value)
                or (r.role == Role.INDEX.value and not reference.tensor_level and weights_whole)
            ):
                changes.append(f"{r.name} differs ({r.detail})")
        return changes

    @cached_property
    def lost_files(self) -> list[FileResult]:
        """Files missing or cut short that cost something. A lost weights file costs nothing when every
        tensor it held turned up elsewhere (re-sharded copies); in another layout the release's weights
        files are never there, and their tensors say what is missing."""
        not_found = {t.file for t in self.ref_tensors if t.status not in FOUND}
        held_elsewhere = {f.path for f in self.reference.files if f.has_layout and f.path not in not_found}
        elsewhere = self.candidate.in_another_layout
        return [
            r
            for r in self.files
            if r.status in (FileStatus.MISSING, FileStatus.CORRUPT)
            and r.role != Role.INDEX.value
            and r.name not in held_elsewhere
            and not (elsewhere and r.role == Role.WEIGHTS.value)
        ]

    def _losses(self) -> list[str]:
        gone = [r.name for r in self.lost_files if r.status is FileStatus.MISSING]
        losses = [f"{plural(len(gone), 'file')} missing: {names(gone)}"] if gone else []
        losses += [
            f"{r.name} cannot be read: {r.detail}" for r in self.lost_files if r.status is not FileStatus.MISSING
        ]
        if self.outcome.lost:
            lost = self.outcome.lost
            losses.append(f"{plural(len(lost), 'tensor')} missing with their shard: {names(lost)}")
        if self.corrupt:
            losses.append(f"{plural(len(self.corrupt), 'tensor')} not downloaded whole: {names(self.corrupt)}")
        return losses

    def _doubts(self) -> list[str]:
        """What the evidence cannot settle, each with what would decide it."""
        doubts = self._file_level_doubts() + list(self.candidate.layout_doubts)  # settings not checked
        if self.unjudged:
            doubts.append(
                f"{plural(len(self.unjudged), 'tensor')} in another dtype than the release's, which the reference "
                f"has no sketch of: a conversion cannot be told from a change "
                f"({names([t.name for t in self.unjudged])}); the manifest has no sketches: a sketched manifest "
                f"(fingerprint without --no-sketches) would decide"
            )
        loose = [t.name for t in self.casts if t.proven is False]
        if loose:
            doubts.append(
                f"{plural(len(loose), 'tensor')} quantized by a quantizer that searches its scales (K-quants, or an "
                f"importance matrix): consistent with the release's values, but a change smaller than the "
                f"quantization's error cannot be ruled out ({names(loose)}); a float copy would decide"
            )
        return doubts

    def _file_level_doubts(self) -> list[str]:
        """A file-level reference (a checksum list, a model_signing manifest) cannot see inside weights files:
        weights absent while others are present, or shard indexes it never listed, only a tensor-level
        manifest can judge."""
        if self.reference.tensor_level:
            return []
        lost_weights = [r for r in self.lost_files if r.role == Role.WEIGHTS.value]
        new_weights = [r for r in self.files if r.status is FileStatus.EXTRA and r.role == Role.WEIGHTS.value]
        doubts: list[str] = []
        if lost_weights and new_weights:
            doubts.append(
                f"the reference records whole-file digests only and the candidate holds its weights in "
                f"{plural(len(new_weights), 'other file')}: a tensor-level manifest would decide"
            )
        new_indexes = [r.name for r in self.files if r.status is FileStatus.EXTRA and r.role == Role.INDEX.value]
        if new_indexes:  # loading instructions the reference never listed, to places it cannot see into
            doubts.append(
                f"the reference records whole-file digests only, and the candidate adds shard indexes it cannot "
                f"check ({names(new_indexes)}): a tensor-level manifest would decide"
            )
        return doubts

    def _conversion(self) -> str | None:
        if not self.casts:
            return None
        kinds = sorted({f"{t.dtype} to {t.candidate_dtype}" for t in self.casts})
        return (
            f"{plural(len(self.casts), 'tensor')} {are(len(self.casts))} the release's values in another dtype "
            f"({', '.join(kinds)}); "
            f"{len(self.ref_tensors) - len(self.casts)} bit-identical"
        )

    def _equivalence(self) -> str | None:
        if all(status is FileStatus.MATCH for status in self.file_status.values()):
            return None  # identical
        return (
            f"all {plural(len(self.ref_tensors), 'tensor')} {are(len(self.ref_tensors))} bit-identical; "
            "only the container differs "
            f"({self._container_change()})"
        )

    def _container_change(self) -> str:
        if self.candidate.in_another_layout:
            return "another layout"
        ref_w = {f.path for f in self.reference.files if f.role is Role.WEIGHTS}
        cand_w = {f.path for f in self.candidate.files if f.role is Role.WEIGHTS}
        if len(ref_w) != len(cand_w):
            return f"re-sharded from {plural(len(ref_w), 'file')} into {len(cand_w)}"
        if ref_w != cand_w:
            return "weight files renamed"
        return "headers, metadata or tensor order differ"
