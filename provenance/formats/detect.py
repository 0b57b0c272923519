"""Which reader owns a file: by name, so that a file is never parsed by a format it does not claim."""

from __future__ import annotations

from provenance.formats.gguf import GgufReader
from provenance.formats.interface import FormatReader
from provenance.formats.safetensors import SafetensorsReader
from provenance.formats.torch import TorchReader

READERS: tuple[FormatReader, ...] = (SafetensorsReader(), TorchReader(), GgufReader())


def reader_for(path: str) -> FormatReader | None:
    """The reader that claims this file name, or None for files that hold no weights."""
    for reader in READERS:
        if reader.claims(path):
            return reader
    return None


def is_weights_file(path: str) -> bool:
    return reader_for(path) is not None
