"""The checks of weights against a reference: `verify`, `torrent`, `diff` and `identify`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import (
    AllowOlderFlag,
    ForceFlag,
    IgnoreOption,
    JsonFlag,
    KeyOption,
    ManifestOption,
    QuietFlag,
    RequireSignatureFlag,
    SchedulerOption,
    ShowAllFlag,
    SymlinkFlag,
    finish,
    say,
    stdout_console,
)
from cli.progress import ByteProgress
from provenance import ProvenanceError

if TYPE_CHECKING:
    from provenance import Candidate, Report


OnlyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--only",
        metavar="GLOB",
        help="Check only the release's files matching this glob (repeatable): the verdict is about them alone.",
    ),
]


VERIFY_HELP = (
    "Check a download against a manifest: identical, equivalent, incomplete, modified or unrelated.\n\n"
    "The seven verdicts: identical; equivalent (the same tensors in another container); converted (the "
    "release's values in another dtype or layout); incomplete (files missing or cut short); undecided; "
    "modified; unrelated. Exit 0 for identical or equivalent, 1 for the others. "
    "-m takes a manifest file, a signature bundle, a registry name (registry:NAME) or - for standard input. "
    "A single file of the release, or --only GLOB, checks that part alone."
)


def verify(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The download to check: a directory or a single file.")],
    manifest: ManifestOption,
    key: KeyOption = None,
    require_signature: RequireSignatureFlag = False,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: ShowAllFlag = False,
    allow_symlinks: SymlinkFlag = False,
    quiet: QuietFlag = False,
    ignore: IgnoreOption = None,
    only: OnlyOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Check a download against a manifest: identical, equivalent, incomplete, modified or unrelated."""
    from provenance import ReadOptions
    from provenance import verify as verify_download

    report = verify_download(
        path,
        manifest,
        keys=key,
        allow_older=allow_older,
        require_signature=require_signature,
        options=ReadOptions(allow_symlinks=allow_symlinks, patterns=tuple(ignore or ()), scheduler=scheduler),
        progress=ByteProgress(quiet),
        only=tuple(only or ()),
    )
    finish(report, as_json, show_all)


def torrent(
    torrent_file: Annotated[Path, typer.Argument(metavar="TORRENT", help="The .torrent file (v1, v2 or hybrid).")],
    manifest: ManifestOption,
    key: KeyOption = None,
    require_signature: RequireSignatureFlag = False,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching files too.")] = False,
) -> None:
    """Check a .torrent against a manifest before downloading: names, sizes and v2 pieces roots."""
    from provenance import check_torrent

    report = check_torrent(
        torrent_file, manifest, keys=key, allow_older=allow_older, require_signature=require_signature
    )
    finish(report, as_json, show_all)


def identify(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="The checkpoint to identify: a directory or a single file.")
    ],
    registry: Annotated[
        list[Path] | None, typer.Option("--registry", help="Another folder of reference manifests (repeatable).")
    ] = None,
    key: KeyOption = None,
    require_signature: RequireSignatureFlag = False,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    allow_symlinks: SymlinkFlag = False,
    quiet: QuietFlag = False,
    ignore: IgnoreOption = None,
) -> None:
    """Which known release is this, or which does it derive from: ranked candidates and how they match.

    With --key or --require-signature only registry entries signed by a trusted key are compared; the
    others are named as skipped."""
    from provenance import ReadOptions
    from provenance import identify as identify_path

    skipped: list[str] = []
    ranked = identify_path(
        path,
        registry,
        options=ReadOptions(allow_symlinks=allow_symlinks, patterns=tuple(ignore or ())),
        keys=key,
        require_signature=require_signature,
        allow_older=allow_older,
        progress=ByteProgress(quiet),
        skipped=skipped.append,
    )
    for line in skipped:
        say(f"warning: {line}")
    _print_candidates(ranked, skipped, as_json)
    best = ranked[0] if ranked else None
    raise typer.Exit(0 if best is not None and best.verdict.passes else 1)


def _print_candidates(ranked: list[Candidate], skipped: list[str], as_json: bool) -> None:
    if as_json:
        import json

        from cli.options import tool_version

        document = {"matches": [c.as_dict() for c in ranked], "skipped": skipped, "version": tool_version()}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        from cli.render.audit import render_rows

        rows = [[c.release, c.verdict.value, f"{c.share:.0%}", c.how, c.source] for c in ranked]
        render_rows(stdout_console(), ["release", "verdict", "share", "how", "source"], rows)


PlotOption = Annotated[
    Path | None,
    typer.Option("--plot", help="Also draw the layer-by-kind heatmap of change to FILE (.svg or .png)."),
]


def diff(
    a: Annotated[Path, typer.Argument(metavar="A", help="Reference side: a checkpoint or a manifest.")],
    b: Annotated[Path, typer.Argument(metavar="B", help="Compared side: a checkpoint or a manifest.")],
    key: KeyOption = None,
    require_signature: RequireSignatureFlag = False,
    as_json: JsonFlag = False,
    show_all: ShowAllFlag = False,
    allow_symlinks: SymlinkFlag = False,
    allow_older: AllowOlderFlag = False,
    quiet: QuietFlag = False,
    plot: PlotOption = None,
    force: ForceFlag = False,
    ignore: IgnoreOption = None,
) -> None:
    """Compare two checkpoints or manifests, tensor by tensor (A is the reference), with drift per layer."""
    from provenance import ReadOptions
    from provenance import diff as diff_paths

    if plot is not None:
        from provenance import refuse_overwrite

        if plot.suffix.lower() not in (".svg", ".png"):
            raise ProvenanceError(f"--plot {plot}: give a file name ending in .svg or .png")
        refuse_overwrite(plot, force)
    report = diff_paths(
        a,
        b,
        options=ReadOptions(allow_symlinks=allow_symlinks, patterns=tuple(ignore or ())),
        keys=key,
        allow_older=allow_older,
        require_signature=require_signature,
        progress=ByteProgress(quiet),
    )
    _draw_drift(report, plot, force, as_json)
    finish(report, as_json, show_all)


def _draw_drift(report: Report, plot: Path | None, force: bool, as_json: bool) -> None:
    """The layer-by-kind picture of change: to the --plot file, and on the terminal when it shows a change."""
    from provenance import drift

    grid = drift(report)
    if plot is not None:
        from cli.render.picture import write_plot

        write_plot(grid, plot, force=force)
        say(f"wrote {plot}: {len(grid.layers)} layers by {len(grid.kinds)} tensor kinds")
    if not as_json and grid.changed:
        from cli.render.picture import terminal_lines
        from cli.render.text import printable

        console = stdout_console()
        for line in terminal_lines(grid):  # tensor kinds are named after the files' own tensor names
            console.print(printable(line), highlight=False, soft_wrap=True, markup=False)
