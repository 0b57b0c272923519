"""`provenance sign` as a library call: read a manifest file, sign it, write the bundle atomically."""

from __future__ import annotations

import json
from pathlib import Path

from manifests.errors import ManifestError
from manifests.io import read_json, refuse_overwrite, write_atomic
from manifests.keys import load_signer
from manifests.model import manifest_from_statement
from manifests.signing import is_bundle, sign_manifest


def default_signature_path(manifest: Path) -> Path:
    stem = manifest.name[: -len(".json")] if manifest.name.endswith(".json") else manifest.name
    return manifest.with_name(stem + ".sig")


def sign_manifest_file(manifest: Path, key: Path, *, output: Path | None = None, force: bool = False) -> Path:
    """Sign the manifest at `manifest` with the private key at `key` into a Sigstore bundle (default: the
    manifest's name with .sig) that `model_signing verify key` accepts; return the bundle's path. Raises
    OutputExists (exit 2) without `force` when the bundle exists, ManifestError (exit 2) for a manifest
    that is not valid or is already a bundle, ProvenanceError (exit 2) for a key that cannot be loaded."""
    output = output or default_signature_path(manifest)
    refuse_overwrite(output, force)
    document = read_json(manifest)
    if is_bundle(document):
        raise ManifestError(f"{manifest} is already a signature bundle; sign the unsigned manifest")
    bundle = sign_manifest(manifest_from_statement(document), load_signer(key))
    write_atomic(output, (json.dumps(bundle, indent=2) + "\n").encode(), force=force)
    return output
