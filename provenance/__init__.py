"""Read, hash and compare model weights without loading them into a framework."""

from provenance.api import diff, fingerprint, read_checkpoint, verify
from provenance.compare import compare
from provenance.errors import ProvenanceError
from provenance.fingerprint import Checkpoint, FileFingerprint, Role, TensorFingerprint
from provenance.report import (
    FileResult,
    FileStatus,
    Proof,
    Report,
    SignatureInfo,
    SignatureStatus,
    TensorResult,
    TensorStatus,
    Verdict,
)

__all__ = [
    "Checkpoint",
    "FileFingerprint",
    "FileResult",
    "FileStatus",
    "Proof",
    "ProvenanceError",
    "Report",
    "Role",
    "SignatureInfo",
    "SignatureStatus",
    "TensorFingerprint",
    "TensorResult",
    "TensorStatus",
    "Verdict",
    "compare",
    "diff",
    "fingerprint",
    "read_checkpoint",
    "verify",
]
