"""Open what `--manifest` names: a manifest file today; signature bundles and registry names build on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from manifests.io import read_json
from manifests.model import Manifest, manifest_from_statement
from provenance.errors import ManifestError, UnreadableInput
from provenance.report import SignatureInfo, SignatureStatus


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest and what is known of its signature."""

    manifest: Manifest
    source: str
    signature: SignatureInfo = field(default_factory=SignatureInfo)

    @property
    def warnings(self) -> tuple[str, ...]:
        if self.signature.status is SignatureStatus.UNSIGNED:
            return (f"{self.source} is unsigned: it proves nothing about who published it",)
        return ()


def open_reference(spec: str | Path) -> Reference:
    """Load the reference a user named on the command line."""
    path = Path(spec)
    if not path.exists():
        raise UnreadableInput(f"manifest {spec} does not exist; give the path of a manifest file")
    document = read_json(path)
    if isinstance(document, dict) and "dsseEnvelope" in document:
        raise ManifestError(
            f"{spec} is a signature bundle; this version reads unsigned manifests only: "
            "verify it with the manifest it was made from"
        )
    return Reference(manifest_from_statement(document), str(spec))


def is_manifest_file(path: Path) -> bool:
    """Whether a command argument names a manifest (a JSON document) rather than a checkpoint."""
    return path.is_file() and path.suffix in (".json", ".sig", ".sigstore") and not path.name.endswith(".index.json")
