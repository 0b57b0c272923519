"""ECDSA keys on P-256, P-384 and P-521, hashed as model_signing and Sigstore do for each curve."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from manifests.errors import ProvenanceError

CURVES: dict[str, ec.EllipticCurve] = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
_HASHES: dict[int, hashes.HashAlgorithm] = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}


def _hash_for(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    algorithm = _HASHES.get(key.curve.key_size)
    if algorithm is None:
        raise ProvenanceError(f"curve {key.curve.name} is not supported; use P-256, P-384 or P-521")
    return algorithm


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the PEM public key: the `publicKey.hint` of a model_signing bundle."""
    return hashlib.sha256(public_pem(key)).hexdigest()


@dataclass(frozen=True)
class EcSigner:
    private_key: ec.EllipticCurvePrivateKey

    @property
    def hint(self) -> str:
        return key_hint(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message, ec.ECDSA(_hash_for(self.private_key.public_key())))


@dataclass(frozen=True)
class EcVerifier:
    public_key: ec.EllipticCurvePublicKey
    label: str

    @property
    def hint(self) -> str:
        return key_hint(self.public_key)

    @property
    def name(self) -> str:
        return self.label

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public_key.verify(signature, message, ec.ECDSA(_hash_for(self.public_key)))
        except InvalidSignature:
            return False
        return True
