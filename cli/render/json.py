"""The `--json` rendering: one document on stdout, nothing else."""

from __future__ import annotations

import json
import sys

from provenance import Report


def render_json(report: Report) -> None:
    """The report's document, with the version of the tool that made it (a script may record both)."""
    from cli.options import tool_version

    sys.stdout.write(json.dumps(report.as_dict() | {"version": tool_version()}, indent=2) + "\n")
