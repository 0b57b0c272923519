"""Which known release is a checkpoint, or which does it derive from: every reference compared, ranked.

The candidate is read once with every digest any reference may need (BLAKE3 per tensor, and whole-file
SHA-256, MD5 and BLAKE3 for references that only list files); each reference then costs a comparison,
not a read. Exact matches (tensor digests, cast digests of sketched manifests, upcasts cast back to the
release's dtype) count first; then, for a
sketched reference whose tensors the candidate holds by name and shape but not bit for bit, the sketches'
samples tell a fine-tune (correlated values) from an unrelated model. A candidate in another layout (Meta's
shards, llama.cpp GGUF) is read in each reference's layout first. A reference that only lists files is
matched by file.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from manifests.records import Checkpoint, Role, is_weights_file
from manifests.reference import REGISTRY_PREFIX, registry_names
from manifests.trust import load_trust
from provenance._checks.common import ReadOptions, open_checked
from provenance._hashing.engine import HashPlan
from provenance._hashing.scan import ProgressReporter, scan
from provenance._judging.compare import DERIVED, FOUND, compare
from provenance._judging.derive import sketch_mismatches
from provenance._judging.matching import constant
from provenance._judging.wording import plural
from provenance._layouts import Adapted, comparable, in_reference_layout
from provenance.errors import ProvenanceError, SignatureError
from provenance.report import FileResult, FileStatus, Report, TensorResult, TensorStatus, Verdict

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
    share: float  # of the release's tensors (or files, for a file-level reference) found: exact, cast, quantized
    how: str
    by_files: bool = False  # the reference lists files only: weaker evidence, ranked after tensor matches
    derived: float = 0.0  # of the release's tensors changed but correlated with it: ranks fine-tunes
    distance: float = 0.0  # mean sampled change of those: among fine-tunes, the nearest release ranks first

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


def read_for_identify(
    target: Path, *, options: ReadOptions = ReadOptions(), progress: ProgressReporter | None = None
) -> Checkpoint:
    """The checkpoint with every digest a reference may use, in one read; the `options`' patterns (--ignore)
    set files aside."""
    return scan(
        target,
        _everything,
        strict=False,
        allow_symlinks=options.allow_symlinks,
        patterns=options.patterns,
        progress=progress,
        label="reading",
    )


def identify_checkpoint(candidate: Checkpoint, references: Iterable[tuple[str, str, Checkpoint]]) -> list[Candidate]:
    """Every reference (release name, source, checkpoint) ranked by how much of it the candidate holds.

    A candidate on disk (one with a root) is read in each reference's layout (rebuilt once per layout, with
    every rebuilt tensor sketched when any reference may need it), and a reference with sketches gets a
    second look at the tensors that differ from its own of the same name and shape (each read once, whatever
    the number of references): what tells a fine-tune of that release from an unrelated model when no tensor
    is bit-identical. A candidate without a root (a manifest's release) has
    no files to rebuild or read again: it is compared with each reference as it is.
    """
    references = list(references)
    sketched = any(_sketched(reference) for _, _, reference in references)
    rebuilt: dict[tuple[object, ...], Adapted] = {}  # the candidate in each layout references have
    ranked: list[Candidate] = []
    for release, source, reference in references:
        if candidate.root is None:
            report = compare(reference, candidate, reference_label=release)
            ranked.append(_candidate(release, source, reference, report))
            continue
        key = _layout_of(reference)
        adapted = rebuilt.get(key)
        if adapted is None:
            adapted = in_reference_layout(candidate, reference, sketch_all=sketched)
        mine, theirs = adapted.candidate, comparable(adapted, reference)
        if theirs.tensor_level:  # the located tensors that differ (or may be upcasts cast back), read once
            mine = sketch_mismatches(theirs, mine)
        rebuilt[key] = dataclasses.replace(adapted, candidate=mine)
        if not adapted.note:
            candidate = mine  # the same layout: the sketches serve references of any other layout too
        report = compare(theirs, mine, reference_label=release)
        ranked.append(_candidate(release, source, reference, report))
    ranked.sort(key=_order)
    return ranked


def _order(c: Candidate) -> tuple[object, ...]:
    """A passing verdict first; then tensor-level evidence before file-level (a shared tokenizer file says
    little), each by share, verdict, how much derives and how near."""
    return (
        _RANK[c.verdict] > _RANK[Verdict.EQUIVALENT],
        c.by_files,
        -c.share,
        _RANK[c.verdict],
        -c.derived,
        c.distance,
        c.release,
    )


def _layout_of(reference: Checkpoint) -> tuple[object, ...]:
    """What a layout adapter's work depends on: the reference's files, its tensors' names and shapes, and
    the digests of its other files (an adapter puts the reference's config in the candidate's place)."""
    return tuple(
        (f.path, tuple((t.name, t.shape) for t in f.tensors), () if f.tensors else tuple(sorted(f.digests.items())))
        for f in reference.files
    )


def _sketched(reference: Checkpoint) -> bool:
    return any(t.sketch is not None for f in reference.files for t in f.tensors)


def _candidate(release: str, source: str, reference: Checkpoint, report: Report) -> Candidate:
    """How the checkpoint relates to one release: the `how` counts every tensor, the share and the
    derived fraction only those that tell (see _telling)."""
    tensors = [t for t in report.tensors if t.file is not None]
    if tensors:
        exact = sum(1 for t in tensors if t.status is TensorStatus.MATCH)
        cast = sum(1 for t in tensors if t.status is TensorStatus.CAST)
        quantized = sum(1 for t in tensors if t.status is TensorStatus.QUANTIZED)
        changes = [_change(t) for t in tensors if _derived(t)]
        how = f"{exact} of {plural(len(tensors), 'tensor')} bit-identical" + (f", {cast} cast" if cast else "")
        how += f", {quantized} quantized" if quantized else ""
        if changes:
            how += f", {len(changes)} changed but derived (median change {statistics.median(changes):.1%})"
        telling = _telling(reference, tensors)
        share = sum(1 for t in telling if t.status in FOUND) / len(telling)
        derived = [_change(t) for t in telling if _derived(t)]
        distance = statistics.fmean(derived) if derived else 0.0
        return Candidate(release, source, report.verdict, share, how, False, len(derived) / len(telling), distance)
    files = [f for f in report.files if f.status is not FileStatus.EXTRA]
    matched = sum(1 for f in files if f.status is FileStatus.MATCH)
    share = matched / len(files) if files else 0.0
    how = f"{matched} of {plural(len(files), 'file')} identical"
    return Candidate(release, source, _by_files(report, files), share, how, True)


def _by_files(report: Report, files: list[FileResult]) -> Verdict:
    """A file-level entry's verdict: `modified` needs a weights file of the release in the candidate. With
    none (only settings or tokenizer files differing, or shared) nothing ties the weights to the release:
    unrelated when no file at all is the release's, undecided when some side file is shared."""
    if report.verdict is not Verdict.MODIFIED:
        return report.verdict
    if any(f.role == Role.WEIGHTS.value and f.status is FileStatus.MATCH for f in files):
        return report.verdict
    if any(f.status is FileStatus.MATCH for f in files):
        return Verdict.UNDECIDED
    return Verdict.UNRELATED


def _derived(t: TensorResult) -> bool:
    return t.status is TensorStatus.MODIFIED and (t.correlation or 0) >= DERIVED


def _change(t: TensorResult) -> float:
    return t.change if t.change is not None else 1.0


def _telling(reference: Checkpoint, tensors: list[TensorResult]) -> list[TensorResult]:
    """The tensors a share counts: matrices that are not one value repeated (so far as the reference's sketch
    says). Vectors (norms, biases) and constants are the same in unrelated models of one shape; a reference
    of vectors only counts them all."""
    sketches = {t.name: t.sketch for f in reference.files for t in f.tensors}
    telling = [
        t
        for t in tensors
        if len(t.shape) >= 2 and all(t.shape) and not ((s := sketches.get(t.name)) is not None and constant(s))
    ]
    return telling or tensors


def identify(
    target: Path,
    registries: list[Path] | None = None,
    *,
    options: ReadOptions = ReadOptions(),
    keys: list[Path] | None = None,
    require_signature: bool = False,
    allow_older: bool = False,
    progress: ProgressReporter | None = None,
    skipped: Callable[[str], None] | None = None,
) -> list[Candidate]:
    """Which known release a checkpoint is, or derives from: the checkpoint (a folder or one file) compared
    with every registry manifest (bundled, the user's, and each `registries` folder), best first. The
    `provenance identify` operation; it exits 0 when the best candidate's verdict passes, else 1.

    Signatures are checked as `verify` checks them, rollback included. When a signature is required
    (`keys`, `require_signature` or the trust policy), only entries signed by a trusted key are compared:
    each other one is told to `skipped` (why, one line) and left out, so that no unsigned entry can rank.
    Raises SignatureError (exit 3) when no entry is left that way, for a bad signature when none is required,
    or for a signed manifest older than one verified before (without `allow_older`); ProvenanceError
    (exit 2) when a registry folder is not one, no release is registered, or the checkpoint cannot be read.
    """
    specs: list[str | Path] = [f"{REGISTRY_PREFIX}{name}" for name in registry_names()]
    for folder in registries or []:
        if not folder.is_dir():
            raise ProvenanceError(f"{folder} is not a folder of manifests; give --registry DIR")
        specs += sorted(p for p in folder.iterdir() if p.suffix in (".json", ".sig") and p.is_file())
    required = load_trust(keys, require=require_signature).required
    references, left_out = [], 0
    for spec in specs:
        try:
            reference = open_checked(spec, keys=keys, allow_older=allow_older, require=require_signature)
        except SignatureError as exc:
            if not required:
                raise
            left_out += 1
            if skipped is not None:
                skipped(f"skipped {spec}: {exc}")
            continue
        references.append((reference.manifest.release.name, reference.source, reference.manifest.checkpoint))
    if not references and left_out:
        raise SignatureError(
            f"no registry entry is signed by a trusted key ({left_out} skipped); "
            "give --key PUB for the publisher's key, or add signed manifests with --registry DIR"
        )
    if not references:
        raise ProvenanceError("no registered release to compare with: add manifests with --registry DIR")
    return identify_checkpoint(read_for_identify(target, options=options, progress=progress), references)
