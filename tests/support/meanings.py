"""A manifest as this tool wrote it before it recorded what settings files mean: the same file entries
without `meaning`, so settings files are known by digest only (what older manifests give)."""

from __future__ import annotations

import json
from pathlib import Path

KEY = "weights_provenance/v1"


def without_meanings(manifest: Path, path: Path) -> Path:
    """`manifest`'s statement with every file's meaning left out, written to `path`."""
    statement = json.loads(manifest.read_text())
    for entry in statement["predicate"][KEY]["files"]:
        entry.pop("meaning", None)
    path.write_text(json.dumps(statement))
    return path
