"""Signing manifests and checking signatures, in the OpenSSF Model Signing bundle format.

`sign_manifest` makes the bundle; `check_signature` opens one against a trust store and says who signed
what, refusing (SignatureError, exit 3) whatever does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from manifests.errors import ProvenanceError, SignatureError
from manifests.io import dump_json
from manifests.model import Manifest, manifest_from_statement
from manifests.signing.bundle import PAYLOAD_TYPE, is_bundle, make_bundle, pae, parse_bundle
from manifests.signing.interface import SignatureInfo, SignatureStatus, Signer, Verifier
from manifests.trust import SeenReleases, TrustStore

__all__ = ["SignedManifest", "Signer", "Verifier", "check_signature", "is_bundle", "sign_manifest"]


def sign_manifest(manifest: Manifest, signer: Signer) -> dict[str, Any]:
    """The signature bundle over the manifest's statement (the statement travels inside it)."""
    return make_bundle(dump_json(manifest.statement()), signer)


@dataclass(frozen=True, slots=True)
class SignedManifest:
    manifest: Manifest
    signature: SignatureInfo
    warnings: tuple[str, ...] = ()


def _what(manifest: Manifest) -> str:
    release = manifest.release
    date = f", created {release.created}" if release.created else ""
    level = "" if manifest.checkpoint.tensor_level else "; file level only: no tensor-level data was signed"
    return f"release {release.name!r}{date}, {len(manifest.checkpoint.files)} files{level}"


def check_signature(
    document: Any, trust: TrustStore, *, seen: SeenReleases | None = None, allow_older: bool = False
) -> SignedManifest:
    """Open a signature bundle: verify it with the key it names, if that key is given or trusted."""
    bundle = parse_bundle(document)
    verifier = trust.by_hint(bundle.hint)
    if verifier is None and trust.given:
        names = ", ".join(k.name for k in trust.keys)
        raise SignatureError(
            f"the manifest is signed by key {bundle.hint[:16]}..., not by the key given ({names}); "
            "it was signed by someone else or its key hint was altered"
        )
    if verifier is not None and not verifier.verify(bundle.signature, pae(PAYLOAD_TYPE, bundle.payload)):
        raise SignatureError(
            f"the signature does not verify with key {verifier.name}: the manifest was altered after "
            "signing, or signed by another key"
        )
    try:
        manifest = manifest_from_statement(bundle.statement())
    except SignatureError:
        raise
    except ProvenanceError as exc:
        raise SignatureError(f"the signed manifest is not valid: {exc}") from None
    warnings: list[str] = []
    if verifier is None:
        if trust.required:
            raise SignatureError(
                f"the manifest is signed by key {bundle.hint[:16]}..., which is not trusted, and "
                f"{trust.reason} requires a trusted signature"
            )
        info = SignatureInfo(
            SignatureStatus.UNTRUSTED,
            f"unknown key {bundle.hint[:16]}...",
            f"signature not checked (no such key given or trusted); {_what(manifest)}",
        )
        warnings.append(
            f"signed by an unknown key ({bundle.hint[:16]}...): the signature was NOT checked, and anyone can "
            "write such a bundle; give --key with the publisher's public key to check it"
        )
    else:
        info = SignatureInfo(SignatureStatus.VALID, verifier.name, _what(manifest))
        warnings.extend(_rollback(manifest, bundle.hint, seen, allow_older))
    if not manifest.checkpoint.tensor_level:
        warnings.append("the signature covers whole-file SHA-256 digests only: no tensor-level data was signed")
    return SignedManifest(manifest, info, tuple(warnings))


def _rollback(manifest: Manifest, hint: str, seen: SeenReleases | None, allow_older: bool) -> list[str]:
    created = manifest.release.created
    if seen is None or not created:
        return []
    newest = seen.newest(manifest.release.name, hint)
    if newest and created < newest:
        message = (
            f"this manifest of {manifest.release.name!r} is dated {created}, but a newer one dated {newest} "
            "signed by the same key was verified before"
        )
        if not allow_older:
            raise SignatureError(f"{message}; refusing an older manifest as current (--allow-older to accept it)")
        return [f"{message}; checking against the older one as asked"]
    seen.record(manifest.release.name, hint, created)
    return []
