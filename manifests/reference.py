"""Open what `--manifest` names: a manifest, or a signature bundle with the manifest inside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from manifests.io import read_json
from manifests.model import Manifest, manifest_from_statement
from manifests.signing import check_signature, is_bundle
from manifests.trust import SeenReleases, TrustStore
from provenance.errors import ManifestError, SignatureError, UnreadableInput
from provenance.report import SignatureInfo

_BUNDLE_MARKS = (b"dsseEnvelope", b"sigstore.bundle")


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest and what is known of its signature."""

    manifest: Manifest
    source: str
    signature: SignatureInfo = field(default_factory=SignatureInfo)
    warnings: tuple[str, ...] = ()


def open_reference(
    spec: str | Path,
    *,
    trust: TrustStore | None = None,
    seen: SeenReleases | None = None,
    allow_older: bool = False,
) -> Reference:
    """Load the reference a user named, checking its signature against `trust` when it is signed.

    Without `trust`, a signature bundle is opened as untrusted: its structure is checked, not its math.
    """
    path = Path(spec)
    if not path.exists():
        path = registry_path(str(spec))
    trust = trust or TrustStore()
    try:
        document = read_json(path)
    except ManifestError:
        if trust.required or _looks_like_bundle(path):
            raise SignatureError(f"signature {spec} is damaged (cut short or not JSON); fetch it again") from None
        raise
    if is_bundle(document):
        signed = check_signature(document, trust, seen=seen, allow_older=allow_older)
        return Reference(signed.manifest, str(spec), signed.signature, signed.warnings)
    manifest = manifest_from_statement(document)
    if trust.required:
        raise SignatureError(
            f"{spec} is an unsigned manifest, but a signature was required "
            f"({'--key' if trust.given else 'trust policy'}); give the signature bundle instead"
        )
    return Reference(manifest, str(spec), warnings=(f"{spec} is unsigned: it proves nothing about who published it",))


def registry_dirs() -> list[Path]:
    """The bundled registry, then the user's ($XDG_CONFIG_HOME/weights-provenance/registry)."""
    from manifests.trust import config_dir

    return [Path(__file__).with_name("registry"), config_dir() / "registry"]


def registry_names() -> list[str]:
    return sorted({p.stem for folder in registry_dirs() if folder.is_dir() for p in folder.glob("*.json")})


def registry_path(name: str) -> Path:
    """A registry manifest by name (`llama-1`, `llama-1-7b`), or one clear line listing the names there are."""
    if "/" not in name and "\\" not in name:
        for folder in reversed(registry_dirs()):  # the user's registry may override a bundled name
            for suffix in (".sig", ".json"):
                candidate = folder / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
    raise UnreadableInput(
        f"manifest {name} does not exist and is no registry name; registry names: {', '.join(registry_names())}"
    )


def _looks_like_bundle(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            head = stream.read(4096)
    except OSError:
        return False
    return any(mark in head for mark in _BUNDLE_MARKS)


def is_manifest_file(path: Path) -> bool:
    """Whether a command argument names a manifest (a JSON document) rather than a checkpoint."""
    return path.is_file() and path.suffix in (".json", ".sig", ".sigstore") and not path.name.endswith(".index.json")
