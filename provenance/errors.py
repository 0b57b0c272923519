"""Errors a user can act on: the document's (re-exported, so one import serves) and the weights' own.

Each carries one line that says what is wrong and what to do, and the exit code the CLI ends with.
"""

from __future__ import annotations

from manifests.errors import (
    ManifestError,
    OutputExists,
    ProvenanceError,
    SignatureError,
    UnreadableInput,
    UnsafePath,
)


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


class TorrentError(ProvenanceError):
    """A .torrent file that is not valid bencode or does not follow BEP 3 / BEP 52."""


class HubError(ProvenanceError):
    """A hub repository, revision or file that cannot be read, or a server that does not behave."""


__all__ = [
    "FileChanged",
    "HubError",
    "MalformedContainer",
    "ManifestError",
    "OutputExists",
    "ProvenanceError",
    "RefusedContainer",
    "SignatureError",
    "TorrentError",
    "TruncatedContainer",
    "UnreadableInput",
    "UnsafePath",
]
