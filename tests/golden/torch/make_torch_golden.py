"""Regenerate the golden PyTorch files. Needs torch (`pip install torch==2.13.0`); commit what it writes.

    python tests/golden/torch/make_torch_golden.py [OUT_DIR]

Writes to OUT_DIR (default: next to this script):
  checkpoint.pt           torch.save, zip format: every fixed-width dtype, views sharing a storage, a
                          non-contiguous tensor, a transposed one, tied weights, a nested dict with a list
  checkpoint-legacy.pt    the same object without its float8 tensors, _use_new_zipfile_serialization=False
                          (the pre-zip format; torch.load cannot read back float8 tensors from it)
  checkpoint.safetensors  the same tensors, contiguous, with the same dotted names (safetensors.torch)
  expected.json           per file and tensor path: dtype, shape and BLAKE3 of the contiguous bytes that
                          torch itself gives, which the tests compare our digests with
The tensors are fixed numbers, so expected.json is the same on every run; the .pt files are not byte-
identical across runs (torch writes a random serialization id), which is why tests compare digests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import blake3
import torch
from safetensors.torch import save_file

DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


def checkpoint() -> dict[str, object]:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    embed = torch.linspace(-2, 2, 48, dtype=torch.float32).reshape(8, 6)
    dtypes = {
        str(dtype).removeprefix("torch."): (torch.arange(12) % 7 - 3).to(dtype).reshape(3, 4)
        for dtype in DTYPE_CODES
        if dtype not in (torch.bool, torch.complex64)
    }
    dtypes["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    dtypes["complex64"] = torch.tensor([1 + 2j, -3.5 + 0.25j], dtype=torch.complex64)
    return {
        "model_state_dict": {
            "embed.weight": embed,
            "lm_head.weight": embed,  # tied: the same tensor twice
            "base": base,
            "row": base[1],  # a view at an offset into base's storage
            "column": base[:, 2],  # non-contiguous view of the same storage
            "transposed": base.t(),
            "scalar": torch.tensor(2.5),
            "empty": torch.zeros(0, 3),
            "dtypes": dtypes,
        },
        "layers": [torch.ones(2, 2), torch.full((3,), 7, dtype=torch.int64)],
        "epoch": 3,
        "note": "non-tensor entries are listed, not executed",
    }


def legacy_checkpoint() -> dict[str, object]:
    """The checkpoint without the dtypes the legacy format stores as UntypedStorage, which torch.load refuses."""
    state = checkpoint()
    tensors = state["model_state_dict"]["dtypes"]  # type: ignore[index]
    for name in ("float8_e4m3fn", "float8_e5m2"):
        del tensors[name]
    return state


def leaves(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(tree, dict):
        out: dict[str, torch.Tensor] = {}
        for key, value in tree.items():
            out.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, list | tuple):
        out = {}
        for index, value in enumerate(tree):
            out.update(leaves(value, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix: tree} if isinstance(tree, torch.Tensor) else {}


def describe(tensor: torch.Tensor) -> dict[str, object]:
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return {"dtype": DTYPE_CODES[tensor.dtype], "shape": list(tensor.shape), "blake3": blake3.blake3(raw).hexdigest()}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state = checkpoint()
    torch.save(state, out / "checkpoint.pt")
    torch.save(legacy_checkpoint(), out / "checkpoint-legacy.pt", _use_new_zipfile_serialization=False)
    tensors = leaves(state)
    save_file({name: t.contiguous().clone() for name, t in tensors.items()}, str(out / "checkpoint.safetensors"))
    expected = {name: describe(t) for name, t in sorted(tensors.items())}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
