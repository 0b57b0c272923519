"""Which known release is a checkpoint, or which does it derive from: every reference compared, ranked.

The candidate is read once with every digest any reference may need (BLAKE3 per tensor, and whole-file
SHA-256, MD5 and BLAKE3 for references that only list files); each reference then costs a comparison,
not a read. Exact matches (tensor digests, cast digests of sketched manifests) count first; a reference
that only lists files is matched by file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from provenance.compare import compare
from provenance.derive import sketch_mismatches
from provenance.engine import HashPlan
from provenance.fingerprint import Checkpoint
from provenance.formats.detect import is_weights_file
from provenance.report import FileStatus, Report, TensorStatus, Verdict
from provenance.scan import ProgressReporter, scan

_RANK = {
    Verdict.IDENTICAL: 0,
    Verdict.EQUIVALENT: 1,
    Verdict.CONVERTED: 2,
    Verdict.INCOMPLETE: 3,
    Verdict.MODIFIED: 4,
    Verdict.UNDECIDED: 5,
    Verdict.UNRELATED: 6,
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One known release, as it relates to the checkpoint."""

    release: str
    source: str
    verdict: Verdict
    share: float  # of the release's tensors (or files, for a file-level reference) found, exactly or cast
    how: str
    by_files: bool = False  # the reference lists files only: weaker evidence, ranked after tensor matches

    def as_dict(self) -> dict[str, object]:
        return {
            "release": self.release,
            "source": self.source,
            "verdict": self.verdict.value,
            "share": round(self.share, 4),
            "how": self.how,
        }


def _everything(path: str) -> HashPlan:
    whole = frozenset({"sha256", "md5", "blake3"})
    return HashPlan(whole, parts=is_weights_file(path))


def read_for_identify(target: Path, *, progress: ProgressReporter | None = None) -> Checkpoint:
    """The checkpoint with every digest a reference may use, in one read."""
    return scan(target, _everything, strict=False, progress=progress, label="reading")


def identify(
    candidate: Checkpoint, references: Iterable[tuple[str, str, Checkpoint]], root: Path | None = None
) -> list[Candidate]:
    """Every reference (release name, source, checkpoint) ranked by how much of it the candidate holds.

    With `root` (where the candidate's files are), a reference with sketches that shares any tensor with
    the candidate gets a second look at the tensors that differ (each read once, whatever the number of
    references), which tells a fine-tune of that release from an unrelated model.
    """
    ranked: list[Candidate] = []
    for release, source, reference in references:
        report = compare(reference, candidate, reference_label=release)
        if root is not None and _shares_any(report) and _sketched(reference):
            candidate = sketch_mismatches(root, reference, candidate)
            report = compare(reference, candidate, reference_label=release)
        ranked.append(_candidate(release, source, reference, report))
    ranked.sort(key=lambda c: (-c.share, c.by_files, _RANK[c.verdict], c.release))
    return ranked


def _shares_any(report: Report) -> bool:
    return any(t.status in (TensorStatus.MATCH, TensorStatus.CAST) and t.file is not None for t in report.tensors)


def _sketched(reference: Checkpoint) -> bool:
    return any(t.sketch is not None for f in reference.files for t in f.tensors)


def _candidate(release: str, source: str, reference: Checkpoint, report: Report) -> Candidate:
    tensors = [t for t in report.tensors if t.file is not None]
    if tensors:
        exact = sum(1 for t in tensors if t.status is TensorStatus.MATCH)
        cast = sum(1 for t in tensors if t.status is TensorStatus.CAST)
        derived = sum(1 for t in tensors if t.status is TensorStatus.MODIFIED and (t.correlation or 0) >= 0.5)
        how = f"{exact} of {len(tensors)} tensors bit-identical" + (f", {cast} cast" if cast else "")
        how += f", {derived} changed but derived" if derived else ""
        return Candidate(release, source, report.verdict, (exact + cast) / len(tensors), how)
    files = [f for f in report.files if f.status is not FileStatus.EXTRA]
    matched = sum(1 for f in files if f.status is FileStatus.MATCH)
    share = matched / len(files) if files else 0.0
    return Candidate(release, source, report.verdict, share, f"{matched} of {len(files)} files identical", True)
