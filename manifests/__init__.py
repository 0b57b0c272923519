"""The reference document: OMS-compatible manifests, their signatures and the releases they describe."""

from manifests.io import write_atomic
from manifests.model import EXTENSION_KEY, Manifest, Release, build_manifest, manifest_from_statement
from manifests.reference import Reference, is_manifest_file, open_reference
from manifests.verification import verify_download

__all__ = [
    "EXTENSION_KEY",
    "Manifest",
    "Reference",
    "Release",
    "build_manifest",
    "is_manifest_file",
    "manifest_from_statement",
    "open_reference",
    "verify_download",
    "write_atomic",
]
