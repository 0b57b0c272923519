"""Reading a manifest's file entries back, every field validated: a manifest is hostile input until parsed.

The primitive checks (an object, a list, a string, a count, a hex digest) fail with one ManifestError that
names the field; `file_from_entry` turns one entry of the extension's `files` into its fingerprint.
"""

from __future__ import annotations

import math
import re
from typing import Any

from manifests.dtypes import EXACT_QUANTS, is_known_dtype
from manifests.errors import ManifestError
from manifests.names import check_relative
from manifests.pieces import Pieces, check_piece_length, layer_root
from manifests.records import FileFingerprint, Role, Sketch, TensorFingerprint

_HEX = {"sha256": 64, "blake3": 64, "md5": 32}
_HEX_RE = re.compile(r"[0-9a-f]+")


def fail(why: str) -> ManifestError:
    """The one error every invalid field raises, so each reads the same."""
    return ManifestError(f"manifest is not valid: {why}")


def obj(value: Any, where: str) -> dict[str, Any]:
    """`value` as a JSON object, or the error naming `where`."""
    if not isinstance(value, dict):
        raise fail(f"{where} must be an object")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    """`value` as a JSON list, or the error naming `where`."""
    if not isinstance(value, list):
        raise fail(f"{where} must be a list")
    return value


def string(value: Any, where: str) -> str:
    """`value` as a string, or the error naming `where`."""
    if not isinstance(value, str):
        raise fail(f"{where} must be a string")
    return value


def non_negative(value: Any, where: str) -> int:
    """`value` as a count (an integer >= 0, not a boolean), or the error naming `where`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise fail(f"{where} must be a non-negative integer")
    return value


def hex_digest(value: Any, algorithm: str, where: str) -> str:
    """`value` as a lowercase hex digest of `algorithm`'s length, or the error naming `where`."""
    if algorithm not in _HEX:
        raise fail(f"{where}: unknown digest algorithm {algorithm!r}")
    if not isinstance(value, str) or len(value) != _HEX[algorithm] or not _HEX_RE.fullmatch(value):
        raise fail(f"{where} must be {_HEX[algorithm]} lowercase hex digits")
    return value


def file_from_entry(entry: dict[str, Any]) -> FileFingerprint:
    """One entry of the extension's files: its name, size, role, digests, tensor table and pieces, all checked."""
    path = check_relative(string(entry.get("name"), "file name"))
    size = None if entry.get("size") is None else non_negative(entry.get("size"), f"{path}: size")  # unknown in lists
    try:
        role = Role(str(entry.get("role")))
    except ValueError:
        raise fail(f"{path}: unknown role {entry.get('role')!r}") from None
    digests = {
        string(k, f"{path}: digest name"): hex_digest(v, k, f"{path}: {k}")
        for k, v in obj(entry.get("digests", {}), f"{path}: digests").items()
    }
    fmt = entry.get("format")
    if fmt is not None:
        string(fmt, f"{path}: format")
    container = entry.get("container_blake3")
    tensors: list[TensorFingerprint] = []
    if container is not None:
        hex_digest(container, "blake3", f"{path}: container_blake3")
        if size is None:
            raise fail(f"{path}: a tensor table needs the file's size")
        cursor = 0
        for j, raw in enumerate(as_list(entry.get("tensors"), f"{path}: tensors")):
            t = _tensor_from_entry(obj(raw, f"{path}: tensors[{j}]"), path)
            if t.end > size or (not t.view and t.start < cursor):
                raise fail(f"{path}: tensor {t.name!r} overlaps another or lies outside the file")
            if not t.view:  # a view names the storage it reads, which other tensors may share
                cursor = t.end
            tensors.append(t)
    elif not digests:
        raise fail(f"{path}: no digest at all")
    pieces = _pieces_from_entry(entry["btv2"], path, size) if "btv2" in entry else None
    meaning = _meaning_from_entry(entry["meaning"], path) if "meaning" in entry else None
    return FileFingerprint(path, size, role, fmt, digests, tuple(tensors), container, pieces=pieces, meaning=meaning)


MEANING_CAP = 1 << 20  # JSON values a file's meaning may hold: a config's, a few thousand
MEANING_DEPTH = 32


def _meaning_from_entry(raw: Any, path: str) -> dict[str, Any]:
    """A settings file's meaning: a JSON object of bounded size and nesting (it is compared key by key)."""
    meaning = obj(raw, f"{path}: meaning")
    budget = [MEANING_CAP]

    def walk(value: Any, depth: int) -> None:
        budget[0] -= 1
        if depth > MEANING_DEPTH or budget[0] < 0:
            raise fail(f"{path}: meaning nests too deeply or holds too many values")
        if isinstance(value, dict):
            for key, item in value.items():
                string(key, f"{path}: meaning key")
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, float) and not math.isfinite(value):
            raise fail(f"{path}: meaning holds a number JSON cannot")

    walk(meaning, 0)
    return meaning


def _pieces_from_entry(raw: Any, path: str, size: int | None) -> Pieces:
    """A file's BEP 52 pieces root and piece layer; the layer must hash to the root, as a client checks."""
    raw = obj(raw, f"{path}: btv2")
    root = hex_digest(raw.get("pieces_root"), "sha256", f"{path}: pieces_root")
    length = non_negative(raw.get("piece_length"), f"{path}: piece_length")
    try:
        check_piece_length(length)
    except ValueError as exc:
        raise fail(f"{path}: {exc}") from None
    listed = as_list(raw.get("piece_layer", []), f"{path}: layer")
    layer = tuple(hex_digest(h, "sha256", f"{path}: piece_layer entry") for h in listed)
    if not size:
        raise fail(f"{path}: a pieces root needs the file's size, and an empty file has none")
    if size > length:
        if len(layer) != -(-size // length):
            raise fail(f"{path}: piece_layer holds {len(layer)} hashes, the size needs {-(-size // length)}")
        if layer_root([bytes.fromhex(h) for h in layer], length).hex() != root:
            raise fail(f"{path}: piece_layer does not hash to pieces_root")
    elif layer:
        raise fail(f"{path}: a file of one piece has no piece_layer")
    return Pieces(root, length, layer)


def _tensor_from_entry(raw: dict[str, Any], path: str) -> TensorFingerprint:
    name = string(raw.get("name"), f"{path}: tensor name")
    dtype = string(raw.get("dtype"), f"{path}: {name}: dtype")
    if not is_known_dtype(dtype):
        raise fail(f"{path}: {name}: unknown dtype {dtype!r}")
    dims = as_list(raw.get("shape"), f"{path}: {name}: shape")
    shape = tuple(non_negative(d, f"{path}: {name}: shape") for d in dims)
    begin = non_negative(raw.get("begin"), f"{path}: {name}: begin")
    end = non_negative(raw.get("end"), f"{path}: {name}: end")
    if end < begin:
        raise fail(f"{path}: {name}: end before begin")
    view = raw.get("view", False)
    if not isinstance(view, bool):
        raise fail(f"{path}: {name}: view must be true or false")
    digest = hex_digest(raw.get("blake3"), "blake3", f"{path}: {name}")
    sketch = _sketch_from_entry(raw["sketch"], f"{path}: {name}") if "sketch" in raw else None
    keys = None
    if "path" in raw:
        keys = tuple(_key(k, f"{path}: {name}: path") for k in as_list(raw["path"], f"{path}: {name}: path"))
        if len(keys) < 2 or ".".join(map(str, keys)) != name:
            raise fail(f"{path}: {name}: path must hold the two or more keys whose dotted join is the name")
    quants = _quants_from_entry(raw["quants"], f"{path}: {name}") if "quants" in raw else None
    return TensorFingerprint(name, dtype, shape, begin, end, digest, view, sketch=sketch, path=keys, quants=quants)


def _quants_from_entry(raw: Any, where: str) -> dict[str, str]:
    """Digests of the reference quantizer's blocks, by the legacy GGUF type they were made in."""
    quants = {
        string(k, f"{where}: quant"): hex_digest(v, "blake3", f"{where}: quant {k}")
        for k, v in obj(raw, f"{where}: quants").items()
    }
    if set(quants) - set(EXACT_QUANTS):
        raise fail(f"{where}: quants may name {', '.join(EXACT_QUANTS)} only")
    return quants


def _key(value: Any, where: str) -> str | int:
    """A key of an object tree: a dict's key (text) or a list's index (a count)."""
    return non_negative(value, where) if type(value) is int else string(value, where)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"{where} must be a number")
    if isinstance(value, int) and not -(2**1024) < value < 2**1024:  # beyond every float, F64's included
        raise fail(f"{where} is out of the range of a float")
    return float(value)


def _sketch_from_entry(raw: Any, where: str) -> Sketch:
    raw = obj(raw, f"{where}: sketch")
    casts = {
        string(k, f"{where}: cast"): hex_digest(v, "blake3", f"{where}: cast {k}")
        for k, v in obj(raw.get("casts", {}), f"{where}: casts").items()
    }
    if set(casts) - {"F16", "BF16"}:
        raise fail(f"{where}: casts may name F16 and BF16 only")
    sample = tuple(
        math.nan if v is None else _number(v, f"{where}: sample")
        for v in as_list(raw.get("sample", []), f"{where}: sample")
    )
    if len(sample) > 4096:
        raise fail(f"{where}: a sample of {len(sample)} values is more than a sketch holds")
    lossless = None  # absent in older manifests: unknown, so no cast is proven by rounding back
    if "lossless" in raw:
        lossless = frozenset(string(v, f"{where}: lossless") for v in as_list(raw["lossless"], f"{where}: lossless"))
        if lossless - set(casts):
            raise fail(f"{where}: lossless may name only the casts the sketch records")
    stride = non_negative(raw.get("moments_stride", 1), f"{where}: moments_stride")
    if stride < 1:
        raise fail(f"{where}: moments_stride must be at least 1")
    return Sketch(
        count=non_negative(raw.get("count"), f"{where}: count"),
        mean=_number(raw.get("mean"), f"{where}: mean"),
        std=_number(raw.get("std"), f"{where}: std"),
        min=_number(raw.get("min"), f"{where}: min"),
        max=_number(raw.get("max"), f"{where}: max"),
        max_abs=_number(raw.get("max_abs"), f"{where}: max_abs"),
        zeros=non_negative(raw.get("zeros"), f"{where}: zeros"),
        nans=non_negative(raw.get("nans"), f"{where}: nans"),
        infs=non_negative(raw.get("infs"), f"{where}: infs"),
        sample=sample,
        casts=casts,
        lossless=lossless,
        moments_stride=stride,
    )
