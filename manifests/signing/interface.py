"""The signer/verifier seam (key-based signing today, keyless Sigstore signing can be added behind it), and
what a signature check concludes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Signer(Protocol):
    """Signs the DSSE pre-authentication encoding of a payload."""

    @property
    def hint(self) -> str:
        """What the bundle records to name the verifying key (hex SHA-256 of the PEM public key)."""
        ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """Checks a signature made by one key."""

    @property
    def hint(self) -> str: ...

    @property
    def name(self) -> str:
        """How reports name the signer: the trusted key's name, or its file."""
        ...

    def verify(self, signature: bytes, message: bytes) -> bool: ...


class SignatureStatus(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNSIGNED = "unsigned"
    UNTRUSTED = "untrusted"


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """Whether the reference was signed, and by whom."""

    status: SignatureStatus = SignatureStatus.UNSIGNED
    signer: str | None = None
    detail: str | None = None
