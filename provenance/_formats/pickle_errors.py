"""What the restricted unpickler refuses: a global outside the allow-list, damage, and what it does not model."""

from __future__ import annotations

from provenance.errors import ProvenanceError


class DisallowedGlobal(ProvenanceError):
    """The pickle names a global outside the allow-list: the file is refused, nothing was imported."""

    def __init__(self, source: str, module: str, name: str) -> None:
        super().__init__(
            f"{source}: the pickle names {module}.{name}, which is not allowed in a checkpoint "
            "(loading it could run code); the file is refused and nothing was imported"
        )
        self.module = module
        self.name = name


class UnreadablePickle(ProvenanceError):
    """A pickle that is damaged or builds something a checkpoint never holds."""


class RefusedPickle(UnreadablePickle):
    """A readable pickle asking torch to apply something this tool does not model (values torch would change,
    a stand-in rewritten after it was checked): deliberate, not damage."""
