"""Open what `--manifest` names: a manifest, or a signature bundle with the manifest inside it.

A reference is named in one of three ways, resolved here and nowhere else: a path (`./llama-1-7b`,
`release.sig`), a registry entry (`registry:llama-1-7b`), or a bare name that is one or the other. A bare
name that is both an existing path and a registry entry is refused, so that a file in the working folder
can never stand in for a registry entry (nor the entry for the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from manifests.errors import ManifestError, SignatureError, UnreadableInput
from manifests.io import read_json_digest
from manifests.model import Manifest, manifest_from_statement
from manifests.signing import check_signature, is_bundle
from manifests.signing.interface import SignatureInfo
from manifests.trust import SeenReleases, TrustStore

_BUNDLE_MARKS = (b"dsseEnvelope", b"sigstore.bundle")


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest and what is known of its signature."""

    manifest: Manifest
    source: str
    signature: SignatureInfo = field(default_factory=SignatureInfo)
    warnings: tuple[str, ...] = ()
    path: Path | None = None  # the user's file it was read from (left out of a scan); None for a registry entry
    digest: str | None = None  # SHA-256 of the document read (manifest or bundle), for a report to record

    @property
    def label(self) -> str:
        """How reports name the reference: the release, and where its manifest came from."""
        return f"{self.manifest.release.name} ({self.source})"


REGISTRY_PREFIX = "registry:"


def resolve_reference(spec: str | Path) -> tuple[Path, bool]:
    """The file a reference names, and whether it is a registry entry.

    A `Path` is always a path; a string is a registry entry with `registry:`, a path when it holds a
    separator, and otherwise whichever of the two exists, never both.
    """
    if isinstance(spec, str) and spec.startswith(REGISTRY_PREFIX):
        return registry_path(spec[len(REGISTRY_PREFIX) :]), True
    path = Path(spec)
    if isinstance(spec, str) and "/" not in spec and "\\" not in spec:
        entry = _registry_entry(spec)
        if entry is not None and path.exists():
            raise UnreadableInput(
                f"{spec} names both the file ./{spec} and the registry entry {spec}; "
                f"give ./{spec} for the file or {REGISTRY_PREFIX}{spec} for the registry entry"
            )
        if not path.exists():
            return registry_path(spec), True
    if not path.exists():
        raise UnreadableInput(f"manifest {spec} does not exist; check the path")
    return path, False


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
    path, from_registry = resolve_reference(spec)
    own = None if from_registry else path
    trust = trust or TrustStore()
    try:
        document, digest = read_json_digest(path)
    except ManifestError:
        if trust.required or _looks_like_bundle(path):
            raise SignatureError(f"signature {spec} is damaged (cut short or not JSON); fetch it again") from None
        raise
    if is_bundle(document):
        signed = check_signature(document, trust, seen=seen, allow_older=allow_older)
        return Reference(signed.manifest, str(spec), signed.signature, signed.warnings, own, digest)
    manifest = manifest_from_statement(document)
    if trust.required:
        raise SignatureError(
            f"{spec} is an unsigned manifest, but a signature was required "
            f"({trust.reason}); give the signature bundle instead"
        )
    return Reference(
        manifest,
        str(spec),
        warnings=(f"{spec} is unsigned: it proves nothing about who published it",),
        path=own,
        digest=digest,
    )


def registry_dirs() -> list[Path]:
    """The bundled registry, then the user's ($XDG_CONFIG_HOME/weights-provenance/registry)."""
    from manifests.trust import config_dir

    return [Path(__file__).with_name("registry"), config_dir() / "registry"]


def registry_names() -> list[str]:
    return sorted({p.stem for folder in registry_dirs() if folder.is_dir() for p in folder.glob("*.json")})


def _registry_entry(name: str) -> Path | None:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    for folder in reversed(registry_dirs()):  # the user's registry may override a bundled name
        for suffix in (".sig", ".json"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def registry_path(name: str) -> Path:
    """A registry manifest by name (`llama-1`, `llama-1-7b`), or one clear line listing the names there are."""
    entry = _registry_entry(name)
    if entry is None:
        raise UnreadableInput(
            f"manifest {name} does not exist and is no registry name; registry names: {', '.join(registry_names())}"
        )
    return entry


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
