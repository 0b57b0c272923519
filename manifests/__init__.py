"""The reference document: OMS-compatible manifests, their signatures and the releases they describe."""

from manifests.io import write_atomic
from manifests.model import EXTENSION_KEY, Manifest, Release, build_manifest, manifest_from_statement
from manifests.reference import Reference, is_manifest_file, open_reference
from manifests.signing import check_signature, sign_manifest
from manifests.signing_ops import sign_manifest_file
from manifests.trust import load_trust
from manifests.verification import verify_download

__all__ = [
    "EXTENSION_KEY",
    "Manifest",
    "Reference",
    "Release",
    "build_manifest",
    "check_signature",
    "is_manifest_file",
    "load_trust",
    "manifest_from_statement",
    "open_reference",
    "sign_manifest",
    "sign_manifest_file",
    "verify_download",
    "write_atomic",
]
