"""`provenance download`: a release's files from the hub or an http(s) folder, only the bytes that match kept."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import (
    AllowOlderFlag,
    JsonFlag,
    KeyOption,
    ManifestOption,
    QuietFlag,
    RequireSignatureFlag,
    ShowAllFlag,
    finish,
)
from cli.progress import ByteProgress

SourceArgument = Annotated[
    str, typer.Argument(metavar="SOURCE", help="hf://ORG/REPO[@REV], or an http(s) folder URL holding the files.")
]
LocalDirOption = Annotated[
    Path | None,
    typer.Option(
        "--local-dir",
        "-o",
        metavar="DIR",
        help="Write the files into DIR under their own names (needed for a URL) instead of the hub cache.",
    ),
]
CacheDirOption = Annotated[
    Path | None, typer.Option("--cache-dir", metavar="DIR", help="The hub cache to fill (default: huggingface_hub's).")
]
IncludeOption = Annotated[
    list[str] | None, typer.Option("--include", metavar="GLOB", help="Only the release's files matching GLOB.")
]
ExcludeOption = Annotated[
    list[str] | None, typer.Option("--exclude", metavar="GLOB", help="Not the release's files matching GLOB.")
]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", metavar="N", help="Connections at once.")]
KeepRejectedOption = Annotated[
    Path | None,
    typer.Option("--keep-rejected", metavar="DIR", help="Keep bytes that do not match in DIR, for forensics."),
]

DOWNLOAD_HELP = (
    "Download the files a manifest names, hashing them as they arrive; only files that match are kept.\n\n"
    "From hf://ORG/REPO[@REV] into the Hugging Face cache (blob, snapshot, ref: from_pretrained then loads "
    "them offline), or from an http(s) folder URL into -o DIR. A range that arrives damaged is fetched again; "
    "an interrupted download resumes. Verdicts and exit codes are verify's: 0 when every file is the release's."
)


def download(
    source: SourceArgument,
    manifest: ManifestOption,
    local_dir: LocalDirOption = None,
    cache_dir: CacheDirOption = None,
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    jobs: JobsOption = 4,
    keep_rejected: KeepRejectedOption = None,
    key: KeyOption = None,
    require_signature: RequireSignatureFlag = False,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: ShowAllFlag = False,
    quiet: QuietFlag = False,
) -> None:
    from provenance import DownloadOptions, ProvenanceError
    from provenance import download as download_release

    if jobs < 1:
        raise ProvenanceError("--jobs must be at least 1")
    options = DownloadOptions(
        local_dir=local_dir,
        cache_dir=cache_dir,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        jobs=jobs,
        keep_rejected=keep_rejected,
    )
    done = download_release(
        source,
        manifest,
        options=options,
        keys=key,
        require_signature=require_signature,
        allow_older=allow_older,
        progress=ByteProgress(quiet),
    )
    finish(done.report, as_json, show_all)
