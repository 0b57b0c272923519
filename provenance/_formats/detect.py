"""Which reader owns a file: by name, so that a file is never parsed by a format it does not claim."""

from __future__ import annotations

from provenance._formats.gguf import GgufReader
from provenance._formats.interface import FormatReader
from provenance._formats.safetensors import SafetensorsReader
from provenance._formats.torch import TorchReader

READERS: tuple[FormatReader, ...] = (SafetensorsReader(), TorchReader(), GgufReader())


def reader_for(path: str) -> FormatReader | None:
    """The reader that claims this file name, or None for files that hold no weights."""
    for reader in READERS:
        if reader.claims(path):
            return reader
    return None
