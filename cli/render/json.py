"""The `--json` rendering: one document on stdout, nothing else."""

from __future__ import annotations

import json
import sys

from provenance import Report


def render_json(report: Report) -> None:
    sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
