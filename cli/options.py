"""What every command shares: its options as declared once, the stderr line, and the end of a report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from provenance import Report

REFERENCE_HELP = (
    "Reference: a manifest, a signature bundle (ours or model_signing's) or a registry entry. "
    "./NAME is always a file, registry:NAME always a registry entry; a bare NAME that is both is refused."
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")]
ForceFlag = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]
SymlinkFlag = Annotated[
    bool, typer.Option("--allow-symlinks", help="Follow symlinks that point outside the checkpoint.")
]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
KeyOption = Annotated[
    list[Path] | None,
    typer.Option("--key", "-k", help="Public key the manifest must be signed by (repeatable). Requires a signature."),
]
RequireSignatureFlag = Annotated[
    bool,
    typer.Option(
        "--require-signature", help="Exit 3 unless the manifest has a valid signature by a trusted key (or --key)."
    ),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        help="Set aside files whose relative path (or a folder of it) matches this glob (repeatable); listed.",
    ),
]
AllowOlderFlag = Annotated[
    bool, typer.Option("--allow-older", help="Accept a manifest older than one already verified for this release.")
]
ManifestOption = Annotated[str, typer.Option("--manifest", "-m", help=REFERENCE_HELP)]
ShowAllFlag = Annotated[bool, typer.Option("--all", help="List matching files and tensors too.")]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        envvar="DASK_SCHEDULER_ADDRESS",
        help="Run on a Dask cluster: tcp://HOST:PORT, or local:N for N worker processes here (needs [cluster]).",
    ),
]


def stdout_console() -> Console:
    """rich is imported only when a table is drawn: `--json` and scripts skip its import time."""
    from rich.console import Console

    return Console(highlight=False)


def say(line: str) -> None:
    """One unwrapped line on stderr: errors and warnings must stay greppable, whatever the terminal width."""
    from cli.render.text import printable

    sys.stderr.write(printable(" ".join(line.split())) + "\n")
    sys.stderr.flush()


def wants_json() -> bool:
    """Whether the user asked for JSON: read from the command line itself, so that an error raised before or
    while the options are parsed still gets its JSON document."""
    return "--json" in sys.argv[1 : sys.argv.index("--")] if "--" in sys.argv else "--json" in sys.argv[1:]


def report_error(kind: str, message: str) -> None:
    """With --json, an error is one JSON document on stdout too (scripts read stdout, never stderr):
    `code` names the kind of error in snake_case (`unreadable_input`, `signature_error`, `usage`...)."""
    if not wants_json():
        return
    import json
    import re

    code = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    document = {"error": {"code": code, "message": " ".join(message.split())}, "version": tool_version()}
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def tool_version() -> str:
    """The installed distribution's version, as `pip show` reports it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("weights-provenance")
    except PackageNotFoundError:
        return "unknown"


def finish(report: Report, as_json: bool, show_all: bool = False) -> None:
    """Print a report's warnings on stderr, the report as a table or JSON, and exit with its exit code."""
    for warning in report.warnings:
        say(f"warning: {warning}")
    if as_json:
        from cli.render.json import render_json

        render_json(report)
    else:
        from cli.render.table import render_table

        render_table(report, stdout_console(), show_all=show_all)
    raise typer.Exit(report.exit_code)
