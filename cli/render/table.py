"""The human rendering: verdict and reasons first, then what differs, then the counts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from provenance.report import FileStatus, Report, TensorStatus, Verdict

_VERDICT_STYLE = {
    Verdict.IDENTICAL: "bold green",
    Verdict.EQUIVALENT: "bold green",
    Verdict.CONVERTED: "bold yellow",
    Verdict.INCOMPLETE: "bold yellow",
    Verdict.UNDECIDED: "bold yellow",
    Verdict.MODIFIED: "bold red",
    Verdict.UNRELATED: "bold red",
}
_STATUS_STYLE = {
    "match": "green",
    "extra": "cyan",
    "missing": "yellow",
    "corrupt": "yellow",
    "modified": "red",
    "cast": "yellow",
    "quantized": "yellow",
}
_RANK = {"modified": 0, "extra": 1, "corrupt": 2, "missing": 3, "cast": 4, "quantized": 5, "match": 6}
MAX_ROWS = 40


def _size(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def render_table(report: Report, console: Console, *, show_all: bool = False) -> None:
    console.print(f"verdict: [{_VERDICT_STYLE[report.verdict]}]{report.verdict.value}[/]")
    console.print(f"reference: {report.reference}", highlight=False)
    console.print(f"candidate: {report.candidate}", highlight=False)
    signer = f" ({report.signature.signer})" if report.signature.signer else ""
    console.print(f"signature: {report.signature.status.value}{signer}", highlight=False)
    console.print(f"evidence:  {report.evidence}", highlight=False)
    for reason in report.reasons:
        console.print(f"  - {reason}", highlight=False)

    files = sorted(report.files, key=lambda f: (_RANK[f.status.value], f.name))
    shown_files = files if show_all else [f for f in files if f.status is not FileStatus.MATCH]
    if shown_files:
        table = Table(title="files", title_justify="left", box=None, pad_edge=False)
        for column in ("status", "file", "role", "size", "detail"):
            table.add_column(column, justify="right" if column == "size" else "left", overflow="fold")
        for f in shown_files:
            table.add_row(
                f"[{_STATUS_STYLE[f.status.value]}]{f.status.value}[/]",
                f.name,
                f.role,
                _size(f.size),
                f.detail or "",
            )
        console.print(table)

    tensors = sorted(report.tensors, key=lambda t: _RANK[t.status.value])
    shown = tensors if show_all else [t for t in tensors if t.status is not TensorStatus.MATCH]
    if shown:
        table = Table(title="tensors", title_justify="left", box=None, pad_edge=False)
        for column in ("status", "tensor", "file", "dtype", "shape", "detail"):
            table.add_column(column, overflow="fold")
        for t in shown[: None if show_all else MAX_ROWS]:
            where = t.file or ""
            if t.candidate_file and t.candidate_file != t.file:
                where = f"{where} -> {t.candidate_file}" if where else t.candidate_file
            name = t.name if not t.candidate_name else f"{t.name} (as {t.candidate_name})"
            table.add_row(
                f"[{_STATUS_STYLE[t.status.value]}]{t.status.value}[/]",
                name,
                where,
                t.dtype,
                "x".join(map(str, t.shape)) or "scalar",
                t.detail or "",
            )
        console.print(table)
        if not show_all and len(shown) > MAX_ROWS:
            console.print(f"... and {len(shown) - MAX_ROWS} more (--all, or --json, lists every tensor)")
    counts = report.summary()
    line = "; ".join(
        f"{kind}: " + ", ".join(f"{n} {status}" for status, n in sorted(c.items())) for kind, c in counts.items() if c
    )
    console.print(f"summary: {line}", highlight=False)
