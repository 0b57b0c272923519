"""Regenerate the golden signature files. Run once per format version; commit what it writes.

    python tests/golden/make_golden.py

Writes, next to this script:
  model/                          a tiny release (safetensors weights and a config), the signed content
  model_signing-1.1.1.sig/.pub    a bundle made by the real `model_signing sign key` (model-signing 1.1.1)
  provenance-v1.sig/.pub          a bundle made by `provenance sign`, this project's first signed format
The private keys are made in a temporary folder and thrown away: the golden files can only be verified.
Tests verify these files forever; a format change must keep them verifying.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent


def run(*args: str) -> None:
    subprocess.run(args, check=True)


def main() -> None:
    model = HERE / "model"
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir()
    weights = {
        "embed.weight": np.arange(64, dtype=np.float16).reshape(8, 8),
        "layer.0.weight": np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8),
        "layer.0.bias": np.zeros(4, dtype=np.float32),
    }
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    (model / "config.json").write_text(json.dumps({"hidden_size": 8, "layers": 1}, indent=2) + "\n")

    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "ms"
        run(str(bin_dir / "provenance"), "keygen", str(key))
        run(
            str(bin_dir / "model_signing"),
            "sign",
            "key",
            str(model),
            "--private_key",
            f"{key}.key",
            "--signature",
            str(HERE / "model_signing-1.1.1.sig"),
        )
        shutil.copyfile(f"{key}.pub", HERE / "model_signing-1.1.1.pub")

        key = Path(tmp) / "ours"
        manifest = Path(tmp) / "manifest.json"
        run(str(bin_dir / "provenance"), "keygen", str(key))
        run(str(bin_dir / "provenance"), "fingerprint", str(model), "--name", "golden-model", "-o", str(manifest))
        run(
            str(bin_dir / "provenance"),
            "sign",
            str(manifest),
            "--key",
            f"{key}.key",
            "-o",
            str(HERE / "provenance-v1.sig"),
            "--force",
        )
        shutil.copyfile(f"{key}.pub", HERE / "provenance-v1.pub")


if __name__ == "__main__":
    main()
