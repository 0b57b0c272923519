"""Many results at once: one row per mirror or cached snapshot, or one JSON document for pipelines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.render.table import escape
from cli.render.text import printable

if TYPE_CHECKING:
    from rich.console import Console

    from provenance import CachedSnapshot, MirrorResult


def render_rows(console: Console, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        console.print("  ".join(escape(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), soft_wrap=True)


def render_mirrors(
    results: list[MirrorResult], as_json: bool, console: Callable[[], Console], say: Callable[[str], None]
) -> int:
    """Print one row (or JSON entry) per mirror; the exit code: 2 if one could not be read, else 1 if one
    did not pass, else 0."""
    for warning in next((r.report.warnings for r in results if r.report is not None), ()):
        say(f"warning: {warning}")
    for r in results:
        if r.attempts > 1:
            say(f"note: {r.ref} ran {r.attempts} times: its worker was lost, and Dask ran it again on another")
    if as_json:
        document: dict[str, Any] = {
            "mirrors": [
                (
                    {"repo": str(r.ref), "error": r.error}
                    if r.report is None
                    else {"repo": str(r.ref), **r.report.as_dict()}
                )
                | ({"attempts": r.attempts} if r.attempts > 1 else {})
                for r in results
            ]
        }
        from cli.options import tool_version

        sys.stdout.write(json.dumps(document | {"version": tool_version()}, indent=2) + "\n")
    else:
        rows = []
        for r in results:
            if r.report is None:
                rows.append([str(r.ref), "error", "-", "-", r.error or ""])
                continue
            mirror = r.report.facts.get("mirror", {})
            rows.append(
                [
                    str(r.ref),
                    r.report.verdict.value,
                    str(mirror.get("requests", "-")),
                    f"{mirror.get('bytes', 0):,}",
                    r.report.evidence,
                ]
            )
        render_rows(console(), ["mirror", "verdict", "requests", "bytes", "evidence"], rows)
    if any(r.report is None for r in results):
        return 2
    return 0 if all(r.report is not None and r.report.verdict.passes for r in results) else 1


def render_cache(
    snapshots: list[CachedSnapshot], as_json: bool, console: Callable[[], Console], say: Callable[[str], None]
) -> int:
    """Print one row (or JSON entry) per cached snapshot; exit 1 if a blob is corrupt or a verdict fails."""
    if as_json:
        document = {
            "snapshots": [
                {
                    "repo": s.repo_id,
                    "type": s.repo_type,
                    "commit": s.commit,
                    "refs": list(s.refs),
                    "path": str(s.path),
                    "files": len(s.files),
                    "corrupt": [{"file": f, "detail": why} for f, why in s.corrupt],
                    "reference": s.reference,
                    "verdict": s.report.verdict.value if s.report else None,
                    "report": s.report.as_dict() if s.report else None,
                }
                for s in snapshots
            ]
        }
        from cli.options import tool_version

        sys.stdout.write(json.dumps(document | {"version": tool_version()}, indent=2) + "\n")
    else:
        rows = [
            [
                f"{s.repo_id}@{s.commit[:12]}" + (f" ({', '.join(s.refs)})" if s.refs else ""),
                str(len(s.files)),
                f"{len(s.corrupt)} corrupt" if s.corrupt else "ok",
                f"{s.report.verdict.value} vs {s.reference}" if s.report else "no matching reference (pass --manifest)",
            ]
            for s in snapshots
        ]
        render_rows(console(), ["snapshot", "files", "blobs", "against a reference"], rows)
        for s in snapshots:
            console().print(
                printable(f"{s.repo_id}@{s.commit[:12]}: {s.path}"), soft_wrap=True, highlight=False, markup=False
            )
        for s in snapshots:
            for name, why in s.corrupt:
                say(_corrupt(s, name, why))
    if not snapshots:
        say("the hub cache holds no snapshots")
    return 0 if all(s.passes for s in snapshots) else 1


def _corrupt(snapshot: CachedSnapshot, name: str, why: str) -> str:
    """A corrupt blob's line, with what to do about it: a blob is read by every snapshot linking to it."""
    if not snapshot.commit:
        return f"corrupt: {why}"
    where = f"{snapshot.repo_id}@{snapshot.commit[:12]} {name}"
    return (
        f"corrupt: {where}: {why}; delete {snapshot.path / name} and the blob it links to, "
        f"or download it again (hf download {snapshot.repo_id} {name} --revision {snapshot.commit} --force-download)"
    )
