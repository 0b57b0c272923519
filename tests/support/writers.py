"""Test-only writers: the sample model in bfloat16 and variants of it, and the damage an unfinished download
leaves (the demo's own writers, and the flipped bit it shows, stay in provenance/_sample.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np

from provenance._sample import sample_tensors, write_sharded


def cut_short(path: Path, keep_fraction: float = 0.5) -> None:
    """Truncate a file, as an unfinished download leaves it."""
    size = path.stat().st_size
    with open(path, "r+b") as stream:
        stream.truncate(int(size * keep_fraction))


def bf16_weights() -> dict[str, np.ndarray]:
    """The sample model with its matrices in bfloat16 (norms stay float32)."""
    return {
        k: v.astype(np.float32).astype(ml_dtypes.bfloat16) if v.ndim == 2 else v for k, v in sample_tensors().items()
    }


def variant(tmp_path: Path, name: str, change: Callable[[str, np.ndarray], np.ndarray]) -> Path:
    """The bfloat16 sample model with `change` applied to each tensor, in 2 shards under tmp_path/name."""
    folder = tmp_path / name
    write_sharded(folder, {k: change(k, v) for k, v in bf16_weights().items()}, 2)
    return folder
