"""The signed form: a Sigstore bundle v0.3 holding a DSSE envelope, exactly as model_signing writes it for keys.

Parsing is strict: every field a verifier relies on is checked, and anything else is refused with the
exit code of a bad signature, because a bundle that does not parse cannot vouch for anything.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from manifests.errors import SignatureError
from manifests.signing.interface import Signer

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed bundle: the signed payload bytes, the signature and the key hint it names."""

    payload: bytes
    signature: bytes
    hint: str

    def statement(self) -> Any:
        from manifests.io import check_parse_cost

        check_parse_cost(self.payload, "the signed payload", SignatureError)
        try:
            return json.loads(self.payload)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SignatureError("the signed payload is not JSON; the bundle is damaged") from None


def make_bundle(payload: bytes, signer: Signer) -> dict[str, Any]:
    """Sign `payload` (the statement's JSON bytes) and wrap it as model_signing does."""
    signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": signer.hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"bundle {what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"bundle {what} is not valid base64; the bundle is damaged") from None


def is_bundle(document: Any) -> bool:
    return isinstance(document, dict) and ("dsseEnvelope" in document or "mediaType" in document)


def parse_bundle(document: Any) -> Bundle:
    """Validate a bundle's structure; SignatureError (exit 3) for anything a verifier cannot rely on."""
    if not isinstance(document, dict):
        raise SignatureError("the signature is not a JSON object")
    media_type = document.get("mediaType")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise SignatureError(f"unknown bundle mediaType {media_type!r}; expected {BUNDLE_MEDIA_TYPE}")
    material = document.get("verificationMaterial")
    public_key = material.get("publicKey") if isinstance(material, dict) else None
    hint = public_key.get("hint") if isinstance(public_key, dict) else None
    if not isinstance(hint, str) or not hint:
        raise SignatureError("the bundle names no public key (verificationMaterial.publicKey.hint)")
    envelope = document.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureError("the bundle holds no DSSE envelope")
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise SignatureError(f"payloadType is {envelope.get('payloadType')!r}, expected {PAYLOAD_TYPE}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise SignatureError("the envelope must hold exactly one signature")
    return Bundle(
        payload=_b64(envelope.get("payload"), "payload"),
        signature=_b64(signatures[0].get("sig"), "signature"),
        hint=hint.lower(),
    )
