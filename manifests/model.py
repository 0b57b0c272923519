"""The manifest: an OpenSSF Model Signing v1.0 in-toto statement with one namespaced extension.

The OMS part (subject, serialization, one sha256 resource per file) is exactly what `model_signing`
writes and verifies. Everything this project adds lives under `predicate["weights_provenance/v1"]`,
described by `manifests/schema.json`; model_signing ignores it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from manifests.dtypes import is_known_dtype
from manifests.errors import ManifestError, ProvenanceError
from manifests.names import DEFAULT_IGNORE, check_relative, colliding_paths
from manifests.pieces import Pieces, check_piece_length, layer_root
from manifests.records import (
    MAX_TENSORS,
    Checkpoint,
    FileFingerprint,
    Role,
    Sketch,
    TensorFingerprint,
    is_weights_file,
    role_of,
)

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
EXTENSION_KEY = "weights_provenance/v1"
_HEX = {"sha256": 64, "blake3": 64, "md5": 32}
_HEX_RE = re.compile(r"[0-9a-f]+")


def tool_version() -> str:
    from importlib import metadata  # slow to import; only fingerprinting needs it

    try:
        return f"weights-provenance {metadata.version('weights-provenance')}"
    except metadata.PackageNotFoundError:
        return "weights-provenance"


@dataclass(frozen=True, slots=True)
class Release:
    """Who and what the manifest speaks for."""

    name: str
    created: str | None = None
    tool: str | None = None
    sources: tuple[str, ...] = ()  # where an imported manifest's checksums were published


@dataclass(frozen=True, slots=True)
class Manifest:
    release: Release
    checkpoint: Checkpoint
    ignore_paths: tuple[str, ...] = DEFAULT_IGNORE
    allow_symlinks: bool = False
    extension: bool = True  # False for statements without our extension key (model_signing's own)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def subject_digest(self) -> str:
        return subject_digest(self.resources())

    def resources(self) -> list[dict[str, str]]:
        """The OMS resources: one sha256 entry per file that has one, sorted by name."""
        return [
            {"algorithm": "sha256", "digest": f.digests["sha256"], "name": f.path}
            for f in sorted(self.checkpoint.files, key=lambda f: f.path)
            if "sha256" in f.digests
        ]

    def statement(self) -> dict[str, Any]:
        """The in-toto statement, ready to be written as the unsigned manifest or signed as a payload."""
        resources = self.resources()
        predicate: dict[str, Any] = {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": self.allow_symlinks,
                "ignore_paths": list(self.ignore_paths),
            },
            "resources": resources,
        }
        if self.extension:
            predicate[EXTENSION_KEY] = self._extension()
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.release.name, "digest": {"sha256": subject_digest(resources)}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }

    def _extension(self) -> dict[str, Any]:
        release = {
            "name": self.release.name,
            "created": self.release.created,
            "tool": self.release.tool,
            "sources": list(self.release.sources) or None,
        }
        return {
            "release": {k: v for k, v in release.items() if v is not None},
            "files": [_file_entry(f) for f in sorted(self.checkpoint.files, key=lambda f: f.path)],
        }


def subject_digest(resources: list[dict[str, str]]) -> str:
    """SHA-256 over the raw bytes of the sorted resource digests, as model_signing computes it."""
    hasher = hashlib.sha256()
    for resource in sorted(resources, key=lambda r: r["name"]):
        hasher.update(bytes.fromhex(resource["digest"]))
    return hasher.hexdigest()


def _file_entry(f: FileFingerprint) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": f.path, "size": f.size, "role": f.role.value}
    if f.format:
        entry["format"] = f.format
    entry["digests"] = dict(sorted(f.digests.items()))
    if f.pieces is not None:
        entry["btv2"] = {
            "pieces_root": f.pieces.root,
            "piece_length": f.pieces.piece_length,
            **({"piece_layer": list(f.pieces.layer)} if f.pieces.layer else {}),
        }
    if f.container_blake3 is not None:
        entry["container_blake3"] = f.container_blake3
        entry["tensors"] = [
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "begin": t.start,
                "end": t.end,
                "blake3": t.blake3,
                **({"view": True} if t.view else {}),
                **({"path": list(t.path)} if t.path is not None else {}),
                **({"sketch": t.sketch.as_dict()} if t.sketch is not None else {}),
            }
            for t in f.tensors
        ]
    return entry


def build_manifest(checkpoint: Checkpoint, name: str, *, created: datetime | None = None) -> Manifest:
    """A manifest for a fingerprinted checkpoint; every file must carry a SHA-256."""
    for f in checkpoint.files:
        if "sha256" not in f.digests:
            raise ProvenanceError(f"{f.path} has no SHA-256; fingerprint the checkpoint in full")
    clash = _clash(f.path for f in checkpoint.files)
    if clash:
        raise ProvenanceError(f"{clash}; rename one of them before fingerprinting")
    moment = (created or datetime.now(UTC)).replace(microsecond=0)
    release = Release(name=name, created=moment.strftime("%Y-%m-%dT%H:%M:%SZ"), tool=tool_version())
    return Manifest(release=release, checkpoint=checkpoint)


# ---------------------------------------------------------------- parsing, with every field validated


def _clash(paths: Iterable[str]) -> str | None:
    """Two names a case-insensitive file system takes for one file: a release that cannot be copied intact."""
    pairs = colliding_paths(paths)
    if not pairs:
        return None
    a, b = pairs[0]
    return f"{a} and {b} differ only in case or Unicode form, so on Windows or macOS one replaces the other"


def _fail(why: str) -> ManifestError:
    return ManifestError(f"manifest is not valid: {why}")


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{where} must be a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{where} must be a string")
    return value


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(f"{where} must be a non-negative integer")
    return value


def _digest(value: Any, algorithm: str, where: str) -> str:
    if algorithm not in _HEX:
        raise _fail(f"{where}: unknown digest algorithm {algorithm!r}")
    if not isinstance(value, str) or len(value) != _HEX[algorithm] or not _HEX_RE.fullmatch(value):
        raise _fail(f"{where} must be {_HEX[algorithm]} lowercase hex digits")
    return value


def manifest_from_statement(statement: Any) -> Manifest:
    """Validate an in-toto statement (ours or model_signing's) and return the manifest it describes."""
    statement = _obj(statement, "the document")
    if statement.get("_type") != STATEMENT_TYPE:
        raise _fail(f"_type is {statement.get('_type')!r}, expected {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise _fail(f"predicateType is {statement.get('predicateType')!r}, expected {PREDICATE_TYPE}")
    subjects = _list(statement.get("subject"), "subject")
    if len(subjects) != 1:
        raise _fail("subject must hold exactly one entry")
    subject = _obj(subjects[0], "subject[0]")
    name = _str(subject.get("name"), "subject name")
    claimed = _digest(_obj(subject.get("digest"), "subject digest").get("sha256"), "sha256", "subject digest")
    predicate = _obj(statement.get("predicate"), "predicate")
    serialization = _obj(predicate.get("serialization"), "serialization")
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise _fail("only the 'files' serialization with sha256 is supported")
    ignore = tuple(_str(p, "ignore_paths entry") for p in _list(serialization.get("ignore_paths", []), "ignore_paths"))
    allow_symlinks = serialization.get("allow_symlinks", False)
    if not isinstance(allow_symlinks, bool):
        raise _fail("allow_symlinks must be true or false")

    resources: dict[str, str] = {}
    raw_resources = _list(predicate.get("resources"), "resources")
    for i, item in enumerate(raw_resources):
        item = _obj(item, f"resources[{i}]")
        path = check_relative(_str(item.get("name"), f"resources[{i}].name"))
        if item.get("algorithm") != "sha256":
            raise _fail(f"resource {path} uses {item.get('algorithm')!r}; v1.0 manifests use sha256")
        if path in resources:
            raise _fail(f"resource {path} is listed twice")
        resources[path] = _digest(item.get("digest"), "sha256", f"resource {path}")
    if subject_digest([{"name": k, "digest": v} for k, v in resources.items()]) != claimed:
        raise _fail("the subject digest does not match the resources; the manifest was altered")

    extension = predicate.get(EXTENSION_KEY)
    if extension is not None:
        extension = _obj(extension, EXTENSION_KEY)
    if not raw_resources and not (extension or {}).get("files"):
        raise _fail("it lists no files, so nothing could be verified against it")
    if extension is None:
        clash = _clash(resources)
        if clash:
            raise _fail(clash)
        files = tuple(
            FileFingerprint(p, None, role_of(p, is_weights_file(p)), digests={"sha256": d})
            for p, d in sorted(resources.items())
        )
        return Manifest(Release(name), Checkpoint(files), ignore, allow_symlinks, extension=False)
    release_doc = _obj(extension.get("release", {}), "release")
    release = Release(
        name=_str(release_doc.get("name", name), "release name"),
        created=_str(release_doc["created"], "release created") if "created" in release_doc else None,
        tool=_str(release_doc["tool"], "release tool") if "tool" in release_doc else None,
        sources=tuple(_str(x, "release source") for x in _list(release_doc.get("sources", []), "release sources")),
    )
    files_list: list[FileFingerprint] = []
    seen: set[str] = set()
    tensors = 0
    for i, entry in enumerate(_list(extension.get("files"), "files")):
        fp = _file_from_entry(_obj(entry, f"files[{i}]"))
        tensors += len(fp.tensors)
        if tensors > MAX_TENSORS:
            raise _fail(f"it lists more than {MAX_TENSORS:,} tensors, more than any release holds")
        if fp.path in seen:
            raise _fail(f"file {fp.path} is listed twice")
        seen.add(fp.path)
        if resources.get(fp.path) != fp.digests.get("sha256"):
            raise _fail(f"file {fp.path}: its sha256 disagrees with the signed resources")
        files_list.append(fp)
    if set(resources) - seen:
        raise _fail(f"resources not described by the extension: {sorted(set(resources) - seen)[:3]}")
    clash = _clash(seen)
    if clash:
        raise _fail(clash)
    return Manifest(release, Checkpoint(tuple(sorted(files_list, key=lambda f: f.path))), ignore, allow_symlinks)


def _file_from_entry(entry: dict[str, Any]) -> FileFingerprint:
    path = check_relative(_str(entry.get("name"), "file name"))
    size = None if entry.get("size") is None else _count(entry.get("size"), f"{path}: size")  # unknown in lists
    try:
        role = Role(str(entry.get("role")))
    except ValueError:
        raise _fail(f"{path}: unknown role {entry.get('role')!r}") from None
    digests = {
        _str(k, f"{path}: digest name"): _digest(v, k, f"{path}: {k}")
        for k, v in _obj(entry.get("digests", {}), f"{path}: digests").items()
    }
    fmt = entry.get("format")
    if fmt is not None:
        _str(fmt, f"{path}: format")
    container = entry.get("container_blake3")
    tensors: list[TensorFingerprint] = []
    if container is not None:
        _digest(container, "blake3", f"{path}: container_blake3")
        if size is None:
            raise _fail(f"{path}: a tensor table needs the file's size")
        cursor = 0
        for j, raw in enumerate(_list(entry.get("tensors"), f"{path}: tensors")):
            t = _tensor_from_entry(_obj(raw, f"{path}: tensors[{j}]"), path)
            if t.end > size or (not t.view and t.start < cursor):
                raise _fail(f"{path}: tensor {t.name!r} overlaps another or lies outside the file")
            if not t.view:  # a view names the storage it reads, which other tensors may share
                cursor = t.end
            tensors.append(t)
    elif not digests:
        raise _fail(f"{path}: no digest at all")
    pieces = _pieces_from_entry(entry["btv2"], path, size) if "btv2" in entry else None
    return FileFingerprint(path, size, role, fmt, digests, tuple(tensors), container, pieces=pieces)


def _pieces_from_entry(raw: Any, path: str, size: int | None) -> Pieces:
    """A file's BEP 52 pieces root and piece layer; the layer must hash to the root, as a client checks."""
    raw = _obj(raw, f"{path}: btv2")
    root = _digest(raw.get("pieces_root"), "sha256", f"{path}: pieces_root")
    length = _count(raw.get("piece_length"), f"{path}: piece_length")
    try:
        check_piece_length(length)
    except ValueError as exc:
        raise _fail(f"{path}: {exc}") from None
    layer = tuple(
        _digest(h, "sha256", f"{path}: piece_layer entry") for h in _list(raw.get("piece_layer", []), f"{path}: layer")
    )
    if not size:
        raise _fail(f"{path}: a pieces root needs the file's size, and an empty file has none")
    if size > length:
        if len(layer) != -(-size // length):
            raise _fail(f"{path}: piece_layer holds {len(layer)} hashes, the size needs {-(-size // length)}")
        if layer_root([bytes.fromhex(h) for h in layer], length).hex() != root:
            raise _fail(f"{path}: piece_layer does not hash to pieces_root")
    elif layer:
        raise _fail(f"{path}: a file of one piece has no piece_layer")
    return Pieces(root, length, layer)


def _tensor_from_entry(raw: dict[str, Any], path: str) -> TensorFingerprint:
    name = _str(raw.get("name"), f"{path}: tensor name")
    dtype = _str(raw.get("dtype"), f"{path}: {name}: dtype")
    if not is_known_dtype(dtype):
        raise _fail(f"{path}: {name}: unknown dtype {dtype!r}")
    shape = tuple(_count(d, f"{path}: {name}: shape") for d in _list(raw.get("shape"), f"{path}: {name}: shape"))
    begin = _count(raw.get("begin"), f"{path}: {name}: begin")
    end = _count(raw.get("end"), f"{path}: {name}: end")
    if end < begin:
        raise _fail(f"{path}: {name}: end before begin")
    view = raw.get("view", False)
    if not isinstance(view, bool):
        raise _fail(f"{path}: {name}: view must be true or false")
    digest = _digest(raw.get("blake3"), "blake3", f"{path}: {name}")
    sketch = _sketch_from_entry(raw["sketch"], f"{path}: {name}") if "sketch" in raw else None
    keys = None
    if "path" in raw:
        keys = tuple(_key(k, f"{path}: {name}: path") for k in _list(raw["path"], f"{path}: {name}: path"))
        if len(keys) < 2 or ".".join(map(str, keys)) != name:
            raise _fail(f"{path}: {name}: path must hold the two or more keys whose dotted join is the name")
    return TensorFingerprint(name, dtype, shape, begin, end, digest, view, sketch=sketch, path=keys)


def _key(value: Any, where: str) -> str | int:
    """A key of an object tree: a dict's key (text) or a list's index (a count)."""
    return _count(value, where) if type(value) is int else _str(value, where)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{where} must be a number")
    if isinstance(value, int) and not -(2**1024) < value < 2**1024:  # beyond every float, F64's included
        raise _fail(f"{where} is out of the range of a float")
    return float(value)


def _sketch_from_entry(raw: Any, where: str) -> Sketch:
    raw = _obj(raw, f"{where}: sketch")
    casts = {
        _str(k, f"{where}: cast"): _digest(v, "blake3", f"{where}: cast {k}")
        for k, v in _obj(raw.get("casts", {}), f"{where}: casts").items()
    }
    if set(casts) - {"F16", "BF16"}:
        raise _fail(f"{where}: casts may name F16 and BF16 only")
    sample = tuple(
        math.nan if v is None else _number(v, f"{where}: sample")
        for v in _list(raw.get("sample", []), f"{where}: sample")
    )
    if len(sample) > 4096:
        raise _fail(f"{where}: a sample of {len(sample)} values is more than a sketch holds")
    lossless = None  # absent in older manifests: unknown, so no cast is proven by rounding back
    if "lossless" in raw:
        lossless = frozenset(_str(v, f"{where}: lossless") for v in _list(raw["lossless"], f"{where}: lossless"))
        if lossless - set(casts):
            raise _fail(f"{where}: lossless may name only the casts the sketch records")
    return Sketch(
        count=_count(raw.get("count"), f"{where}: count"),
        mean=_number(raw.get("mean"), f"{where}: mean"),
        std=_number(raw.get("std"), f"{where}: std"),
        min=_number(raw.get("min"), f"{where}: min"),
        max=_number(raw.get("max"), f"{where}: max"),
        max_abs=_number(raw.get("max_abs"), f"{where}: max_abs"),
        zeros=_count(raw.get("zeros"), f"{where}: zeros"),
        nans=_count(raw.get("nans"), f"{where}: nans"),
        infs=_count(raw.get("infs"), f"{where}: infs"),
        sample=sample,
        casts=casts,
        lossless=lossless,
    )
