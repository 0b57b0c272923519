"""The result of a comparison: verdict, per-file and per-tensor statuses, and the reasons behind them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from manifests.signing.interface import SignatureInfo


class Verdict(StrEnum):
    IDENTICAL = "identical"
    EQUIVALENT = "equivalent"
    CONVERTED = "converted"
    MODIFIED = "modified"
    INCOMPLETE = "incomplete"
    UNRELATED = "unrelated"
    UNDECIDED = "undecided"

    @property
    def passes(self) -> bool:
        """Whether this verdict means "these are the reference's weights" (exit code 0)."""
        return self in (Verdict.IDENTICAL, Verdict.EQUIVALENT)


class TensorStatus(StrEnum):
    MATCH = "match"
    CAST = "cast"
    QUANTIZED = "quantized"
    MODIFIED = "modified"
    MISSING = "missing"
    EXTRA = "extra"
    CORRUPT = "corrupt"


class Proof(StrEnum):
    """How strong the evidence behind a found tensor (or a green verdict) is."""

    EXACT = "exact"  # digests prove it: bit-identical, or a cast proven by a cast digest or by casting back
    SAMPLED = "sampled"  # values at sampled positions agree: a grid check, or a cast within rounding

    @property
    def meaning(self) -> str:
        """What a reader may rely on, said where it matters."""
        if self is Proof.SAMPLED:
            return "values at sampled positions agree; a deliberate edit placed between the samples is not ruled out"
        return "digests prove every tensor"


class FileStatus(StrEnum):
    MATCH = "match"
    MODIFIED = "modified"
    MISSING = "missing"
    EXTRA = "extra"
    CORRUPT = "corrupt"
    UNDECIDED = "undecided"  # only a torrent check: name and size agree, the content is not yet known


@dataclass(frozen=True, slots=True)
class FileResult:
    name: str
    status: FileStatus
    role: str
    size: int | None = None
    expected_size: int | None = None
    detail: str | None = None
    keys: tuple[KeyChange, ...] = ()  # a settings file compared by meaning: the keys that differ
    # a differing file's whole-file digests, (algorithm, hex) sorted: the release's, and the file's own
    expected_digests: tuple[tuple[str, str], ...] = ()
    digests: tuple[tuple[str, str], ...] = ()


class KeyChange(NamedTuple):
    """One key of a settings file that differs from the release's, both values as JSON text (absent: None);
    `ignored` says why it does not change the verdict (it records tooling, or it names a proven cast)."""

    key: str
    reference: str | None
    candidate: str | None
    ignored: str | None = None


@dataclass(frozen=True, slots=True)
class TensorResult:
    """A reference tensor (or, for `extra`, a candidate tensor) and what became of it."""

    name: str
    status: TensorStatus
    file: str | None
    dtype: str
    shape: tuple[int, ...]
    candidate_name: str | None = None
    candidate_file: str | None = None
    detail: str | None = None
    candidate_dtype: str | None = None  # set for `cast` and `quantized`: the dtype the candidate holds it in
    change: float | None = None  # sampled relative change ||c - r|| / ||r||, with sketches
    correlation: float | None = None  # sampled correlation with the release's values, with sketches
    proven: bool | None = None  # False: a quantization consistent with the release, a small change not ruled out

    @property
    def proof(self) -> Proof | None:
        """`exact` for a bit-identical copy or a cast a digest proves (such casts carry no sampled figures),
        `sampled` for a quantization's grid check or a cast within rounding; None for a tensor not found."""
        if self.status is TensorStatus.MATCH:
            return Proof.EXACT
        if self.status is TensorStatus.CAST:
            return Proof.EXACT if self.change is None and self.correlation is None else Proof.SAMPLED
        if self.status is TensorStatus.QUANTIZED:  # exact: the reference quantizer's blocks, proven by digest
            return Proof.EXACT if self.change is None and self.correlation is None else Proof.SAMPLED
        return None


@dataclass(frozen=True, slots=True)
class Refetch:
    """Byte ranges of one reference file that must be fetched again, [start, end) in the file's offsets."""

    file: str
    ranges: tuple[tuple[int, int], ...]
    detail: str
    truncate: int | None = None  # the file is longer than the release's: cut it to this length

    @property
    def size(self) -> int:
        return sum(end - start for start, end in self.ranges)


@dataclass(frozen=True, slots=True)
class Report:
    verdict: Verdict
    reasons: tuple[str, ...]
    files: tuple[FileResult, ...]
    tensors: tuple[TensorResult, ...]
    reference: str
    candidate: str
    evidence: str
    signature: SignatureInfo = field(default_factory=SignatureInfo)
    warnings: tuple[str, ...] = ()
    refetch: tuple[Refetch, ...] = ()  # what a partial download still needs, when the verdict is not a pass
    facts: dict[str, Any] = field(default_factory=dict)  # what the check read besides files (a torrent's identity)
    # the reference document used: where from, the SHA-256 of its bytes, its OMS subject digest (JSON only)
    manifest: dict[str, str | None] = field(default_factory=dict)

    @property
    def proof(self) -> Proof | None:
        """The weakest evidence among the found tensors of a green verdict; None when the verdict is not green."""
        if self.verdict in (Verdict.IDENTICAL, Verdict.EQUIVALENT):
            return Proof.EXACT
        if self.verdict is not Verdict.CONVERTED:
            return None
        proofs = {t.proof for t in self.tensors if t.file is not None}
        return Proof.SAMPLED if Proof.SAMPLED in proofs else Proof.EXACT

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict.passes else 1

    def summary(self) -> dict[str, dict[str, int]]:
        return {
            "files": dict(Counter(f.status.value for f in self.files)),
            "tensors": dict(Counter(t.status.value for t in self.tensors)),
        }

    def as_dict(self) -> dict[str, Any]:
        """The `--json` document: stable keys that scripts may rely on."""
        return {
            "verdict": self.verdict.value,
            "proof": _value(self.proof),
            "reasons": list(self.reasons),
            "reference": self.reference,
            "candidate": self.candidate,
            "evidence": self.evidence,
            "signature": {
                "status": self.signature.status.value,
                "signer": self.signature.signer,
                "detail": self.signature.detail,
            },
            "summary": self.summary(),
            "files": [_file_json(f) for f in self.files],
            "tensors": [_tensor_json(t) for t in self.tensors],
            "refetch": [_refetch_json(r) for r in self.refetch],
            **self.facts,
            **({"manifest": dict(self.manifest)} if self.manifest else {}),
            "warnings": list(self.warnings),
        }


def _file_json(f: FileResult) -> dict[str, Any]:
    return (
        _drop_none(
            {
                "name": f.name,
                "status": f.status.value,
                "role": f.role,
                "size": f.size,
                "expected_size": f.expected_size,
                "detail": f.detail,
            }
        )
        | ({"keys": [_key_json(k) for k in f.keys]} if f.keys else {})
        | _digests_json(f)
    )


def _digests_json(f: FileResult) -> dict[str, Any]:
    """A differing file's expected and actual digests, so a script can show or check both."""
    if not (f.expected_digests or f.digests):
        return {}
    return {"expected_digests": dict(f.expected_digests), "digests": dict(f.digests)}


def _key_json(k: KeyChange) -> dict[str, Any]:
    """A differing key: both values (null where the file has no such key), and why it is ignored if it is."""
    entry = {
        "key": k.key,
        "reference": None if k.reference is None else json.loads(k.reference),
        "candidate": None if k.candidate is None else json.loads(k.candidate),
    }
    return entry | ({"ignored": k.ignored} if k.ignored else {})


def _tensor_json(t: TensorResult) -> dict[str, Any]:
    entry = {
        "name": t.name,
        "status": t.status.value,
        "file": t.file,
        "dtype": t.dtype,
        "shape": list(t.shape),
        "candidate_name": t.candidate_name,
        "candidate_file": t.candidate_file,
        "candidate_dtype": t.candidate_dtype,
        "change": t.change,
        "correlation": t.correlation,
        "proven": t.proven,
        "detail": t.detail,
    }
    return _drop_none(entry) | {"proof": _value(t.proof)}  # always present: null says the tensor was not found


def _refetch_json(r: Refetch) -> dict[str, Any]:
    return _drop_none(
        {
            "file": r.file,
            "ranges": [list(x) for x in r.ranges],
            "bytes": r.size,
            "truncate": r.truncate,
            "detail": r.detail,
        }
    )


def _value(proof: Proof | None) -> str | None:
    return None if proof is None else proof.value


def _drop_none(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if v is not None}
