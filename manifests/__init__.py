"""The reference document: OMS-compatible manifests, their signatures and the releases they describe.

Names are loaded on first use: `provenance verify` of an unsigned manifest never pays for the
cryptography import that signing needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manifests.io import write_atomic
    from manifests.model import EXTENSION_KEY, Manifest, Release, build_manifest, manifest_from_statement
    from manifests.reference import Reference, is_manifest_file, open_reference
    from manifests.signing import check_signature, sign_manifest
    from manifests.signing.files import sign_manifest_file
    from manifests.trust import load_trust

_EXPORTS = {
    "write_atomic": "manifests.io",
    "EXTENSION_KEY": "manifests.model",
    "Manifest": "manifests.model",
    "Release": "manifests.model",
    "build_manifest": "manifests.model",
    "manifest_from_statement": "manifests.model",
    "Reference": "manifests.reference",
    "is_manifest_file": "manifests.reference",
    "open_reference": "manifests.reference",
    "check_signature": "manifests.signing",
    "sign_manifest": "manifests.signing",
    "sign_manifest_file": "manifests.signing.files",
    "load_trust": "manifests.trust",
}

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
    "write_atomic",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'manifests' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
