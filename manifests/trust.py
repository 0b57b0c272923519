"""Which keys are trusted, and which manifest of a release was the newest seen (rollback protection).

Trusted keys are PEM public keys named by their file stem, in two folders: the one shipped with the
package (`manifests/trusted_keys/`) and the user's (`$XDG_CONFIG_HOME/weights-provenance/trusted_keys/`).
A file `policy.json` in the user's folder with {"require_trusted_signature": true} makes a trusted
signature mandatory for every `verify`, as `--key` does for one run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from manifests.errors import ProvenanceError
from manifests.io import NotASmallFile, check_parse_cost, read_bounded, small_file_bytes, write_atomic
from manifests.signing.interface import Verifier

APP = "weights-provenance"
POLICY_CAP = 64 << 10  # a policy is one flag
# The record of seen releases holds ~100 bytes per release and key: 8 MiB is ~80,000 of them.
SEEN_CAP = 8 << 20


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP


def bundled_keys_dir() -> Path:
    return Path(__file__).with_name("trusted_keys")


@dataclass(frozen=True)
class TrustStore:
    """Named public keys, and whether a trusted signature is required."""

    keys: tuple[Verifier, ...] = ()
    required: bool = False
    given: bool = False  # keys came from --key: only they count
    reason: str = "the trust policy"  # what requires a trusted signature, for the refusal's wording

    def by_hint(self, hint: str) -> Verifier | None:
        return next((k for k in self.keys if k.hint == hint), None)


def _keys_in(folder: Path) -> list[Verifier]:
    paths = sorted(folder.glob("*.pub")) if folder.is_dir() else []
    if not paths:
        return []
    from manifests.keys import load_verifier  # cryptography loads only when there are keys to read

    return [load_verifier(path, path.stem) for path in paths]


def load_trust(keys: list[Path] | None = None, *, key_dir: Path | None = None, require: bool = False) -> TrustStore:
    """The keys that count for this run: those given with --key, else the trusted folders; `require`
    (--require-signature) asks for a valid signature by one of them, as the trust policy can."""
    if keys:
        from manifests.keys import load_verifier

        return TrustStore(tuple(load_verifier(p) for p in keys), required=True, given=True, reason="--key")
    folders = [bundled_keys_dir(), key_dir or config_dir() / "trusted_keys"]
    found = [k for folder in folders for k in _keys_in(folder)]
    if require:
        return TrustStore(tuple(found), required=True, reason="--require-signature")
    return TrustStore(tuple(found), required=_policy_requires_signature(config_dir() / "policy.json"))


def _policy_requires_signature(policy: Path) -> bool:
    """Whether policy.json requires a trusted signature; a policy that cannot be read stops the run
    (exit 2) rather than silently relaxing verification."""
    if not policy.exists():
        return False
    try:
        raw = read_bounded(policy, POLICY_CAP, "trust policy")
    except ProvenanceError as exc:
        raise ProvenanceError(f"{exc}; fix it or delete it") from None
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise ProvenanceError(
            f'trust policy {policy} is not a JSON object like {{"require_trusted_signature": true}}; '
            "fix it or delete it"
        )
    return bool(document.get("require_trusted_signature", False))


@dataclass
class SeenReleases:
    """The newest `created` date seen per release and signing key, kept between runs.

    A record that cannot be read stops the run (exit 2): starting afresh would silently accept any older
    manifest as current, which is the rollback this record exists to catch.
    """

    path: Path = field(default_factory=lambda: state_dir() / "seen-releases.json")

    def _damaged(self, why: str) -> ProvenanceError:
        return ProvenanceError(
            f"the record of verified releases {self.path} {why}; it guards against older manifests being "
            "passed off as current: restore it, or delete it to start a new record"
        )

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists() and not self.path.is_symlink():
            return {}
        try:
            raw = small_file_bytes(self.path, SEEN_CAP)
        except NotASmallFile as exc:
            raise self._damaged(f"is {exc.reason}" if exc.too_large else f"cannot be read ({exc.reason})") from None
        try:
            check_parse_cost(raw, str(self.path), ValueError)
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise self._damaged("is damaged (not JSON)") from None
        if not isinstance(data, dict) or not all(
            isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values()) for entry in data.values()
        ):
            raise self._damaged("is damaged (not a map of release to key to date)")
        return data

    def newest(self, release: str, hint: str) -> str | None:
        return self._load().get(release, {}).get(hint)

    def record(self, release: str, hint: str, created: str) -> None:
        data = self._load()
        entry = data.setdefault(release, {})
        if created > entry.get(hint, ""):
            entry[hint] = created
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.path, json.dumps(data, indent=2).encode(), force=True)
            except (OSError, ProvenanceError):  # the record is a safeguard, not a requirement
                return
