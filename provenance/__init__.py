"""Read, hash and compare model weights without loading them into a framework."""

from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
from manifests.signing.interface import SignatureInfo, SignatureStatus
from provenance._checks.audit_cache import audit_local_cache
from provenance._checks.audit_mirror import AuditOptions, MirrorResult, audit_mirrors
from provenance._checks.common import ReadOptions
from provenance._checks.diff import diff, diff_paths, read_checkpoint
from provenance._checks.fingerprint import fingerprint, fingerprint_hub
from provenance._checks.identify import identify_path
from provenance._checks.torrent import verify_torrent
from provenance._checks.verify import verify, verify_against, verify_download
from provenance._judging.compare import compare
from provenance.errors import ProvenanceError
from provenance.report import (
    FileResult,
    FileStatus,
    Proof,
    Report,
    TensorResult,
    TensorStatus,
    Verdict,
)

__all__ = [
    "AuditOptions",
    "Checkpoint",
    "FileFingerprint",
    "FileResult",
    "FileStatus",
    "MirrorResult",
    "Proof",
    "ProvenanceError",
    "ReadOptions",
    "Report",
    "Role",
    "SignatureInfo",
    "SignatureStatus",
    "TensorFingerprint",
    "TensorResult",
    "TensorStatus",
    "Verdict",
    "audit_local_cache",
    "audit_mirrors",
    "compare",
    "diff",
    "diff_paths",
    "fingerprint",
    "fingerprint_hub",
    "identify_path",
    "read_checkpoint",
    "verify",
    "verify_against",
    "verify_download",
    "verify_torrent",
]
