"""Readers that turn a weights container into tensor records without executing anything in it."""

from provenance.formats.detect import is_weights_file, reader_for
from provenance.formats.interface import Layout, TensorRecord, ViewRecord

__all__ = ["Layout", "TensorRecord", "ViewRecord", "is_weights_file", "reader_for"]
