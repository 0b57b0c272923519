"""Errors a user can act on, shared by every room: the base class and the document's own.

Each carries one line that says what is wrong and what to do, and the exit code the CLI ends with.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """An input or request the tool cannot act on: exit code 2."""

    exit_code = 2


class UnreadableInput(ProvenanceError):
    """A path that does not exist, cannot be opened, or is not what the command needs."""


class UnsafePath(ProvenanceError):
    """A path that is absolute, climbs out with '..', or leaves the checkpoint through a symlink."""


class OutputExists(ProvenanceError):
    """Refusal to overwrite an existing output without --force."""


class ManifestError(ProvenanceError):
    """A manifest that cannot be read or does not follow the format."""


class SignatureError(ProvenanceError):
    """A signature that is broken, not over this manifest, or not trusted where trust was required."""

    exit_code = 3
