"""One verdict function for every kind of evidence: the precedence of `decide`, and each check's
translation of its evidence into findings where that precedence is what decides."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance._checks.mirror_evidence import MirrorAudit, findings
from provenance._checks.torrent import compare_torrent
from provenance._judging.collisions import overrule
from provenance._judging.compare import compare
from provenance._judging.verdict import Findings, decide
from provenance._sources.hub_refs import HubFile
from provenance._sources.torrent_file import Torrent, TorrentFile
from provenance.report import FileResult, FileStatus, Report, Verdict

# ---------------------------------------------------------------- the precedence

KINDS = {
    "unrelated": (Verdict.UNRELATED, Findings(unrelated="nothing matches")),
    "changes": (Verdict.MODIFIED, Findings(changes=("a change",))),
    "doubts": (Verdict.UNDECIDED, Findings(doubts=("a doubt: more evidence would decide",))),
    "losses": (Verdict.INCOMPLETE, Findings(losses=("a loss",))),
    "conversion": (Verdict.CONVERTED, Findings(conversion="a cast")),
    "equivalence": (Verdict.EQUIVALENT, Findings(equivalence="re-sharded")),
}
ORDER = list(KINDS)  # highest first


def _merged(names: tuple[str, ...]) -> Findings:
    merged = Findings()
    for name in names:
        one = KINDS[name][1]
        given = {
            f.name: getattr(one, f.name) for f in dataclasses.fields(one) if getattr(one, f.name) not in (None, ())
        }
        merged = dataclasses.replace(merged, **given)
    return merged


@pytest.mark.parametrize("names", [c for n in range(1, len(ORDER) + 1) for c in itertools.combinations(ORDER, n)])
def test_the_highest_finding_decides(names: tuple[str, ...]) -> None:
    verdict, _ = decide(_merged(names))
    assert verdict is KINDS[min(names, key=ORDER.index)][0]


def test_nothing_found_is_identical_with_its_sentence() -> None:
    assert decide(Findings(identity="every file matches")) == (Verdict.IDENTICAL, ("every file matches",))


def test_reasons_read_changes_facts_losses_then_what_would_decide() -> None:
    everything = Findings(
        changes=("changed",), facts=("fact",), losses=("lost",), doubts=("doubt",), conversion="cast", identity="same"
    )
    assert decide(everything) == (Verdict.MODIFIED, ("changed", "fact", "lost"))  # a doubt is settled by a change
    no_change = Findings(facts=("fact",), losses=("lost",), doubts=("doubt",), conversion="cast")
    assert decide(no_change) == (Verdict.UNDECIDED, ("fact", "lost", "doubt"))
    assert decide(Findings(facts=("fact",), losses=("lost",), conversion="cast")) == (
        Verdict.INCOMPLETE,
        ("fact", "lost"),
    )
    assert decide(Findings(facts=("fact",), conversion="cast")) == (Verdict.CONVERTED, ("fact", "cast"))
    assert decide(Findings(unrelated="none", changes=("changed",), facts=("fact",))) == (
        Verdict.UNRELATED,
        ("none", "fact"),
    )


def test_a_sentence_is_said_once() -> None:
    said = Findings(changes=("2 tensors added: a, b",), facts=("2 tensors added: a, b", "other"))
    assert decide(said) == (Verdict.MODIFIED, ("2 tensors added: a, b", "other"))


@pytest.mark.parametrize(
    ("before", "after", "reasons"),
    [
        (Verdict.IDENTICAL, Verdict.MODIFIED, ("clash",)),  # a green verdict's sentences no longer hold
        (Verdict.EQUIVALENT, Verdict.MODIFIED, ("clash",)),
        (Verdict.CONVERTED, Verdict.MODIFIED, ("clash",)),
        (Verdict.INCOMPLETE, Verdict.MODIFIED, ("clash", "r1", "r2")),
        (Verdict.UNDECIDED, Verdict.MODIFIED, ("clash", "r1", "r2")),
        (Verdict.MODIFIED, Verdict.MODIFIED, ("clash", "r1", "r2")),
        (Verdict.UNRELATED, Verdict.UNRELATED, ("r1", "r2")),  # unrelated outranks any change
    ],
)
def test_a_change_found_after_a_verdict(before: Verdict, after: Verdict, reasons: tuple[str, ...]) -> None:
    assert decide(Findings.after(before, ("r1", "r2"), "clash")) == (after, reasons)


# ---------------------------------------------------------------- files on disk or a manifest


def _weights(path: str, name: str, digest: str, dtype: str = "F32") -> FileFingerprint:
    tensor = TensorFingerprint(name, dtype, (2, 2), 8, 24, digest)
    return FileFingerprint(path, 24, Role.WEIGHTS, "safetensors", tensors=(tensor,), container_blake3="c-" + path)


CONFIG = FileFingerprint("config.json", 2, Role.OTHER, digests={"blake3": "cfg"})
RELEASE = Checkpoint((_weights("a.safetensors", "w1", "d1"), _weights("b.safetensors", "w2", "d2"), CONFIG))


def test_a_missing_shard_beside_a_cast_nothing_can_judge_is_undecided() -> None:
    """Was incomplete: `incomplete` says everything present matches, which a tensor in another dtype
    that the sketchless reference cannot judge does not let it say."""
    cast = _weights("a.safetensors", "w1", "other", dtype="F16")
    report = compare(RELEASE, Checkpoint((cast, CONFIG)))
    assert report.verdict is Verdict.UNDECIDED
    assert report.reasons[:2] == ("1 file missing: b.safetensors", "1 tensor missing with their shard: w2")
    assert report.reasons[-1].endswith("a sketched manifest (fingerprint without --no-sketches) would decide")


def test_a_missing_shard_beside_a_setting_not_checked_is_undecided() -> None:
    doubt = "the release's config.json is recorded by digest only: a tensor-level manifest would decide"
    candidate = Checkpoint((_weights("a.safetensors", "w1", "d1"), CONFIG), layout_doubts=(doubt,))
    report = compare(RELEASE, candidate)
    assert (report.verdict, report.reasons[-1]) == (Verdict.UNDECIDED, doubt)


def test_a_missing_shard_alone_is_still_incomplete() -> None:
    report = compare(RELEASE, Checkpoint((_weights("a.safetensors", "w1", "d1"), CONFIG)))
    assert report.verdict is Verdict.INCOMPLETE


def test_a_change_outranks_a_doubt_and_a_loss() -> None:
    changed = FileFingerprint("config.json", 3, Role.OTHER, digests={"blake3": "other"})
    cast = _weights("a.safetensors", "w1", "other", dtype="F16")
    report = compare(RELEASE, Checkpoint((cast, changed)))
    assert report.verdict is Verdict.MODIFIED
    assert report.reasons[0].startswith("config.json differs")


SKETCHED_WOULD = "the manifest has no sketches: a sketched manifest (fingerprint without --no-sketches) would decide"


def test_weights_of_the_releases_shape_that_a_plain_manifest_cannot_place_are_undecided() -> None:
    """Every tensor differs in the release's dtype and shape, nothing is bit-identical, and the reference has
    no samples: a fine-tune and other weights look alike, so neither `modified` nor `unrelated`."""
    other = Checkpoint((_weights("a.safetensors", "w1", "x1"), _weights("b.safetensors", "w2", "x2"), CONFIG))
    report = compare(RELEASE, other)
    assert report.verdict is Verdict.UNDECIDED
    assert report.reasons == (
        "2 tensors differ from the release's in the same dtype and shape and no other tensor shows derivation "
        f"(w1, w2): a fine-tune of the release cannot be told from other weights of its shape; {SKETCHED_WOULD}",
    )


def test_an_addition_beside_weights_nothing_places_is_said_but_undecided() -> None:
    added = dataclasses.replace(
        _weights("b.safetensors", "w2", "x2"),
        tensors=(
            TensorFingerprint("w2", "F32", (2, 2), 8, 24, "x2"),
            TensorFingerprint("new", "F32", (2,), 24, 32, "n"),
        ),
    )
    report = compare(RELEASE, Checkpoint((_weights("a.safetensors", "w1", "x1"), added, CONFIG)))
    assert report.verdict is Verdict.UNDECIDED
    assert report.reasons[0] == "1 tensor added: new"
    assert report.reasons[-1].endswith(SKETCHED_WOULD)


def test_a_matching_matrix_makes_the_other_changes_modifications() -> None:
    """One tensor bit-identical (a matrix: not a constant any model shares): the candidate derives from the
    release, so the tensor that differs is a change, however little the manifest samples."""
    report = compare(
        RELEASE, Checkpoint((_weights("a.safetensors", "w1", "d1"), _weights("b.safetensors", "w2", "x2"), CONFIG))
    )
    assert (report.verdict, report.reasons[0]) == (Verdict.MODIFIED, "1 tensor changed: w2")


def test_a_change_beside_a_cast_nothing_can_judge_is_modified() -> None:
    """Mixed: a tensor proven changed (its release-dtype values differ while another tensor matches) and one
    in another dtype the reference cannot judge: the change decides."""
    three = Checkpoint((*RELEASE.files[:2], _weights("c.safetensors", "w3", "d3"), CONFIG))
    candidate = Checkpoint(
        (
            _weights("a.safetensors", "w1", "x1"),
            _weights("b.safetensors", "w2", "cast", dtype="F16"),
            _weights("c.safetensors", "w3", "d3"),
            CONFIG,
        )
    )
    report = compare(three, candidate)
    assert report.verdict is Verdict.MODIFIED
    assert report.reasons[0] == "1 tensor changed: w1"


def test_unrelated_needs_samples_that_show_no_correlation() -> None:
    """With no derivation shown and figures for every changed tensor, `unrelated` stands; the plain-manifest
    case above is the same candidate without them."""
    from provenance._judging.compare import _Compared
    from provenance._judging.matching import TensorOutcome
    from provenance.report import TensorResult, TensorStatus

    results = [
        TensorResult(
            "w1",
            TensorStatus.MODIFIED,
            "a.safetensors",
            "F32",
            (2, 2),
            detail="values differ",
            change=1.4,
            correlation=0.01,
        ),
        TensorResult(
            "w2",
            TensorStatus.MODIFIED,
            "b.safetensors",
            "F32",
            (2, 2),
            detail="values differ",
            change=1.3,
            correlation=-0.02,
        ),
    ]
    candidate = Checkpoint((_weights("a.safetensors", "w1", "x1"), _weights("b.safetensors", "w2", "x2"), CONFIG))
    status = {
        "a.safetensors": FileStatus.MODIFIED,
        "b.safetensors": FileStatus.MODIFIED,
        "config.json": FileStatus.MATCH,
    }
    compared = _Compared(RELEASE, candidate, [], status, TensorOutcome(results=results))
    verdict, reasons = decide(compared.findings())
    assert (verdict, reasons[0]) == (Verdict.UNRELATED, "none of the candidate's 2 tensors matches a reference tensor")


# ---------------------------------------------------------------- a hub mirror (below --full)


def _audit(*files: FileResult) -> MirrorAudit:
    audit = MirrorAudit()
    audit.files = {f.name: f for f in files}
    return audit


MIRROR_RELEASE = Checkpoint(
    (
        FileFingerprint("model.safetensors", 100, Role.WEIGHTS, digests={"sha256": "s1"}),
        FileFingerprint("config.json", 2, Role.OTHER, digests={"sha256": "s2"}),
    )
)


def test_a_mirror_lacking_a_file_with_a_claim_it_cannot_hold_is_undecided() -> None:
    audit = _audit(
        FileResult("model.safetensors", FileStatus.UNDECIDED, "weights", 100, 100, "no sha256"),
        FileResult("config.json", FileStatus.MISSING, "other", None, 2),
    )
    verdict, reasons = decide(findings(MIRROR_RELEASE, audit, []))
    assert verdict is Verdict.UNDECIDED
    assert reasons == (
        "config.json is missing",
        "the hub's metadata cannot be held against this reference: --full decides",
    )


def test_a_mirror_lacking_a_file_and_adding_code_is_modified() -> None:
    audit = _audit(
        FileResult("model.safetensors", FileStatus.MATCH, "weights", 100, 100),
        FileResult("config.json", FileStatus.MISSING, "other", None, 2),
        FileResult("modeling.py", FileStatus.EXTRA, "other", 5, None),
    )
    verdict, reasons = decide(findings(MIRROR_RELEASE, audit, [HubFile("modeling.py", 5, None, False)]))
    assert verdict is Verdict.MODIFIED
    assert reasons == ("the mirror adds 1 file a loader may pick up: modeling.py", "config.json is missing")


# ---------------------------------------------------------------- a torrent


def _torrent(*files: TorrentFile, v2: bool = True) -> Torrent:
    return Torrent("t", 16 << 10, files, None if v2 else "1" * 40, "2" * 64 if v2 else None, False)


TORRENT_RELEASE = Checkpoint(
    (
        FileFingerprint("model.safetensors", 100, Role.WEIGHTS, digests={"sha256": "s1"}),
        FileFingerprint("config.json", 2, Role.OTHER, digests={"sha256": "s2"}),
    )
)


def test_a_torrent_lacking_a_file_whose_others_only_the_download_can_prove_is_undecided() -> None:
    report = compare_torrent(TORRENT_RELEASE, _torrent(TorrentFile("model.safetensors", 100, "r"), v2=False))
    assert report.verdict is Verdict.UNDECIDED
    assert report.reasons[0] == "the torrent lacks 1 file of the release: config.json"
    assert "only the download can prove the content" in report.reasons[1]


def test_a_torrent_lacking_a_file_and_adding_code_is_modified_and_says_both() -> None:
    torrent = _torrent(TorrentFile("model.safetensors", 100, "r"), TorrentFile("run.sh", 9, "x"))
    report = compare_torrent(TORRENT_RELEASE, torrent)
    assert report.verdict is Verdict.MODIFIED
    assert report.reasons == (
        "the torrent adds 1 file a loader may pick up: run.sh",
        "the torrent lacks 1 file of the release: config.json",
    )


# ---------------------------------------------------------------- names that collide


def _report(verdict: Verdict, *files: FileResult) -> Report:
    return Report(verdict, ("as found",), files, (), "reference", "candidate", "")


def test_a_collision_beside_a_loss_is_modified_with_the_collision_first() -> None:
    report = _report(
        Verdict.INCOMPLETE,
        FileResult("config.json", FileStatus.MATCH, "other"),
        FileResult("CONFIG.JSON", FileStatus.EXTRA, "other"),
        FileResult("model.safetensors", FileStatus.MISSING, "weights"),
    )
    verdict, reasons, files = overrule(report.verdict, report.reasons, report.files)
    assert verdict is Verdict.MODIFIED
    assert reasons[0].startswith("names that differ only in case or Unicode form (CONFIG.JSON and config.json)")
    assert reasons[1:] == ("as found",)
    assert {f.name: f.status for f in files}["config.json"] is FileStatus.MODIFIED


def test_a_collision_in_an_identical_download_voids_its_sentence() -> None:
    report = _report(
        Verdict.IDENTICAL,
        FileResult("config.json", FileStatus.MATCH, "other"),
        FileResult("Config.json", FileStatus.EXTRA, "other"),
    )
    verdict, reasons, _ = overrule(report.verdict, report.reasons, report.files)
    assert (verdict, len(reasons)) == (Verdict.MODIFIED, 1)


def test_a_collision_in_a_torrent_lacking_a_file_is_modified() -> None:
    torrent = _torrent(TorrentFile("model.safetensors", 100, "r"), TorrentFile("Model.safetensors", 100, "r"))
    report = compare_torrent(TORRENT_RELEASE, torrent)
    assert report.verdict is Verdict.MODIFIED
    assert report.reasons[0].startswith("names that differ only in case or Unicode form")
    assert report.reasons[-1] == "the torrent lacks 1 file of the release: config.json"
