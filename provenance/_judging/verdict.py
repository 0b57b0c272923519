"""One verdict for every kind of evidence: what a check found, weighed by one precedence.

Each check (files on disk or a manifest, a hub mirror, a torrent) translates its own evidence into
`Findings` and calls `decide`. The precedence is DESIGN.md's verdict table read top down: unrelated >
modified > undecided > incomplete > converted > equivalent > identical. A doubt outranks a loss because
`incomplete` claims that everything present matches, which cannot be said while a doubt about present
content stands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.report import FileResult, Report, TensorResult, Verdict

GREEN = frozenset({Verdict.IDENTICAL, Verdict.EQUIVALENT, Verdict.CONVERTED})  # sentences a change voids


@dataclass(frozen=True, slots=True)
class Findings:
    """What a check established, each entry a sentence for the report, in the order it should be read."""

    unrelated: str | None = None  # why nothing of the candidate derives from the reference
    changes: tuple[str, ...] = ()  # what differs beyond a conversion (-> modified)
    facts: tuple[str, ...] = ()  # what the evidence showed besides, said under any verdict
    losses: tuple[str, ...] = ()  # what is missing or cut short (-> incomplete)
    doubts: tuple[str, ...] = ()  # what the evidence cannot settle, each saying what would (-> undecided)
    conversion: str | None = None  # the casts or quantizations, when every other tensor is bit-identical
    equivalence: str | None = None  # how the container differs, every tensor bit-identical (-> equivalent)
    identity: str = ""  # what shows every file is the release's (-> identical)

    @classmethod
    def after(cls, verdict: Verdict, reasons: tuple[str, ...], change: str) -> Findings:
        """A change found once a verdict was decided (names that collide on some file systems), with
        that verdict's reasons: an unrelated one stands, a green one's no longer hold, others stay."""
        if verdict is Verdict.UNRELATED:
            return cls(unrelated=reasons[0] if reasons else "", changes=(change,), facts=reasons[1:])
        return cls(changes=(change,), facts=() if verdict in GREEN else reasons)


def decide(findings: Findings) -> tuple[Verdict, tuple[str, ...]]:
    """The verdict and its reasons: the deciding changes first, then facts and losses, then what would
    decide (undecided) or why it passes (green). A sentence is said once."""
    f = findings
    if f.unrelated is not None:
        return Verdict.UNRELATED, _once(f.unrelated, *f.facts)
    if f.changes:
        return Verdict.MODIFIED, _once(*f.changes, *f.facts, *f.losses)
    if f.doubts:
        return Verdict.UNDECIDED, _once(*f.facts, *f.losses, *f.doubts)
    if f.losses:
        return Verdict.INCOMPLETE, _once(*f.facts, *f.losses)
    if f.conversion is not None:
        return Verdict.CONVERTED, _once(*f.facts, f.conversion)
    if f.equivalence is not None:
        return Verdict.EQUIVALENT, _once(*f.facts, f.equivalence)
    return Verdict.IDENTICAL, _once(*f.facts, f.identity)


def _once(*reasons: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r for r in reasons if r))


@dataclass(frozen=True, slots=True)
class Judgement:
    """A decided verdict with the files and tensors it rests on: what a check returns before the one
    place that builds its report (with the labels, the evidence and what else the operation read)."""

    verdict: Verdict
    reasons: tuple[str, ...]
    files: tuple[FileResult, ...]
    tensors: tuple[TensorResult, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    def report(self, *, reference: str, candidate: str, evidence: str, facts: dict[str, Any] | None = None) -> Report:
        """The report, built once: `facts` adds to what the judgement recorded."""
        return Report(
            verdict=self.verdict,
            reasons=self.reasons,
            files=self.files,
            tensors=self.tensors,
            reference=reference,
            candidate=candidate,
            evidence=evidence,
            facts={**self.facts, **(facts or {})},
        )
