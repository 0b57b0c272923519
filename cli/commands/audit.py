"""`provenance audit`: hub mirrors against a manifest, or the local hub cache against the releases it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import (
    REFERENCE_HELP,
    AllowOlderFlag,
    JsonFlag,
    KeyOption,
    QuietFlag,
    RequireSignatureFlag,
    SchedulerOption,
    finish,
    say,
    stdout_console,
)
from cli.progress import ByteProgress
from provenance import ProvenanceError

TargetsArgument = Annotated[
    list[str] | None,
    typer.Argument(metavar="TARGET...", help="hf://ORG/REPO[@REV] mirrors, or `cache` for the local hub cache."),
]
ManifestsOption = Annotated[
    list[str] | None, typer.Option("--manifest", "-m", help=f"{REFERENCE_HELP} For `cache`, repeatable.")
]
SearchOption = Annotated[str | None, typer.Option("--search", help="Also audit the hub's models matching TEXT.")]
LimitOption = Annotated[int, typer.Option("--limit", help="At most this many search results.")]
SpotCheckOption = Annotated[
    int, typer.Option("--spot-check", help="Fetch N random chunks or tensors by range request and check them.")
]
FullFlag = Annotated[bool, typer.Option("--full", help="Stream every byte through the hasher (nothing kept).")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed for the spot checks' choice.")]
MaxRequestsOption = Annotated[int, typer.Option("--max-requests", help="HTTP requests in flight at most.")]
CacheDirOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="`cache` only: the hub cache (default: huggingface_hub's).")
]
ShowAllFlag = Annotated[bool, typer.Option("--all", help="List matching files too (one mirror).")]


def audit(
    targets: TargetsArgument = None,
    manifest: ManifestsOption = None,
    search: SearchOption = None,
    limit: LimitOption = 50,
    spot_check: SpotCheckOption = 0,
    full: FullFlag = False,
    seed: SeedOption = None,
    max_requests: MaxRequestsOption = 8,
    cache_dir: CacheDirOption = None,
    key: KeyOption = None,
    require_signature: RequireSignatureFlag = False,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: ShowAllFlag = False,
    scheduler: SchedulerOption = None,
    quiet: QuietFlag = False,
) -> None:
    """Audit hub mirrors against a manifest from metadata, headers, sampled or all bytes; or the local cache."""
    from cli.render.audit import render_cache, render_mirrors

    targets = targets or []
    if targets == ["cache"]:
        from provenance import audit_cache

        snapshots = audit_cache(
            cache_dir, manifest, keys=key, allow_older=allow_older, require_signature=require_signature
        )
        raise typer.Exit(render_cache(snapshots, as_json, stdout_console, say))
    if "cache" in targets:
        raise ProvenanceError("`provenance audit cache` takes no other target; audit mirrors in a separate run")
    if not targets and not search:
        raise ProvenanceError("audit needs a target: hf://ORG/REPO mirrors, `cache`, or --search TEXT")
    if not manifest or len(manifest) != 1:
        raise ProvenanceError("give exactly one --manifest to audit mirrors against")
    if spot_check < 0 or max_requests < 1 or limit < 1:
        raise ProvenanceError("--spot-check must be >= 0, --max-requests and --limit >= 1")
    from provenance import AuditOptions, audit_mirrors

    results = audit_mirrors(
        targets,
        manifest[0],
        search=search,
        limit=limit,
        options=AuditOptions(spot_check=spot_check, full=full, seed=seed),
        keys=key,
        allow_older=allow_older,
        require_signature=require_signature,
        in_flight=max_requests,
        scheduler=scheduler,
        progress=ByteProgress(quiet, items=True),
    )
    if len(results) == 1 and not search and results[0].report is not None:
        finish(results[0].report, as_json, show_all)
    raise typer.Exit(render_mirrors(results, as_json, stdout_console, say))
