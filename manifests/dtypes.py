"""Element widths of the safetensors dtype codes, the names every report uses whatever the format."""

from __future__ import annotations

# Width in bits: the sub-byte float types of recent safetensors releases pack elements without padding.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
}

# The legacy GGUF types whose reference quantizer (the gguf package's, which llama.cpp's converter uses) is a
# function of each block's values alone: a manifest may record the digest of their blocks (`--quant-digests`).
EXACT_QUANTS = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")

# Quantized GGUF types are named by their GGUF names and digested as raw blocks (see formats/gguf.py).
GGUF_QUANT_TYPES = frozenset(
    {
        "Q4_0",
        "Q4_1",
        "Q5_0",
        "Q5_1",
        "Q8_0",
        "Q8_1",
        "Q2_K",
        "Q3_K",
        "Q4_K",
        "Q5_K",
        "Q6_K",
        "Q8_K",
        "IQ2_XXS",
        "IQ2_XS",
        "IQ3_XXS",
        "IQ1_S",
        "IQ4_NL",
        "IQ3_S",
        "IQ2_S",
        "IQ4_XS",
        "IQ1_M",
        "TQ1_0",
        "TQ2_0",
        "MXFP4",
        "NVFP4",
        "Q1_0",
    }
)


def is_known_dtype(dtype: str) -> bool:
    return dtype in DTYPE_BITS or dtype in GGUF_QUANT_TYPES
