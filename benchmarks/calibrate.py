"""The calibration table in the README: what real conversions and fine-tunes of a release read as.

First the outputs of the real tools, built as tests/test_real_tools.py builds them (tests/support/realtools.py:
a tiny float16 Llama saved by transformers' `save_pretrained`, converted by llama.cpp's
`convert_hf_to_gguf.py` and by transformers' Meta converter, fine-tuned by noise and by a few optimizer
steps), each verified against a sketched and against a plain manifest of its reference. Then the synthetic
transformations that the real tools do not write (finer noise levels, one ulp off a cast, permuted rows, the
other legacy GGUF quantizations, written by the `gguf` package as tests/support/llama.py writes them). Prints
a Markdown table: the measured figures (medians over the tensors that are not bit-identical), the statuses,
and the verdict with its proof against each manifest.

Needs the real tools (`python3 -m tests.support.fetch_tools`) and the `loaders` extra; run it with the
project's Python from the repository root:

    .venv/bin/python benchmarks/calibrate.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provenance._sample import sample_tensors, write_sharded
from tests.support.llama import write_llama_gguf
from tests.support.realtools import PLAIN, SKETCHED, Workshop, missing, provenance

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


# The real outputs (tests/support/realtools.py case names): (row, candidate, reference).
REAL_CASES: tuple[tuple[str, str, str], ...] = (
    ("save_pretrained again (safetensors)", "resaved", "release"),
    ("save_pretrained, .bin", "bin", "release"),
    ("save_pretrained, max_shard_size 1MB", "shards", "release"),
    ("save_pretrained after .to(float32)", "float32", "release"),
    ("save_pretrained after .to(bfloat16)", "bfloat16", "release"),
    ("fine-tune: noise 1% on every matrix", "noise", "release"),
    ("fine-tune: 3 AdamW steps, float32", "optimizer", "release"),
    ("unrelated weights (another seed)", "unrelated", "release"),
    ("convert_hf_to_gguf --outtype f16", "gguf-f16", "release"),
    ("convert_hf_to_gguf --outtype bf16", "gguf-bf16", "release"),
    ("convert_hf_to_gguf --outtype f32", "gguf-f32", "release"),
    ("convert_hf_to_gguf --outtype q8_0", "gguf-q8_0", "release"),
    ("Meta shards (2) against their transformers conversion", "meta-2", "meta-2-hf"),
    ("transformers conversion against Meta's shards (2)", "meta-2-hf", "meta-2"),
)
# The synthetic rows that still add something: degrees the real tools do not write.
SYNTHETIC = (
    "BF16 -> F16, one ulp off the canonical cast",
    "noise 0.1% on layer 1",
    "noise 1% on layer 1",
    "noise 5% on layer 1",
    "noise 50% on every matrix (continued pretraining)",
    "rows of every matrix permuted",
)
SYNTHETIC_GGUF = ("GGUF Q5_1", "GGUF Q5_0", "GGUF Q4_1", "GGUF Q4_0", *(n for n in GGUF_CASES if " of noise " in n))
COLUMNS = (
    "transformation",
    "tensors not bit-identical",
    "sampled relative change",
    "sampled correlation",
    "statuses",
    "verdict",
    "proof",
    "without sketches",
)


def verify(folder: Path, manifest: Path) -> dict[str, Any]:
    proc = provenance("verify", folder, "--manifest", manifest, "--json", "-q")
    if not proc.stdout.strip():
        raise SystemExit(f"verify {folder} failed: {proc.stderr.strip()}")
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def row(name: str, folder: Path, sketched: Path, plain: Path) -> str:
    """One table row: `provenance verify` of a candidate against both manifests, its figures and verdicts."""
    document = verify(folder, sketched)
    without = verify(folder, plain)
    changed = [t for t in document["tensors"] if t["status"] != "match"]
    changes = [t["change"] for t in changed if t.get("change") is not None]
    correlations = [t["correlation"] for t in changed if t.get("correlation") is not None]
    change = f"{statistics.median(changes):.2%}" if changes else "-"
    correlation = f"{statistics.median(correlations):.3f}" if correlations else "-"
    counts = Counter(t["status"] for t in changed)
    statuses = ", ".join(f"{status} {count}" for status, count in sorted(counts.items())) or "match"
    plain_verdict = without["verdict"] + (f" ({without['proof']})" if without.get("proof") else "")
    cells = [name, f"{len(changed)} of {len(document['tensors'])}", change, correlation, statuses]
    cells += [document["verdict"], document.get("proof") or "-", plain_verdict]
    return "| " + " | ".join(cells) + " |"


def manifests(folder: Path, root: Path, stem: str) -> tuple[Path, Path]:
    """A sketched and a plain manifest of `folder`."""
    paths = root / f"{stem}.sketched.json", root / f"{stem}.plain.json"
    for path, flags in zip(paths, (SKETCHED, PLAIN), strict=True):
        proc = provenance("fingerprint", folder, *flags, "-o", path, "-q")
        if proc.returncode != 0:
            raise SystemExit(f"fingerprint {folder} failed: {proc.stderr.strip()}")
    return paths


def main() -> int:
    reason = missing()
    if reason is not None:
        print(f"calibrate: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        workshop = Workshop(root / "real")
        workshop.root.mkdir()
        for name, candidate, reference in REAL_CASES:
            sketched, plain = workshop.manifest(reference, "sketched"), workshop.manifest(reference, "plain")
            print(row(name, workshop.folder(candidate), sketched, plain), flush=True)
        write_sharded(root / "release", bf16(), 2)
        sketched, plain = manifests(root / "release", root, "bf16")
        for i, name in enumerate(SYNTHETIC):
            folder = root / f"case-{i}"
            write_sharded(folder, CASES[name](), 2)
            print(row(f"synthetic: {name}", folder, sketched, plain), flush=True)
        write_sharded(root / "f16", sample_tensors(), 2)
        sketched, plain = manifests(root / "f16", root, "f16")
        for i, name in enumerate(SYNTHETIC_GGUF):
            kind, make = GGUF_CASES[name]
            folder = root / f"gguf-{i}"
            folder.mkdir()
            write_llama_gguf(folder / "model.gguf", kind, make())
            print(row(f"synthetic: {name}", folder, sketched, plain), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
