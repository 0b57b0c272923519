"""Key files: generate a pair, load private keys (optionally encrypted) and public keys, with clear errors."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from manifests.errors import ProvenanceError
from manifests.io import read_bounded, refuse_overwrite, write_atomic
from manifests.signing.ec_key import CURVES, EcSigner, EcVerifier, public_pem

PASSWORD_ENV = "PROVENANCE_KEY_PASSWORD"
KEY_CAP = 64 << 10


def generate_key_pair(
    name: str | Path, *, curve: str = "p256", password: bytes | None = None, force: bool = False
) -> tuple[Path, Path]:
    """Write NAME.key (PKCS#8 PEM, mode 0600, encrypted when a password is given) and NAME.pub; return both
    paths. Raises ProvenanceError (exit 2) for an unknown curve, OutputExists (exit 2) without `force`
    when either file exists."""
    if curve not in CURVES:
        raise ProvenanceError(f"unknown curve {curve!r}; choose one of {', '.join(CURVES)}")
    base = Path(name)
    private_path, public_path = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    for path in (private_path, public_path):
        refuse_overwrite(path, force)
    key = ec.generate_private_key(CURVES[curve])
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    write_atomic(private_path, pem, force=force, mode=0o600)
    write_atomic(public_path, public_pem(key.public_key()), force=force)
    return private_path, public_path


def _read_key_file(path: Path, what: str) -> bytes:
    return read_bounded(path, KEY_CAP, what, lambda _: ProvenanceError(f"{path} is too large to be a {what}"))


def password_from_environment_or_prompt(path: Path) -> bytes:
    """The private key's password: from PROVENANCE_KEY_PASSWORD, else asked on the terminal."""
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise ProvenanceError(f"{path} is encrypted; set {PASSWORD_ENV} or run in a terminal to be asked")
    return getpass.getpass(f"password for {path}: ").encode("utf-8")


def new_password() -> bytes:
    """A password for a new key: from PROVENANCE_KEY_PASSWORD, else asked twice on the terminal. Raises
    ProvenanceError (exit 2) when it is empty, there is no terminal to ask on, or the two differ."""
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        if not value:
            raise ProvenanceError(f"{PASSWORD_ENV} is empty; set a password or drop --encrypt")
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise ProvenanceError(f"--encrypt needs a password: set {PASSWORD_ENV} or run in a terminal to be asked")
    first = getpass.getpass("password for the new key: ")
    if not first or first != getpass.getpass("again: "):
        raise ProvenanceError("the passwords were empty or did not match; nothing was written")
    return first.encode("utf-8")


def load_signer(path: Path) -> EcSigner:
    """Load a private key, asking for its password only if it is encrypted."""
    data = _read_key_file(path, "private key")
    password: bytes | None = None
    if b"ENCRYPTED" in data:
        password = password_from_environment_or_prompt(path)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise ProvenanceError(f"{path} is encrypted; set {PASSWORD_ENV} or run in a terminal to be asked") from None
    except ValueError:
        hint = "wrong password, or " if password else ""
        raise ProvenanceError(f"cannot load {path}: {hint}not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvenanceError(f"{path} is not an elliptic-curve key; make one with `provenance keygen`")
    return EcSigner(key)


def load_verifier(path: Path, name: str | None = None) -> EcVerifier:
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ProvenanceError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProvenanceError(f"{path} is not an elliptic-curve public key")
    return EcVerifier(key, name or path.name)
