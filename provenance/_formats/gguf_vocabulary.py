"""A GGUF's tokenizer key-values summarised as the release's tokenizer files are (see `side_files`).

llama.cpp tokenizes with the vocabulary `convert_hf_to_gguf.py` wrote into the key-values
(`tokenizer.ggml.tokens`, `.scores`, `.token_type`, `.merges`, the special ids): these arrays are read here
with the bounded cursor of `gguf` and digested as they stream past, so a 256k-token vocabulary costs its
token list and no more.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from blake3 import blake3

from provenance._formats.gguf import _ARRAY, _SCALARS, _SIZES, _STRING, MAGIC, MAX_KEY_VALUES, _Cursor
from provenance._formats.side_files import MAX_TOKENS, SPECIAL_NAMES
from provenance.errors import MalformedContainer

_FLOAT32, _INT32, _UINT32 = 6, 5, 4
TOKENS, SCORES, TYPES, MERGES = (f"tokenizer.ggml.{k}" for k in ("tokens", "scores", "token_type", "merges"))
# The tokenizer key-values this summary holds against the release's files (the pre-tokenizer's name too,
# which convert_hf_to_gguf.py always writes); any other (the leading space, the tokens that end a turn,
# named chat templates) is a setting llama.cpp reads that no release file says.
SUMMARISED = frozenset(
    {TOKENS, SCORES, TYPES, MERGES, "tokenizer.chat_template"}
    | {f"tokenizer.ggml.{k}" for k in ("model", "pre", "add_bos_token", "add_eos_token")}
    | {f"tokenizer.ggml.{k}_token_id" for k in ("bos", "eos", "unknown", "padding")}
)


def _strings(cursor: _Cursor, count: int, key: str, keep: list[str] | None) -> str:
    """A string array's digest (each item length-prefixed), its items kept when asked."""
    hasher = blake3()
    for _ in range(count):
        item = cursor.string(key).encode()
        hasher.update(struct.pack("<I", len(item)))
        hasher.update(item)
        if keep is not None:
            keep.append(item.decode())
    return str(hasher.hexdigest())


def _array(cursor: _Cursor, key: str, summary: dict[str, Any], tokens: list[str]) -> None:
    kind = int(cursor.scalar("<I", f"{key} item type"))
    if kind in _SCALARS:
        read = key in (SCORES, TYPES)  # read whole: no longer than a vocabulary can be
        count = cursor.count(f"{key} item count", _SIZES[kind], MAX_TOKENS * 4 if read else None)
        raw = cursor.take(count * _SIZES[kind], key) if read else None
        if raw is None:
            cursor.skip(count * _SIZES[kind], key)
        elif key == SCORES and kind == _FLOAT32:
            summary["scores"] = blake3(raw).hexdigest()
        elif key == TYPES and kind in (_INT32, _UINT32):
            summary["types"] = blake3(raw[0::4]).hexdigest()  # each little-endian value's low byte
        return
    if kind != _STRING:  # nested arrays: no tokenizer key is one; walked over by the layout's reader already
        raise MalformedContainer(cursor.path, f"GGUF {key} is an array this reader does not summarise")
    count = cursor.count(f"{key} item count", 8, MAX_TOKENS * 4)
    if key == TOKENS:
        summary["count"] = count
        summary["tokens"] = _strings(cursor, count, key, tokens)
    elif key == MERGES:
        summary["merges"] = _strings(cursor, count, key, None)
    else:
        _strings(cursor, count, key, None)


def tokenizer_summary(stream: BinaryIO, file_size: int, path: str) -> dict[str, Any]:
    """The GGUF's vocabulary summary, special tokens (as text), add_bos/add_eos and chat templates."""
    cursor = _Cursor(stream, path, file_size)
    if cursor.take(4, "magic") != MAGIC:
        raise MalformedContainer(path, "not a GGUF file (no GGUF magic)")
    cursor.scalar("<I", "version")
    cursor.count("tensor count", 24)
    kv_count = cursor.count("key-value count", 12, MAX_KEY_VALUES)
    summary: dict[str, Any] = {}
    tokens: list[str] = []
    scalars: dict[str, Any] = {}
    unsummarised: list[str] = []
    for _ in range(kv_count):
        key = cursor.string("key")
        if key.startswith("tokenizer.") and key not in SUMMARISED:
            unsummarised.append(key)
        kind = int(cursor.scalar("<I", f"type of {key}"))
        if kind == _ARRAY:
            _array(cursor, key, summary, tokens)
        elif kind == _STRING:
            scalars[key] = cursor.string(key)
        elif kind in _SCALARS:
            scalars[key] = cursor.scalar(_SCALARS[kind], key)
        else:
            raise MalformedContainer(path, f"GGUF {key} has unknown value type {kind}")
    special = {}
    for name, key in zip(SPECIAL_NAMES, ("bos", "eos", "unknown", "padding"), strict=True):
        index = scalars.get(f"tokenizer.ggml.{key}_token_id")
        if type(index) is int and 0 <= index < len(tokens):
            special[f"{name}_token"] = tokens[index]
    return {
        "model": scalars.get("tokenizer.ggml.model"),
        "vocabulary": summary,
        "special": special,
        "add_bos_token": scalars.get("tokenizer.ggml.add_bos_token"),
        "add_eos_token": scalars.get("tokenizer.ggml.add_eos_token"),
        "chat_template": scalars.get("tokenizer.chat_template"),
        "unsummarised": sorted(unsummarised)[:16],
    }
