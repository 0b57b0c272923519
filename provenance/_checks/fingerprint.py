"""`provenance fingerprint`: a checkpoint on disk or a hub repository, read into a release's records."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from manifests.model import Manifest, build_manifest
from manifests.names import DEFAULT_IGNORE, is_ignored
from manifests.records import Checkpoint, FileFingerprint, Role, is_weights_file, role_of
from provenance._checks.audit_mirror import stream_fingerprint
from provenance._checks.common import ReadOptions
from provenance._hashing.cluster import on_cluster
from provenance._hashing.engine import HashPlan
from provenance._hashing.quants import quant_types
from provenance._hashing.scan import ProgressReporter, fingerprint_plan, scan
from provenance._sources.hub import Hub, Mirror
from provenance._sources.hub_refs import RepoRef
from provenance.errors import HubError


def fingerprint(
    target: Path,
    *,
    options: ReadOptions = ReadOptions(),
    exclude: frozenset[Path] = frozenset(),
    piece_length: int = 0,
    sketches: bool = True,
    quant_digests: str | Collection[str] = (),
    progress: ProgressReporter | None = None,
) -> Checkpoint:
    """Fingerprint a checkpoint (a folder or one file) for a manifest: SHA-256 per file, BLAKE3 per tensor
    and per other file. The `provenance fingerprint PATH` operation; `build_manifest` makes the manifest.

    A `piece_length` (a power of two, at least 16 KiB) adds each file's BitTorrent v2 pieces root and
    piece layer: what `provenance torrent` compares and what locates damage in a partial download.
    `sketches` (the default; False for a plain manifest) adds, per float tensor, the digests of its canonical
    F16 and BF16 casts, its moments and a seeded sample of values: what tells a cast or a fine-tune from an
    unrelated tensor.
    `quant_digests` (legacy GGUF types, "Q8_0,Q4_0" or a collection) adds, per float tensor whose rows are
    whole blocks, the digest of the blocks llama.cpp's converter writes in each type: what proves a GGUF of
    the release exact. A type without a deterministic reference quantizer raises ProvenanceError (exit 2).
    With `options.scheduler`, each file is hashed by a Dask worker (one task per file, at a path every worker
    sees); the checkpoint is the one a single process makes. Malformed weights files raise MalformedContainer
    (exit 2): a manifest is never built from a broken release; UnreadableInput and UnsafePath (exit 2) for
    paths that cannot be read or leave the checkpoint.
    """
    plan = fingerprint_plan(piece_length, sketches, quant_types(quant_digests))
    with on_cluster(options.scheduler):
        return scan(
            target,
            plan,
            strict=True,
            allow_symlinks=options.allow_symlinks,
            exclude=exclude,
            patterns=options.patterns,
            progress=progress,
            label="fingerprinting",
        )


def fingerprint_hub(
    spec: str,
    name: str | None = None,
    *,
    full: bool = False,
    piece_length: int = 0,
    endpoint: str | None = None,
    sketches: bool = True,
) -> Manifest:
    """An unsigned manifest of a hub repository (`hf://ORG/REPO[@REV]`): from its metadata (file level:
    sizes and the LFS sha256 the hub claims; files kept in git are read whole), or with `full`, from every
    byte streamed (tensor level). The `provenance fingerprint hf://...` operation; `name` defaults to
    ORG/REPO@COMMIT; `sketches` as for a local fingerprint (streamed safetensors only: the bytes are read once).
    Raises HubError (exit 2) when the repository or a file cannot be read."""
    ref = RepoRef.parse(spec)
    hub = Hub(endpoint)
    snapshot = hub.snapshot(ref)
    plan = fingerprint_plan(piece_length, sketches)
    files: list[FileFingerprint] = []
    for f in snapshot.files:
        if is_ignored(f.path, DEFAULT_IGNORE):  # .gitattributes and the like, as a local fingerprint leaves them out
            continue
        if full or not f.lfs:
            fingerprint = stream_fingerprint(
                Mirror(hub, ref, snapshot), f, plan(f.path) if full else HashPlan(frozenset({"sha256", "blake3"}))
            )
            if fingerprint.error is not None:
                raise HubError(f"{ref}: {f.path}: {fingerprint.error}")
            files.append(fingerprint)
        else:
            assert f.sha256 is not None
            files.append(
                FileFingerprint(f.path, f.size, role_of(f.path, is_weights_file(f.path)), digests={"sha256": f.sha256})
            )
    if not files:
        raise HubError(f"{ref}: the repository holds no files")
    files = _with_meaning(Mirror(hub, ref, snapshot), files)
    return build_manifest(Checkpoint(tuple(files)), name or f"{ref.repo_id}@{snapshot.commit[:12]}")


def _with_meaning(mirror: Mirror, files: list[FileFingerprint]) -> list[FileFingerprint]:
    """The repository's small settings and tokenizer files with their meaning, as a local fingerprint has it
    (their bytes read again: a few KiB each)."""
    import dataclasses

    from provenance._formats.side_files import NoMeaning, meanings_read

    sizes = {f.path: f.size for f in files if f.role is Role.OTHER}

    def read(path: str, cap: int) -> bytes:
        size = sizes.get(path)
        if not size or size > cap:
            raise NoMeaning(path)
        return mirror.read_range(path, 0, size)

    found = meanings_read(read, list(sizes))
    return [dataclasses.replace(f, meaning=found[f.path]) if f.path in found else f for f in files]
