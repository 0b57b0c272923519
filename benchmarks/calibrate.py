"""The calibration table in the README: measured transformations of a sketched release and what they read as.

Builds a bfloat16 release of the sample model, fingerprints it with --sketches, applies each
transformation, verifies it with the installed `provenance`, and prints a Markdown table of the measured
figures (median over the tensors that are not bit-identical) and the resulting statuses and verdict. Then
the same for llama.cpp GGUF quantizations (written by the gguf package, as tests/support/llama.py
writes them) of the float16 sample release.

    python3 benchmarks/calibrate.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provenance._sample import sample_tensors, write_sharded
from tests.support.llama import write_llama_gguf

Weights = dict[str, np.ndarray]


def bf16(seed: int = 0) -> Weights:
    return {
        k: v.astype(np.float32).astype(ml_dtypes.bfloat16) if v.ndim == 2 else v
        for k, v in sample_tensors(seed).items()
    }


def noise(scale: float, layer: str | None, base: Callable[[], Weights] = bf16) -> Callable[[], Weights]:
    def make() -> Weights:
        rng = np.random.default_rng(1)
        return {
            k: (v.astype(np.float32) * (1 + scale * rng.standard_normal(v.shape))).astype(v.dtype)
            if v.ndim == 2 and (layer is None or layer in k)
            else v
            for k, v in base().items()
        }

    return make


def one_ulp_off() -> Weights:
    def nudge(values: np.ndarray) -> np.ndarray:
        half = values.astype(np.float16)
        bits = half.view(np.uint16)
        return np.where(half != 0, bits + np.uint16(1), bits).astype(np.uint16).view(np.float16)

    return {k: nudge(v) if v.dtype == ml_dtypes.bfloat16 else v for k, v in bf16().items()}


CASES: dict[str, Callable[[], Weights]] = {
    "BF16 -> F16 (canonical cast)": lambda: {
        k: v.astype(np.float16) if v.dtype == ml_dtypes.bfloat16 else v for k, v in bf16().items()
    },
    "BF16 -> F32 (widened)": lambda: {k: v.astype(np.float32) for k, v in bf16().items()},
    "BF16 -> F16, one ulp off the canonical cast": one_ulp_off,
    "noise 0.1% on layer 1": noise(0.001, ".layers.1."),
    "noise 1% on layer 1": noise(0.01, ".layers.1."),
    "noise 5% on layer 1": noise(0.05, ".layers.1."),
    "noise 50% on every matrix (continued pretraining)": noise(0.5, None),
    "rows of every matrix permuted": lambda: {k: v[::-1].copy() if v.ndim == 2 else v for k, v in bf16().items()},
    "unrelated weights (another seed)": lambda: bf16(9),
}

# GGUF cases against the float16 release: (quantization, weights before quantizing)
GGUF_CASES: dict[str, tuple[str, Callable[[], Weights]]] = {
    f"GGUF {kind}": (kind, sample_tensors) for kind in ("Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0")
} | {
    "GGUF Q8_0 of noise 0.1% on layer 1": ("Q8_0", noise(0.001, ".layers.1.", sample_tensors)),
    "GGUF Q8_0 of noise 1% on layer 1": ("Q8_0", noise(0.01, ".layers.1.", sample_tensors)),
    "GGUF Q8_0 of noise 5% on layer 1": ("Q8_0", noise(0.05, ".layers.1.", sample_tensors)),
    "GGUF Q4_0 of noise 1% on layer 1": ("Q4_0", noise(0.01, ".layers.1.", sample_tensors)),
    "GGUF Q4_0 of noise 5% on layer 1": ("Q4_0", noise(0.05, ".layers.1.", sample_tensors)),
    "GGUF Q4_0 of noise 20% on layer 1": ("Q4_0", noise(0.2, ".layers.1.", sample_tensors)),
}


def row(exe: str, name: str, folder: Path, manifest: Path) -> str:
    """One table row: `provenance verify` of a transformed copy, its figures and what it reads as."""
    proc = subprocess.run(
        [exe, "verify", str(folder), "--manifest", str(manifest), "--json", "-q"], capture_output=True, text=True
    )
    document = json.loads(proc.stdout)
    changed = [t for t in document["tensors"] if t["status"] != "match"]
    changes = [t["change"] for t in changed if t.get("change") is not None]
    correlations = [t["correlation"] for t in changed if t.get("correlation") is not None]
    change = f"{statistics.median(changes):.2%}" if changes else "-"
    correlation = f"{statistics.median(correlations):.3f}" if correlations else "-"
    counts = Counter(t["status"] for t in changed)
    statuses = ", ".join(f"{status} {count}" for status, count in sorted(counts.items())) or "match"
    return (
        f"| {name} | {len(changed)} of {len(document['tensors'])} | {change} | {correlation} | {statuses} | "
        f"{document['verdict']} |"
    )


def main() -> int:
    exe = os.environ.get("PROVENANCE", "provenance")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_sharded(root / "release", bf16(), 2)
        manifest = root / "release.json"
        subprocess.run([exe, "fingerprint", str(root / "release"), "--sketches", "-o", str(manifest), "-q"], check=True)
        columns = ["transformation", "tensors not bit-identical", "sampled relative change", "sampled correlation"]
        print("| " + " | ".join([*columns, "statuses", "verdict"]) + " |")
        print("|---|---|---|---|---|---|")
        for i, (name, make) in enumerate(CASES.items()):
            folder = root / f"case-{i}"
            write_sharded(folder, make(), 2)
            print(row(exe, name, folder, manifest))
        write_sharded(root / "f16", sample_tensors(), 2)
        f16_manifest = root / "f16.json"
        command = [exe, "fingerprint", str(root / "f16"), "--sketches", "-o", str(f16_manifest), "-q"]
        subprocess.run(command, check=True)
        for i, (name, (kind, make)) in enumerate(GGUF_CASES.items()):
            folder = root / f"gguf-{i}"
            folder.mkdir()
            write_llama_gguf(folder / "model.gguf", kind, make())
            print(row(exe, name, folder, f16_manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
