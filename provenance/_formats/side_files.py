"""The meaning of a release's small settings and tokenizer files, read by bounded parsers.

A loader does not read config.json's bytes but its keys; llama.cpp does not read tokenizer.model but the
vocabulary a converter wrote into the GGUF's key-values. Recording what each file means (a config's
parsed object, a vocabulary's summary) lets a rewritten config be compared key by key, and a GGUF's or
Meta's counterpart be held against the release's file. Every parser is bounded: a file over MEANING_CAP,
nested past MAX_DEPTH, or malformed has no meaning (it is then compared by digest, as before).
"""

from __future__ import annotations

import json
import math
import posixpath
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from blake3 import blake3

from manifests.io import parse_cost

MEANING_CAP = 1 << 20  # a config or tokenizer_config is a few KiB; larger ones are compared by digest
VOCAB_CAP = 64 << 20  # tokenizer.model / tokenizer.json: a 256k-token vocabulary is ~20 MiB of JSON
MAX_DEPTH = 32
MAX_TOKENS = 1 << 20  # four times the largest vocabularies released
JSON_BUDGET = 64 << 20  # bytes a parse may allocate (manifests.io's estimate)

PARSED = ("config.json", "generation_config.json", "params.json")
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_MAP = "special_tokens_map.json"
CHAT_TEMPLATE = "chat_template.jinja"
SENTENCEPIECE = "tokenizer.model"
TOKENIZER_JSON = "tokenizer.json"
ADDED_TOKENS = "added_tokens.json"
SPECIAL_NAMES = ("bos", "eos", "unk", "pad")

# llama.cpp's token types (gguf.TokenType), as convert_hf_to_gguf.py writes them
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class NoMeaning(Exception):
    """A side file this module cannot read within its bounds: it gets no meaning."""


_Malformed = NoMeaning
Reader = Callable[[str, int], bytes]  # a file's bytes by path, at most `cap` of them (more: NoMeaning)


def _depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    return not (isinstance(value, float) and not math.isfinite(value))


def _json(data: bytes) -> Any:
    if parse_cost(data) > JSON_BUDGET:
        raise _Malformed
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise _Malformed from None
    if not _depth_ok(document):
        raise _Malformed
    return document


def _read(path: Path, cap: int) -> bytes:
    try:
        if not path.is_file() or path.stat().st_size > cap:
            raise _Malformed
        with open(path, "rb") as stream:
            data = stream.read(cap + 1)
    except OSError:
        raise _Malformed from None
    if len(data) > cap:  # grew while read
        raise _Malformed
    return data


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken's serialization."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _token_id(key: Any) -> bool:
    """An added token's id as int() reads it: ASCII digits, few enough ("²" is a digit to str.isdigit)."""
    return isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 9


def tokenizer_config_meaning(document: dict[str, Any]) -> dict[str, Any]:
    """What of tokenizer_config.json changes what a model is given: its chat template, special tokens,
    whether BOS/EOS are added, and the tokens it adds to the vocabulary (id -> text, special)."""
    meaning: dict[str, Any] = {}
    template = document.get("chat_template")
    if isinstance(template, list):  # several named templates: the one called "default" is used
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
        meaning["chat_templates"] = {k: v for k, v in named.items() if isinstance(k, str) and isinstance(v, str)}
    if isinstance(template, str):
        meaning["chat_template"] = template
    for name in SPECIAL_NAMES:
        text = _token_text(document.get(f"{name}_token"))
        if text is not None:
            meaning[f"{name}_token"] = text
    for key in ("add_bos_token", "add_eos_token"):
        if isinstance(document.get(key), bool):
            meaning[key] = document[key]
    if isinstance(document.get("tokenizer_class"), str):  # the class transformers builds
        meaning["tokenizer_class"] = document["tokenizer_class"]
    if "auto_map" in document:  # code from the repository, run with trust_remote_code
        meaning["auto_map"] = True
    added = document.get("added_tokens_decoder")
    if isinstance(added, dict):
        meaning["added_tokens"] = {
            str(k): [str(v.get("content")), bool(v.get("special"))]
            for k, v in added.items()
            if isinstance(v, dict) and _token_id(k) and isinstance(v.get("content"), str)
        }
    return meaning


def vocabulary(
    tokens: Sequence[bytes], scores: Sequence[float] | None, types: Sequence[int] | None, merges: Iterable[str] | None
) -> dict[str, Any]:
    """A vocabulary's summary, the same whoever wrote it: count and BLAKE3 of the tokens (length-prefixed
    UTF-8), the scores (float32), the types (llama.cpp's numbering) and the merges ("a b"), as a GGUF's
    tokenizer.ggml.* key-values summarise to when the vocabulary is the same."""
    summary: dict[str, Any] = {"count": len(tokens), "tokens": _digest_strings(tokens)}
    if scores is not None:
        summary["scores"] = blake3(b"".join(struct.pack("<f", float(s)) for s in scores)).hexdigest()
    if types is not None:
        summary["types"] = blake3(bytes(int(t) & 0xFF for t in types)).hexdigest()
    if merges is not None:
        summary["merges"] = _digest_strings([m.encode() for m in merges])
    return summary


def _digest_strings(items: Iterable[bytes]) -> str:
    hasher = blake3()
    for item in items:
        hasher.update(struct.pack("<I", len(item)))
        hasher.update(item)
    return str(hasher.hexdigest())


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise _Malformed
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> Iterable[tuple[int, int, Any]]:
    """A protobuf message's fields (number, wire type, value), read without a schema or a library."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise _Malformed
        if at > len(data):
            raise _Malformed
        yield number, wire, value


# sentencepiece's piece types (sentencepiece_model.proto) -> llama.cpp's, as the converter maps them
_SP_TYPES = {1: NORMAL, 2: UNKNOWN, 3: CONTROL, 4: NORMAL, 5: UNUSED, 6: BYTE}


def _int32(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_sentencepiece(data: bytes) -> tuple[list[bytes], list[float], list[int], dict[str, int]]:
    """tokenizer.model's pieces, scores, types and special ids (unk, bos, eos, pad; -1: none)."""
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    special = {"unk": 0, "bos": 1, "eos": 2, "pad": -1}  # sentencepiece's TrainerSpec defaults
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            piece, score, kind = b"", 0.0, 1
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    piece = v
                elif n == 2 and w == 5 and len(v) == 4:
                    score = struct.unpack("<f", v)[0]
                elif n == 3 and w == 0:
                    kind = v
            tokens.append(piece)
            scores.append(score)
            types.append(_SP_TYPES.get(kind, NORMAL))
            if len(tokens) > MAX_TOKENS:
                raise _Malformed
        elif number == 2 and wire == 2:
            for n, w, v in _fields(value):
                if w == 0 and n in (40, 41, 42, 43):
                    special[("unk", "bos", "eos", "pad")[n - 40]] = _int32(v)
    if not tokens:
        raise _Malformed
    try:
        [t.decode() for t in tokens]
    except UnicodeDecodeError:
        raise _Malformed from None
    return tokens, scores, types, special


def _sentencepiece_meaning(data: bytes, folder: dict[str, Any]) -> dict[str, Any]:
    """tokenizer.model summarised as convert_hf_to_gguf.py writes it beside this folder's other files:
    added_tokens.json's and tokenizer_config.json's added tokens override pieces (score -1000, type
    user-defined or control), and the vocabulary is padded to config.json's vocab_size."""
    tokens, scores, types, special = parse_sentencepiece(data)
    config = folder.get("config.json") or {}
    size = config.get("vocab_size") if type(config.get("vocab_size")) is int else None
    size = size if size is not None and 0 < size <= MAX_TOKENS else len(tokens)
    tokens, scores, types = tokens[:size], scores[:size], types[:size]
    tokens += [f"[PAD{i}]".encode() for i in range(len(tokens), size)]
    scores += [-10000.0] * (size - len(scores))
    types += [UNUSED] * (size - len(types))
    for text, index in (folder.get(ADDED_TOKENS) or {}).items():
        if type(index) is int and 0 <= index < size:
            tokens[index], scores[index], types[index] = text.encode(), -1000.0, USER_DEFINED
    for key, (text, is_special) in ((folder.get(TOKENIZER_CONFIG) or {}).get("added_tokens") or {}).items():
        index = int(key)
        if index < size:
            text = text if is_special else text.replace("\u2581", " ")
            tokens[index], scores[index] = text.encode(), -1000.0
            types[index] = CONTROL if is_special else USER_DEFINED
    summary = vocabulary(tokens, scores, types, None)
    summary["scheme"] = "sentencepiece"
    summary["special"] = {k: v for k, v in special.items() if 0 <= v < size}
    summary["special_tokens"] = {f"{k}_token": tokens[v].decode() for k, v in summary["special"].items()}
    return summary


def _tokenizer_json_meaning(document: Any, folder: dict[str, Any]) -> dict[str, Any]:
    """tokenizer.json's vocabulary by id (its model's vocab and added tokens), types as the converter
    gives them (added special: control; added otherwise: user-defined; ids without a token: unused, up
    to config.json's vocab_size), and its merges."""
    if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
        raise _Malformed
    model = document["model"]
    vocab = model.get("vocab")
    by_id: dict[int, tuple[str, int]] = {}
    if isinstance(vocab, dict):
        by_id = {i: (t, NORMAL) for t, i in vocab.items() if type(i) is int and 0 <= i < MAX_TOKENS}
    elif isinstance(vocab, list):  # a Unigram model: [piece, score] pairs
        by_id = {i: (str(p[0]), NORMAL) for i, p in enumerate(vocab) if isinstance(p, list) and p}
    for added in document.get("added_tokens") or []:
        index = added.get("id") if isinstance(added, dict) else None
        if type(index) is int and 0 <= index < MAX_TOKENS and isinstance(added.get("content"), str):
            by_id[added["id"]] = (added["content"], CONTROL if added.get("special") else USER_DEFINED)
    if not by_id:
        raise _Malformed
    size = (folder.get("config.json") or {}).get("vocab_size")
    count = max(max(by_id) + 1, size if type(size) is int and size <= MAX_TOKENS else 0)
    tokens = [by_id.get(i, (f"[PAD{i}]", UNUSED)) for i in range(count)]
    raw_merges = model.get("merges")
    merges = None
    if isinstance(raw_merges, list):
        merges = [m if isinstance(m, str) else " ".join(map(str, m)) for m in raw_merges if isinstance(m, str | list)]
    summary = vocabulary([t.encode() for t, _ in tokens], None, [k for _, k in tokens], merges)
    summary["scheme"] = "bpe" if model.get("type") == "BPE" else str(model.get("type"))
    return summary


def meanings(root: Path, paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The meaning of each side file among `paths` (relative to `root`) that has one; a file too large,
    nested too deeply or malformed has none."""
    return meanings_read(lambda path, cap: _read(root / path, cap), paths)


def meanings_read(reader: Reader, paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`meanings`, each file's bytes from `reader` (a folder on disk, a hub repository)."""
    by_folder: dict[str, dict[str, str]] = {}
    for path in paths:
        folder, name = posixpath.split(path)
        by_folder.setdefault(folder, {})[name] = path
    found: dict[str, dict[str, Any]] = {}
    for names in by_folder.values():
        read: dict[str, Any] = {}
        for name in (*PARSED, TOKENIZER_CONFIG, SPECIAL_MAP, ADDED_TOKENS, CHAT_TEMPLATE):
            if name not in names:
                continue
            try:
                data = reader(names[name], MEANING_CAP)
                if name == CHAT_TEMPLATE:
                    read[name] = {"chat_template": data.decode()}
                    continue
                document = _json(data)
            except (_Malformed, UnicodeDecodeError):
                continue
            if isinstance(document, dict):
                tokenizer = name in (TOKENIZER_CONFIG, SPECIAL_MAP)
                read[name] = tokenizer_config_meaning(document) if tokenizer else document
        for name in (SENTENCEPIECE, TOKENIZER_JSON):
            if name not in names:
                continue
            try:
                data = reader(names[name], VOCAB_CAP)
                if name == SENTENCEPIECE:
                    read[name] = _sentencepiece_meaning(data, read)
                else:
                    read[name] = _tokenizer_json_meaning(_json(data), read)
            except _Malformed:
                continue
        found.update({names[name]: meaning for name, meaning in read.items()})
    return found
