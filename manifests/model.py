"""The manifest: an OpenSSF Model Signing v1.0 in-toto statement with one namespaced extension.

The OMS part (subject, serialization, one sha256 resource per file) is exactly what `model_signing`
writes and verifies. Everything this project adds lives under `predicate["weights_provenance/v1"]`,
described by `manifests/schema.json`; model_signing ignores it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from manifests.entries import as_list, fail, file_from_entry, hex_digest, obj, string
from manifests.errors import ProvenanceError
from manifests.io import dump_json, write_atomic
from manifests.names import DEFAULT_IGNORE, check_relative, colliding_paths
from manifests.records import MAX_TENSORS, Checkpoint, FileFingerprint, is_weights_file, role_of

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
EXTENSION_KEY = "weights_provenance/v1"


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

    def to_json(self) -> bytes:
        """The unsigned manifest file's bytes: the statement in the stable layout every writer uses."""
        return dump_json(self.statement())

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
    if f.meaning is not None:
        entry["meaning"] = f.meaning
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
                **({"quants": dict(sorted(t.quants.items()))} if t.quants else {}),
            }
            for t in f.tensors
        ]
    return entry


def build_manifest(checkpoint: Checkpoint, name: str, *, created: datetime | None = None) -> Manifest:
    """An unsigned manifest for a fingerprinted checkpoint, released as `name`; every file must carry a
    SHA-256. Raises ProvenanceError (exit 2) for a file without one (a checkpoint not fingerprinted in
    full) or two names one file system takes for one file."""
    for f in checkpoint.files:
        if "sha256" not in f.digests:
            raise ProvenanceError(f"{f.path} has no SHA-256; fingerprint the checkpoint in full")
    clash = _clash(f.path for f in checkpoint.files)
    if clash:
        raise ProvenanceError(f"{clash}; rename one of them before fingerprinting")
    moment = (created or datetime.now(UTC)).replace(microsecond=0)
    release = Release(name=name, created=moment.strftime("%Y-%m-%dT%H:%M:%SZ"), tool=tool_version())
    return Manifest(release=release, checkpoint=checkpoint)


def write_manifest(path: Path, manifest: Manifest, *, force: bool = False) -> None:
    """Write the unsigned manifest file atomically: readers see the old file or the new one, never a torn
    one. Raises OutputExists (exit 2) when `path` exists and `force` is not given, UnreadableInput (exit 2)
    when it cannot be written."""
    write_atomic(path, manifest.to_json(), force=force)


# ---------------------------------------------------------------- parsing, with every field validated


def _clash(paths: Iterable[str]) -> str | None:
    """Two names a case-insensitive file system takes for one file: a release that cannot be copied intact."""
    pairs = colliding_paths(paths)
    if not pairs:
        return None
    a, b = pairs[0]
    return f"{a} and {b} differ only in case or Unicode form, so on Windows or macOS one replaces the other"


def manifest_from_statement(statement: Any) -> Manifest:
    """Validate an in-toto statement (ours or model_signing's) and return the manifest it describes.

    Raises ManifestError (exit 2) naming the first field that is not valid.
    """
    name, claimed, predicate = _subject(statement)
    ignore, allow_symlinks = _serialization(predicate)
    resources, listed = _resources(predicate, claimed)
    extension = predicate.get(EXTENSION_KEY)
    if extension is not None:
        extension = obj(extension, EXTENSION_KEY)
    if not listed and not (extension or {}).get("files"):
        raise fail("it lists no files, so nothing could be verified against it")
    if extension is None:
        return Manifest(Release(name), _resource_files(resources), ignore, allow_symlinks, extension=False)
    release = _release(obj(extension.get("release", {}), "release"), name)
    return Manifest(release, _extension_files(extension, resources), ignore, allow_symlinks)


def _subject(statement: Any) -> tuple[str, str, dict[str, Any]]:
    """The statement's one subject (its name and claimed digest) and its predicate."""
    statement = obj(statement, "the document")
    if statement.get("_type") != STATEMENT_TYPE:
        raise fail(f"_type is {statement.get('_type')!r}, expected {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise fail(f"predicateType is {statement.get('predicateType')!r}, expected {PREDICATE_TYPE}")
    subjects = as_list(statement.get("subject"), "subject")
    if len(subjects) != 1:
        raise fail("subject must hold exactly one entry")
    subject = obj(subjects[0], "subject[0]")
    name = string(subject.get("name"), "subject name")
    claimed = hex_digest(obj(subject.get("digest"), "subject digest").get("sha256"), "sha256", "subject digest")
    return name, claimed, obj(statement.get("predicate"), "predicate")


def _serialization(predicate: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The OMS serialization: its ignore_paths and allow_symlinks (only `files` with sha256 is read)."""
    serialization = obj(predicate.get("serialization"), "serialization")
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise fail("only the 'files' serialization with sha256 is supported")
    listed = as_list(serialization.get("ignore_paths", []), "ignore_paths")
    ignore = tuple(string(p, "ignore_paths entry") for p in listed)
    allow_symlinks = serialization.get("allow_symlinks", False)
    if not isinstance(allow_symlinks, bool):
        raise fail("allow_symlinks must be true or false")
    return ignore, allow_symlinks


def _resources(predicate: dict[str, Any], claimed: str) -> tuple[dict[str, str], bool]:
    """The signed resources (path -> sha256), which must hash to the subject digest; and whether any is listed."""
    resources: dict[str, str] = {}
    raw_resources = as_list(predicate.get("resources"), "resources")
    for i, item in enumerate(raw_resources):
        item = obj(item, f"resources[{i}]")
        path = check_relative(string(item.get("name"), f"resources[{i}].name"))
        if item.get("algorithm") != "sha256":
            raise fail(f"resource {path} uses {item.get('algorithm')!r}; v1.0 manifests use sha256")
        if path in resources:
            raise fail(f"resource {path} is listed twice")
        resources[path] = hex_digest(item.get("digest"), "sha256", f"resource {path}")
    if subject_digest([{"name": k, "digest": v} for k, v in resources.items()]) != claimed:
        raise fail("the subject digest does not match the resources; the manifest was altered")
    return resources, bool(raw_resources)


def _resource_files(resources: dict[str, str]) -> Checkpoint:
    """A statement without our extension (model_signing's own): one file per resource, its sha256 alone."""
    clash = _clash(resources)
    if clash:
        raise fail(clash)
    return Checkpoint(
        tuple(
            FileFingerprint(p, None, role_of(p, is_weights_file(p)), digests={"sha256": d})
            for p, d in sorted(resources.items())
        )
    )


def _release(release_doc: dict[str, Any], name: str) -> Release:
    return Release(
        name=string(release_doc.get("name", name), "release name"),
        created=string(release_doc["created"], "release created") if "created" in release_doc else None,
        tool=string(release_doc["tool"], "release tool") if "tool" in release_doc else None,
        sources=tuple(string(x, "release source") for x in as_list(release_doc.get("sources", []), "release sources")),
    )


def _extension_files(extension: dict[str, Any], resources: dict[str, str]) -> Checkpoint:
    """The extension's files, each agreeing with its signed resource, and every resource described."""
    files_list: list[FileFingerprint] = []
    seen: set[str] = set()
    tensors = 0
    for i, entry in enumerate(as_list(extension.get("files"), "files")):
        fp = file_from_entry(obj(entry, f"files[{i}]"))
        tensors += len(fp.tensors)
        if tensors > MAX_TENSORS:
            raise fail(f"it lists more than {MAX_TENSORS:,} tensors, more than any release holds")
        if fp.path in seen:
            raise fail(f"file {fp.path} is listed twice")
        seen.add(fp.path)
        if resources.get(fp.path) != fp.digests.get("sha256"):
            raise fail(f"file {fp.path}: its sha256 disagrees with the signed resources")
        files_list.append(fp)
    if set(resources) - seen:
        raise fail(f"resources not described by the extension: {sorted(set(resources) - seen)[:3]}")
    clash = _clash(seen)
    if clash:
        raise fail(clash)
    return Checkpoint(tuple(sorted(files_list, key=lambda f: f.path)))
