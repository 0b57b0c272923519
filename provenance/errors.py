"""Errors a user can act on.

Each carries one line that says what is wrong and what to do, and the exit code the CLI ends with.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """An input or request the tool cannot act on: exit code 2."""

    exit_code = 2


class UnreadableInput(ProvenanceError):
    """A path that does not exist, cannot be opened, or is not what the command needs."""


class MalformedContainer(ProvenanceError):
    """A weights file whose structure fails validation; nothing in it is trusted."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RefusedContainer(MalformedContainer):
    """A well-formed weights file holding a construct a loader applies that this tool does not model (a
    PyTorch rebuild argument that changes values, zip names a loader matches otherwise): refused, and in a
    download a change, not damage."""


class TruncatedContainer(MalformedContainer):
    """A weights file that ends before its own header says it should."""


class FileChanged(ProvenanceError):
    """A file that changed while it was being hashed: its digests cannot be trusted."""


class UnsafePath(ProvenanceError):
    """A path that is absolute, climbs out with '..', or leaves the checkpoint through a symlink."""


class OutputExists(ProvenanceError):
    """Refusal to overwrite an existing output without --force."""


class TorrentError(ProvenanceError):
    """A .torrent file that is not valid bencode or does not follow BEP 3 / BEP 52."""


class HubError(ProvenanceError):
    """A hub repository, revision or file that cannot be read, or a server that does not behave."""


class ManifestError(ProvenanceError):
    """A manifest that cannot be read or does not follow the format."""


class SignatureError(ProvenanceError):
    """A signature that is broken, not over this manifest, or not trusted where trust was required."""

    exit_code = 3
