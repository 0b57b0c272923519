"""What a torrent would download, judged against a reference before a byte of content is fetched.

A v2 (or hybrid) torrent names each file's BEP 52 pieces root, and a v2 client refuses any piece that
does not hash into it: equal roots prove the download can only be the reference's bytes. A v1 torrent
carries SHA-1 hashes over pieces that straddle files; they cannot be compared with a manifest, so names
and sizes are all it can show, and the verdict says that only the download can decide.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from blake3 import blake3

from manifests.names import DEFAULT_IGNORE, is_ignored
from manifests.records import Checkpoint, FileFingerprint, Role, is_weights_file, role_of
from provenance._checks.common import finish, open_checked
from provenance._judging.collisions import Collisions, find_collisions
from provenance._judging.loading import may_pick_up
from provenance._judging.verdict import Findings, decide
from provenance._judging.wording import plural
from provenance._sources.torrent_file import Torrent, TorrentFile, read_torrent
from provenance.report import FileResult, FileStatus, Report, Verdict

EVIDENCE_ROOTS = "BEP 52 pieces roots from the torrent against the manifest's (no content downloaded)"
EVIDENCE_V1 = "names and sizes from the torrent (no content downloaded; v1 hashes cannot be compared)"
EVIDENCE_NO_ROOTS = "names and sizes from the torrent (no content downloaded; the manifest has no pieces roots)"
_EMPTY = {name: hashlib.new(name, b"").hexdigest() for name in ("sha256", "md5")} | {"blake3": blake3(b"").hexdigest()}


def _differing_pieces(ref: FileFingerprint, got: TorrentFile, piece_length: int) -> str | None:
    """Which pieces differ, when the manifest's chunks and the torrent's pieces have the same length."""
    if ref.pieces is None or ref.pieces.piece_length != piece_length or not ref.pieces.layer or not got.piece_layer:
        return None
    bad = [i for i, (a, b) in enumerate(zip(ref.pieces.layer, got.piece_layer, strict=False)) if a != b]
    if not bad or len(bad) == len(ref.pieces.layer):
        return None
    shown = ", ".join(str(i) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return f"{len(bad)} of {len(ref.pieces.layer)} pieces differ ({shown})"


def _file_result(ref: FileFingerprint, got: TorrentFile, torrent: Torrent) -> FileResult:
    def result(status: FileStatus, detail: str | None) -> FileResult:
        return FileResult(ref.path, status, ref.role.value, got.length, ref.size, detail)

    if ref.size is not None and ref.size != got.length:
        return result(FileStatus.MODIFIED, f"the torrent has {got.length:,} bytes, the release {ref.size:,}")
    if got.length == 0:  # the one content a length proves: known empty, or digests of nothing
        if ref.size == 0 or (ref.digests and all(_EMPTY.get(a) == d for a, d in ref.digests.items())):
            return result(FileStatus.MATCH, "empty")
        return result(FileStatus.MODIFIED, "the torrent's file is empty, the release's is not")
    if got.pieces_root is not None and ref.pieces is not None:
        if got.pieces_root == ref.pieces.root:
            return result(FileStatus.MATCH, None)
        pieces = _differing_pieces(ref, got, torrent.piece_length)
        return result(FileStatus.MODIFIED, "pieces root differs" + (f": {pieces}" if pieces else ""))
    if ref.size is None:
        return result(FileStatus.UNDECIDED, "the reference records no size; name only")
    return result(FileStatus.UNDECIDED, "same size; content unknown until downloaded")


def compare_torrent(
    reference: Checkpoint,
    torrent: Torrent,
    *,
    reference_label: str = "reference",
    torrent_label: str = "torrent",
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
) -> Report:
    """Compare the files a torrent would download with a reference's, without downloading anything."""
    offered = {f.path: f for f in torrent.files if not is_ignored(f.path, ignore)}
    files: list[FileResult] = []
    for ref in reference.files:
        got = offered.get(ref.path)
        if got is None:
            files.append(FileResult(ref.path, FileStatus.MISSING, ref.role.value, None, ref.size))
        else:
            files.append(_file_result(ref, got, torrent))
    known = {f.path for f in reference.files}
    extra = [f for path, f in offered.items() if path not in known]
    for f in extra:
        role = Role.WEIGHTS if is_weights_file(f.path) else Role.OTHER
        files.append(FileResult(f.path, FileStatus.EXTRA, role.value, f.length, None, None))

    collisions = find_collisions((f.path for f in torrent.files), files)
    verdict, reasons = decide(_findings(reference, torrent, extra, collisions))
    roots = any(f.pieces is not None for f in reference.files)
    evidence = EVIDENCE_V1 if torrent.infohash_v2 is None else (EVIDENCE_ROOTS if roots else EVIDENCE_NO_ROOTS)
    warnings: tuple[str, ...] = ()
    if torrent.kind == "hybrid" and verdict is Verdict.IDENTICAL:
        warnings = (
            "a v1-only client checks the torrent's SHA-1 pieces, which cannot be tied to the content before "
            "downloading: use a client that supports v2, or run `provenance verify` on the download",
        )
    return Report(
        verdict=verdict,
        reasons=reasons,
        files=collisions.files,
        tensors=(),
        reference=reference_label,
        candidate=torrent_label,
        evidence=evidence,
        warnings=warnings,
        facts={"torrent": _facts(torrent)},
    )


def _findings(reference: Checkpoint, torrent: Torrent, extra: list[TorrentFile], collisions: Collisions) -> Findings:
    """What names, sizes and pieces roots show: changes, files the torrent lacks, and what only the
    download (or a manifest with pieces roots) can settle."""
    files = collisions.files
    by_status: dict[FileStatus, list[str]] = {}
    for f in files:
        by_status.setdefault(f.status, []).append(f.name)
    changes = [collisions.change] if collisions.change else []
    picked = [f.path for f in extra if may_pick_up(f.path, role_of(f.path, is_weights_file(f.path)))]
    if picked:
        changes.append(f"the torrent adds {plural(len(picked), 'file')} a loader may pick up: {', '.join(picked[:3])}")
    changes += [
        f"{f.name}: {f.detail}" for f in files if f.status is FileStatus.MODIFIED and f.name not in collisions.names
    ]
    missing = by_status.get(FileStatus.MISSING, [])
    losses = (
        [f"the torrent lacks {plural(len(missing), 'file')} of the release: {', '.join(missing[:3])}"]
        if missing
        else []
    )
    if all(f.detail == "empty" for f in files if f.status is FileStatus.MATCH):
        identity = "every file of the release is empty, as in the torrent"
    else:
        identity = (
            "every file's pieces root equals the manifest's: a client that checks v2 pieces can download only "
            "the release's bytes"
        )
    return Findings(
        changes=tuple(changes),
        losses=tuple(losses),
        doubts=tuple(_doubts(reference, torrent, by_status.get(FileStatus.UNDECIDED, []), extra)),
        identity=identity,
    )


def _doubts(reference: Checkpoint, torrent: Torrent, unknown: list[str], extra: list[TorrentFile]) -> list[str]:
    """Content a torrent's metadata cannot show: added weights or indexes, and files that agree in name
    and size only."""
    doubts: list[str] = []
    added_weights = [f.path for f in extra if role_of(f.path, is_weights_file(f.path)) is not Role.OTHER]
    if added_weights:
        doubts.append(
            f"the torrent adds {plural(len(added_weights), 'weights or index file')} the release does not have, "
            "whose content only the "
            f"download can show: {', '.join(added_weights[:3])}"
        )
    sizeless = {f.path for f in reference.files if f.size is None}
    agree = "name, and in size where the manifest records one" if sizeless & set(unknown) else "name and size"
    if unknown and torrent.infohash_v2 is None:
        doubts.append(
            f"{plural(len(unknown), 'file')} agree in {agree}; a v1 torrent's hashes cannot be compared with a "
            "manifest, so only the download can prove the content: run `provenance verify` on it"
        )
    elif unknown:
        doubts.append(
            f"{plural(len(unknown), 'file')} agree in {agree}, but the manifest has no pieces roots: "
            "fingerprint the release with --torrent-v2 to decide before downloading, or verify the download"
        )
    return doubts


def _facts(torrent: Torrent) -> dict[str, object]:
    return {
        "name": torrent.name,
        "version": torrent.kind,
        "infohash_v1": torrent.infohash_v1,
        "infohash_v2": torrent.infohash_v2,
        "piece_length": torrent.piece_length,
        "files": len(torrent.files),
        "size": torrent.total_size,
    }


def check_torrent(
    torrent: Path,
    manifest: str | Path,
    *,
    keys: list[Path] | None = None,
    allow_older: bool = False,
    require_signature: bool = False,
) -> Report:
    """What a .torrent file would download, judged against the reference `manifest` names before anything is
    downloaded: names, sizes and BEP 52 pieces roots. The `provenance torrent` operation.

    The report's `exit_code` is 0 when the torrent can only download the release's bytes (identical), else
    1 (`undecided` when only the download can tell). `keys` and `allow_older` act as in `verify`. Raises
    TorrentError (exit 2) for a file that is not a valid torrent; SignatureError (exit 3) and
    ProvenanceError (exit 2) for the reference, as `verify` does.
    """
    reference = open_checked(manifest, keys=keys, allow_older=allow_older, require=require_signature)
    report = compare_torrent(
        reference.manifest.checkpoint,
        read_torrent(torrent),
        reference_label=reference.label,
        torrent_label=str(torrent),
        ignore=reference.manifest.ignore_paths,
    )
    return finish(report, reference)
