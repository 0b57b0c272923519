"""Read, hash and compare model weights without loading them into a framework.

The public API, one name per operation, each taking the reference as a user names it (a manifest file, a
signature bundle or `registry:NAME`) and returning a Report (or a list of results) whose `exit_code` is
what the command ends with: 0 when the weights are the reference's, 1 when they are not; a
ProvenanceError carries 2 (3 for a SignatureError).

    fingerprint(path) -> Checkpoint           build_manifest(checkpoint, name) -> Manifest
    fingerprint_hub("hf://org/repo") -> Manifest   write_manifest(path, manifest)
    verify(path, manifest) -> Report          compare(reference, candidate) -> Report (two Checkpoints)
    diff(a, b) -> Report                      identify(path) -> list[Candidate]
    check_torrent(torrent, manifest) -> Report
    download("hf://org/repo", manifest) -> Download   (only bytes that match are kept)
    audit_mirrors(["hf://org/repo"], manifest) -> list[MirrorResult]
    audit_cache(cache_dir) -> list[CachedSnapshot]
    demo(folder) -> DemoRun

Everything else lives in private packages (`provenance._formats`, `._hashing`, `._layouts`, `._judging`,
`._sources`, `._checks`) and may change without notice. Names are loaded on first use, so `import
provenance` costs nothing of numpy, blake3, gguf or huggingface_hub until an operation needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manifests.importers import import_checksum_lists
    from manifests.io import refuse_overwrite, write_atomic
    from manifests.keys import PASSWORD_ENV, generate_key_pair, new_password
    from manifests.model import Manifest, Release, build_manifest, write_manifest
    from manifests.pieces import check_piece_length
    from manifests.records import Checkpoint, FileFingerprint, Role, TensorFingerprint
    from manifests.signing.files import sign_manifest_file
    from manifests.signing.interface import SignatureInfo, SignatureStatus
    from provenance._checks.audit_cache import CachedSnapshot, audit_cache
    from provenance._checks.audit_mirror import AuditOptions, MirrorResult, audit_mirrors
    from provenance._checks.common import ReadOptions, read_stdin
    from provenance._checks.demo import DemoRun, demo
    from provenance._checks.diff import diff
    from provenance._checks.download import Download, DownloadOptions, download
    from provenance._checks.fingerprint import fingerprint, fingerprint_hub
    from provenance._checks.identify import Candidate, identify
    from provenance._checks.torrent import check_torrent
    from provenance._checks.verify import verify
    from provenance._formats.torch import checkpoint_globals
    from provenance._hashing.scan import ProgressReporter
    from provenance._judging.compare import compare
    from provenance._judging.drift import Drift, drift
    from provenance._sources.hub_refs import is_hub_spec
    from provenance.errors import (
        FileChanged,
        HubError,
        MalformedContainer,
        ManifestError,
        OutputExists,
        ProvenanceError,
        RefusedContainer,
        SignatureError,
        TorrentError,
        TruncatedContainer,
        UnreadableInput,
        UnsafePath,
    )
    from provenance.report import (
        FileResult,
        FileStatus,
        Proof,
        Refetch,
        Report,
        TensorResult,
        TensorStatus,
        Verdict,
    )

_MODULES: dict[str, tuple[str, ...]] = {
    # the operations
    "provenance._checks.fingerprint": ("fingerprint", "fingerprint_hub"),
    "provenance._checks.verify": ("verify",),
    "provenance._checks.diff": ("diff",),
    "provenance._checks.identify": ("identify", "Candidate"),
    "provenance._checks.torrent": ("check_torrent",),
    "provenance._checks.audit_mirror": ("audit_mirrors", "AuditOptions", "MirrorResult"),
    "provenance._checks.audit_cache": ("audit_cache", "CachedSnapshot"),
    "provenance._checks.common": ("ReadOptions", "read_stdin"),
    "provenance._checks.demo": ("demo", "DemoRun"),
    "provenance._checks.download": ("download", "Download", "DownloadOptions"),
    "provenance._judging.compare": ("compare",),
    # what the operations return, and how they fail
    "provenance.report": (
        "Report",
        "Verdict",
        "FileResult",
        "FileStatus",
        "TensorResult",
        "TensorStatus",
        "Proof",
        "Refetch",
    ),
    "provenance.errors": (
        "ProvenanceError",
        "ManifestError",
        "SignatureError",
        "UnreadableInput",
        "UnsafePath",
        "OutputExists",
        "MalformedContainer",
        "RefusedContainer",
        "TruncatedContainer",
        "FileChanged",
        "TorrentError",
        "HubError",
    ),
    "provenance._hashing.scan": ("ProgressReporter",),
    # helpers around the operations: the drift picture, PyTorch globals, hub targets
    "provenance._judging.drift": ("drift", "Drift"),
    "provenance._formats.torch": ("checkpoint_globals",),
    "provenance._sources.hub_refs": ("is_hub_spec",),
    # the reference document, re-exported from `manifests`
    "manifests.records": ("Checkpoint", "FileFingerprint", "TensorFingerprint", "Role"),
    "manifests.model": ("Manifest", "Release", "build_manifest", "write_manifest"),
    "manifests.io": ("refuse_overwrite", "write_atomic"),
    "manifests.importers": ("import_checksum_lists",),
    "manifests.signing.files": ("sign_manifest_file",),
    "manifests.signing.interface": ("SignatureInfo", "SignatureStatus"),
    "manifests.keys": ("generate_key_pair", "new_password", "PASSWORD_ENV"),
    "manifests.pieces": ("check_piece_length",),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "PASSWORD_ENV",
    "AuditOptions",
    "CachedSnapshot",
    "Candidate",
    "Checkpoint",
    "DemoRun",
    "Download",
    "DownloadOptions",
    "Drift",
    "FileChanged",
    "FileFingerprint",
    "FileResult",
    "FileStatus",
    "HubError",
    "MalformedContainer",
    "Manifest",
    "ManifestError",
    "MirrorResult",
    "OutputExists",
    "ProgressReporter",
    "Proof",
    "ProvenanceError",
    "ReadOptions",
    "Refetch",
    "RefusedContainer",
    "Release",
    "Report",
    "Role",
    "SignatureError",
    "SignatureInfo",
    "SignatureStatus",
    "TensorFingerprint",
    "TensorResult",
    "TensorStatus",
    "TorrentError",
    "TruncatedContainer",
    "UnreadableInput",
    "UnsafePath",
    "Verdict",
    "audit_cache",
    "audit_mirrors",
    "build_manifest",
    "check_piece_length",
    "check_torrent",
    "checkpoint_globals",
    "compare",
    "demo",
    "diff",
    "download",
    "drift",
    "fingerprint",
    "fingerprint_hub",
    "generate_key_pair",
    "identify",
    "import_checksum_lists",
    "is_hub_spec",
    "new_password",
    "read_stdin",
    "refuse_overwrite",
    "sign_manifest_file",
    "verify",
    "write_atomic",
    "write_manifest",
]


if not TYPE_CHECKING:  # hidden from mypy, which then checks every `from provenance import X` against the above

    def __getattr__(name: str) -> Any:
        """Import a public name's module on first use and keep the name: later uses cost a dict look-up."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'provenance' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
