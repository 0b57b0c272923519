"""The Typer application: the commands (in cli/commands/, each a thin call into one public function of
`provenance`) in the order `--help` lists them, and the entry point that turns failures into exit codes."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli.commands.audit import audit
from cli.commands.checks import VERIFY_HELP, diff, identify, torrent, verify
from cli.commands.demo import demo
from cli.commands.documents import import_lists, keygen, sign
from cli.commands.download import DOWNLOAD_HELP, download
from cli.commands.fingerprint import fingerprint
from cli.options import report_error, say
from provenance import ProvenanceError

app = typer.Typer(
    name="provenance",
    help="Fingerprint model checkpoints tensor by tensor and verify them against release manifests.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _show_version(wanted: bool) -> None:
    """`--version`: the installed distribution's version, as bug reports need it."""
    if not wanted:
        return
    try:
        number = version("weights-provenance")
    except PackageNotFoundError:
        number = "unknown (not installed)"
    typer.echo(f"provenance {number}")
    raise typer.Exit()


@app.callback()
def _options(
    show: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Fingerprint model checkpoints tensor by tensor and verify them against release manifests."""


app.command()(fingerprint)
app.command(help=VERIFY_HELP)(verify)
app.command()(torrent)
app.command()(audit)
app.command(help=DOWNLOAD_HELP)(download)
app.command()(identify)
app.command("import")(import_lists)
app.command()(keygen)
app.command()(sign)
app.command()(diff)
app.command()(demo)


def main() -> None:
    """Console entry point: turns every expected failure into one line on stderr and its exit code."""
    try:
        code = app(standalone_mode=False)
    except ProvenanceError as exc:
        say(f"error: {exc}")
        report_error(type(exc).__name__, str(exc))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        say("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:
        # click's usage errors (typer vendors click, so they are matched by shape, not by class)
        if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
        else:
            context = getattr(exc, "ctx", None)
            command = getattr(context, "command_path", "provenance")
            say(f"error: {exc.format_message()} (see: {command} --help)")
            report_error("usage", exc.format_message())
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    sys.exit(code if isinstance(code, int) else 0)
