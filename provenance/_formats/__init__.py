"""Readers that turn a weights container into tensor records without executing anything in it."""

from manifests.records import is_weights_file
from provenance._formats.detect import reader_for
from provenance._formats.interface import Layout, TensorRecord, ViewRecord

__all__ = ["Layout", "TensorRecord", "ViewRecord", "is_weights_file", "reader_for"]
