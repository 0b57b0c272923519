"""`provenance download`: fetch the files a manifest names and keep only the bytes that match it.

Each file is fetched by parallel range requests and hashed as its bytes arrive, in file order (the
SHA-256 of the file and the BLAKE3 of every tensor, one pass, no second read), into a staging file that is
moved into place only when it matches the manifest. A mismatch is first taken for damage in transit: the
tensors (or the bytes between them) that differ are fetched again, only those, a bounded number of times;
bytes the server sends the same way twice are what it serves, and the file is rejected with the verdict
`verify` would give it. A staging file left by an interrupted run is resumed: its bytes are hashed from
disk and only the rest is fetched.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from manifests.records import Checkpoint, FileFingerprint
from manifests.reference import Reference
from provenance._checks.common import finish, open_checked
from provenance._checks.part import Part, mark, matches_any
from provenance._checks.received import Origin, Outcome, git_oid, receive_file
from provenance._checks.verify import weak_matches
from provenance._hashing.scan import ProgressReporter
from provenance._judging.compare import compare
from provenance._judging.wording import names, plural
from provenance._sources.cache_layout import Destination, HubCache, LocalFolder
from provenance._sources.http_folder import HttpFolder
from provenance._sources.hub import Hub
from provenance._sources.hub_refs import RepoRef, is_hub_spec
from provenance._sources.receiving import SEGMENT
from provenance.errors import ProvenanceError, UnreadableInput
from provenance.report import Report

# Seconds one range request may take, retries included (each 4 MiB of it too): a 16 MiB range at 140 KB/s per
# connection. Longer than an audit's 45 s, which reads headers and samples, not whole releases.
RANGE_TIMEOUT = 120.0
FILES_AT_ONCE = 2  # files received side by side: their hashing takes a core each
EVIDENCE = "every byte hashed as it arrived: BLAKE3 per tensor and of the container bytes, file SHA-256"
EVIDENCE_FILES = "every byte hashed as it arrived: whole-file digests (no tensor-level reference)"


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    """Where the files go and which: `local_dir` (a plain folder) or the hub cache (`cache_dir`, default
    huggingface_hub's); `include`/`exclude` globs on the manifest's paths; `jobs` connections at once;
    `keep_rejected` a folder that keeps rejected bytes for forensics (else they are deleted)."""

    local_dir: Path | None = None
    cache_dir: Path | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    jobs: int = 4
    keep_rejected: Path | None = None
    segment: int = SEGMENT  # bytes per range request


@dataclass(frozen=True, slots=True)
class Download:
    """What a download did: the verify report of what was received, and where the verified files are."""

    report: Report
    folder: Path  # the snapshot folder (hub cache) or the local folder
    received: int  # bytes that came over the network, ranges fetched again included
    refetched: int  # ranges fetched again after they arrived damaged
    reused: tuple[str, ...]  # files already in place and matching: not fetched
    committed: tuple[str, ...]  # files fetched, verified and moved into place
    rejected: tuple[str, ...]  # files whose bytes do not match: nothing of them kept in place

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def download(
    source: str,
    manifest: str | Path,
    *,
    options: DownloadOptions = DownloadOptions(),
    keys: list[Path] | None = None,
    require_signature: bool = False,
    allow_older: bool = False,
    progress: ProgressReporter | None = None,
) -> Download:
    """Download the files `manifest` names from `source` (hf://ORG/REPO[@REV] or an http(s) folder URL),
    keeping only bytes that match. The `provenance download` operation.

    From the hub, files go into huggingface_hub's cache layout (blob, snapshot link, ref), through its
    endpoint, session and token (HF_ENDPOINT, HF_TOKEN), so that `from_pretrained(..., local_files_only=True)`
    then loads exactly the verified bytes; with `options.local_dir` (required for a URL) into that folder.
    The report is `verify`'s for the bytes received, with a `download` fact group. Signatures are checked as
    `verify` checks them. Raises SignatureError (exit 3) as verify does; HubError (exit 2) when the source
    cannot be read or a transfer breaks off (what arrived is kept staged, and the same command resumes it);
    ProvenanceError (exit 2) for a bad manifest, URL or folder.
    """
    reference = open_checked(manifest, keys=keys, allow_older=allow_older, require=require_signature)
    release = reference.manifest.checkpoint
    chosen = tuple(
        f
        for f in release.files
        if (not options.include or matches_any(f.path, options.include)) and not matches_any(f.path, options.exclude)
    )
    if not chosen:
        raise UnreadableInput("no file of the release matches --include/--exclude; nothing to download")
    origin, destination = _open(source, options)
    wanted = dataclasses.replace(release, files=chosen)
    if progress is not None:
        progress.begin(sum(f.size or 0 for f in chosen), "downloading")
    connections = max(1, options.jobs // min(FILES_AT_ONCE, len(chosen)))

    def one(entry: FileFingerprint) -> Outcome:
        return receive_file(origin, destination, entry, (connections, options.segment), options.keep_rejected, progress)

    outcomes: list[Outcome] = []
    failures: list[ProvenanceError] = []
    for wave in _waves(chosen):  # two files of the same bytes share a staging name: never at once
        with ThreadPoolExecutor(min(FILES_AT_ONCE, len(wave)), thread_name_prefix="download") as pool:
            for future in [pool.submit(one, entry) for entry in wave]:
                try:
                    outcomes.append(future.result())
                except ProvenanceError as exc:
                    failures.append(exc)
    if any(o.kind in ("reused", "committed") for o in outcomes):
        destination.finish()
    if failures:
        raise failures[0]
    return _result(reference, wanted, len(release.files), origin, destination, outcomes)


def _waves(entries: tuple[FileFingerprint, ...]) -> list[list[FileFingerprint]]:
    """The files in rounds where no two have the same SHA-256 (the name their bytes are staged under)."""
    waves: list[list[FileFingerprint]] = []
    for entry in entries:
        key = entry.digests.get("sha256") or entry.path
        wave = next((w for w in waves if all((e.digests.get("sha256") or e.path) != key for e in w)), None)
        if wave is None:
            waves.append([entry])
        else:
            wave.append(entry)
    return waves


def _open(source: str, options: DownloadOptions) -> tuple[Origin, Destination]:
    """The source's reader and the destination its verified files go to."""
    if is_hub_spec(source):
        ref = RepoRef.parse(source)
        hub = Hub(in_flight=options.jobs, total=RANGE_TIMEOUT)
        snapshot = hub.snapshot(ref)
        offered = {f.path: f for f in snapshot.files}

        def etag(path: str, fingerprint: FileFingerprint, staged: Path) -> str:
            f = offered[path]
            if f.lfs:
                return fingerprint.digests["sha256"]
            return f.oid or git_oid(staged)

        origin = Origin(
            str(ref),
            lambda path, start, end: hub.read_range(snapshot, path, start, end),
            lambda path: offered[path].size if path in offered else None,
            etag,
            lambda: hub.received[ref.repo_id],
        )
        if options.local_dir is not None:
            return origin, LocalFolder(options.local_dir)
        return origin, HubCache(_cache_dir(options.cache_dir), ref.repo_id, snapshot.commit, ref.revision or "main")
    if source.startswith(("http://", "https://")):
        folder = HttpFolder(source, in_flight=options.jobs, total=RANGE_TIMEOUT)
        if options.local_dir is None:
            raise UnreadableInput(f"{folder.label} is a plain folder URL with no cache layout: give -o DIR")
        origin = Origin(
            folder.label,
            folder.read_range,
            folder.size_of,
            lambda path, fingerprint, staged: fingerprint.digests["sha256"],
            lambda: folder.hub.received[folder.label],
        )
        return origin, LocalFolder(options.local_dir)
    raise UnreadableInput(f"{source} is neither hf://ORG/REPO[@REVISION] nor an http(s) folder URL")


def _cache_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _result(
    reference: Reference,
    wanted: Checkpoint,
    of: int,
    origin: Origin,
    destination: Destination,
    outcomes: list[Outcome],
) -> Download:
    """The verify report of what was received, with what the download did as its `download` facts."""
    candidate = Checkpoint(tuple(o.fingerprint for o in outcomes if o.fingerprint is not None))
    report = compare(
        wanted,
        candidate,
        reference_label=reference.label,
        candidate_label=origin.label,
        evidence=EVIDENCE if wanted.tensor_level else EVIDENCE_FILES,
    )
    if len(wanted.files) < of:
        report = mark(report, Part(destination.root, wanted, (), of))
    names = {kind: tuple(o.path for o in outcomes if o.kind == kind) for kind in ("reused", "committed", "rejected")}
    done = Download(
        report,
        destination.root,
        origin.received(),
        sum(o.refetched for o in outcomes),
        names["reused"],
        names["committed"],
        names["rejected"],
    )
    facts = {
        "into": str(done.folder),
        "bytes_received": done.received,
        "ranges_fetched_again": done.refetched,
        "files_already_there": len(done.reused),
        "files_committed": len(done.committed),
        "files_rejected": len(done.rejected),
        "rejected": list(done.rejected),
    }
    report = dataclasses.replace(report, facts={**report.facts, "download": facts}, reasons=_told(report, done))
    report = finish(
        dataclasses.replace(report, warnings=(*report.warnings, *weak_matches(report, reference))), reference
    )
    return dataclasses.replace(done, report=report)


def _told(report: Report, done: Download) -> tuple[str, ...]:
    """The report's reasons, and what the download did about what arrived: in the text as in the JSON."""
    said = list(report.reasons)
    if done.refetched:
        again = "was" if done.refetched == 1 else "were"
        said.append(f"{plural(done.refetched, 'range')} arrived unlike the release's and {again} fetched again")
    if done.rejected:
        said.append(f"not kept, as its bytes are not the release's: {names(list(done.rejected))}")
    return tuple(said)
