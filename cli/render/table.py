"""The human rendering: verdict and reasons first, then what differs, then the counts.

Plain aligned lines rather than a grid: tensor names are long, and a wrapped name cannot be copied or
grepped. Tensors lost with a whole file are shown as one line for that file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape as escape_markup

from cli.render.text import count, printable
from provenance import FileStatus, Proof, Report, SignatureStatus, TensorResult, TensorStatus, Verdict

_VERDICT_STYLE = {
    Verdict.IDENTICAL: "bold green",
    Verdict.EQUIVALENT: "bold green",
    Verdict.CONVERTED: "bold yellow",
    Verdict.INCOMPLETE: "bold yellow",
    Verdict.UNDECIDED: "bold yellow",
    Verdict.MODIFIED: "bold red",
    Verdict.UNRELATED: "bold red",
}
_STYLE = {
    "match": "green",
    "extra": "cyan",
    "missing": "yellow",
    "corrupt": "yellow",
    "modified": "red",
    "cast": "yellow",
    "quantized": "yellow",
    "undecided": "yellow",
}


def escape(text: str) -> str:
    return escape_markup(printable(text))


_RANK = {
    "modified": 0,
    "extra": 1,
    "corrupt": 2,
    "missing": 3,
    "undecided": 4,
    "cast": 5,
    "quantized": 6,
    "match": 7,
}
MAX_ROWS = 40


def _status(value: str) -> str:
    return f"[{_STYLE[value]}]{value:<9}[/]"


def _lost(report: Report, name: str) -> str:
    """Why the file's tensors are missing: a file not there is lost, a corrupt one cannot be read."""
    corrupt = any(f.name == name and f.status is FileStatus.CORRUPT for f in report.files)
    return "which cannot be read" if corrupt else "which is missing"


def _shape(t: TensorResult) -> str:
    return f"{t.dtype}[{', '.join(map(str, t.shape))}]"


def _trust_note(report: Report) -> str:
    """What the verdict is worth when its manifest's publisher is not proven: said on the verdict line itself,
    since a green word read alone is what a user (or a screenshot) keeps."""
    if not report.manifest:  # two checkpoints on disk: no manifest, nothing to sign
        return ""
    if report.signature.status is SignatureStatus.UNSIGNED:
        return " (unsigned manifest: nothing proves who published it)"
    if report.signature.status is SignatureStatus.UNTRUSTED:
        return " (signed by an unknown key: the signature was not checked)"
    return ""


def render_table(report: Report, console: Console, *, show_all: bool = False) -> None:
    def line(text: str = "") -> None:
        console.print(text, soft_wrap=True, highlight=False)

    line(f"verdict: [{_VERDICT_STYLE[report.verdict]}]{report.verdict.value}[/]{_trust_note(report)}")
    line(f"reference: {escape(report.reference)}")
    line(f"candidate: {escape(report.candidate)}")
    signer = f" by {report.signature.signer}" if report.signature.signer else ""
    what = f": {report.signature.detail}" if report.signature.detail else ""
    line(f"signature: {report.signature.status.value}{escape(signer + what)}")
    line(f"evidence:  {escape(report.evidence)}")
    if report.proof is Proof.SAMPLED:
        line(f"proof:     [yellow]sampled[/] ({report.proof.meaning})")
    elif report.proof is not None:
        line(f"proof:     {report.proof.value}")
    for kind, group in report.facts.items():
        for key, value in group.items():
            if value is not None and not isinstance(value, (list, dict)):
                text = f"{value:,}" if isinstance(value, int) else str(value)
                line(f"{kind} {key.replace('_', ' ')}: {escape(text)}")
    for reason in report.reasons:
        line(f"  - {escape(reason)}")

    files = sorted(report.files, key=lambda f: (_RANK[f.status.value], f.name))
    shown = files if show_all else [f for f in files if f.status is not FileStatus.MATCH]
    if shown:
        line()
        line(f"files ({len(shown)} of {len(files)}{'' if show_all else ' not matching'}):")
        width = max(len(f.name) for f in shown)
        for f in shown:
            size = "" if f.size is None else f"{f.size:,} bytes"
            detail = f"  {f.detail}" if f.detail else ""
            line(f"  {_status(f.status.value)} {escape(f.name):<{width}}  {size}{escape(detail)}".rstrip())

    _render_tensors(report, line, show_all)
    if report.refetch:
        total = sum(r.size for r in report.refetch)
        line()
        unsized = sum(1 for r in report.refetch if not r.ranges and r.truncate is None and not r.size)
        sized = f"{total:,} bytes in {count(len(report.refetch) - unsized, 'file')}"
        whole = f"{count(unsized, 'whole file')} of a size the manifest does not record"
        amount = whole if unsized == len(report.refetch) else f"{sized} and {whole}" if unsized else sized
        line(f"fetch again ({amount}; byte ranges first-last, --json has all):")
        width = max(len(r.file) for r in report.refetch)
        for r in report.refetch:
            spans = ", ".join(f"{a}-{b - 1}" for a, b in r.ranges[:3])
            more = f" and {len(r.ranges) - 3} more" if len(r.ranges) > 3 else ""
            where = f"{r.size:,} bytes: {spans}{more}  " if r.ranges else ""
            cut = f"then cut to {r.truncate:,} bytes  " if r.truncate is not None else ""
            line(f"  {escape(r.file):<{width}}  {where}{cut}[dim]{escape(r.detail)}[/]")
    counts = report.summary()
    summary = "; ".join(
        f"{kind}: " + ", ".join(f"{n} {status}" for status, n in sorted(c.items())) for kind, c in counts.items() if c
    )
    line()
    line(f"summary: {summary}")


def _render_tensors(report: Report, line: Callable[..., None], show_all: bool) -> None:
    tensors = sorted(report.tensors, key=lambda t: _RANK[t.status.value])
    shown = tensors if show_all else [t for t in tensors if t.status is not TensorStatus.MATCH]
    if not shown:
        return
    lost_files = {f.name for f in report.files if f.status in (FileStatus.MISSING, FileStatus.CORRUPT)}
    by_file: dict[str, list[TensorResult]] = defaultdict(list)
    for t in report.tensors:
        if t.file:
            by_file[t.file].append(t)
    grouped = {
        name
        for name, members in by_file.items()
        if name in lost_files and all(t.status is TensorStatus.MISSING for t in members)
    }
    rest = [t for t in shown if not (t.status is TensorStatus.MISSING and t.file in grouped)]
    width = max((len(t.name) for t in rest), default=0)
    rows: list[tuple[int, str]] = [
        (
            _RANK["missing"],
            f"  {_status('missing')} {count(len(by_file[name]), 'tensor')} of {escape(name)}, {_lost(report, name)}",
        )
        for name in sorted(grouped)
    ]
    for t in rest:
        alias = f" (as {t.candidate_name})" if t.candidate_name else ""
        where = t.candidate_file if t.candidate_file else t.file
        detail = f"  {t.detail}" if t.detail else ""
        text = (
            f"  {_status(t.status.value)} {escape(t.name):<{width}}  {_shape(t)}{escape(detail + alias)}"
            f"  [dim]{escape(where or '')}[/]"
        )
        rows.append((_RANK[t.status.value], text))
    rows.sort(key=lambda row: row[0])
    line()
    line(f"tensors ({len(shown)} of {len(tensors)}{'' if show_all else ' differ'}):")
    for _, row in rows[: None if show_all else MAX_ROWS]:
        line(row)
    if not show_all and len(rows) > MAX_ROWS:
        line(f"  ... and {len(rows) - MAX_ROWS} more (--all or --json lists every tensor)")
