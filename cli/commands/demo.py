"""`provenance demo`: the main job end to end on the bundled sample release."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cli.options import stdout_console


def demo(
    folder: Annotated[
        Path | None, typer.Option("--dir", help="Where to build the sample (default: a temp dir).")
    ] = None,
) -> None:
    """Build the bundled sample release, fingerprint it, then verify a damaged copy of it."""
    from cli.render.demo import render_demo
    from provenance import demo as run_demo

    if folder is None:
        with tempfile.TemporaryDirectory(prefix="provenance-demo-") as tmp:
            render_demo(run_demo(Path(tmp)), stdout_console())
    else:
        render_demo(run_demo(folder), stdout_console())
