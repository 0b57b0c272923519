"""Readers that turn a weights container into tensor records without executing anything in it."""

from provenance.formats.detect import is_weights_file, read_layout
from provenance.formats.interface import Layout, TensorRecord

__all__ = ["Layout", "TensorRecord", "is_weights_file", "read_layout"]
