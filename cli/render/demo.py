"""The demo's rendering: each step of `provenance.demo` printed as the command a user types, then its output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cli.render.table import escape, render_table
from cli.render.text import count

if TYPE_CHECKING:
    from rich.console import Console

    from provenance import DemoRun


def render_demo(run: DemoRun, console: Console) -> None:
    """The sample release, its fingerprint, the damaged copy, and the real report of verifying the copy."""

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    say(f"[bold]1. a sample release[/] in {run.release}: 3 safetensors shards, index, config, tokenizer")
    say(f"\n[bold]$ provenance fingerprint {run.release} -o {run.manifest}[/]")
    say(f"{count(len(run.checkpoint.files), 'file')}, {count(run.checkpoint.tensor_count, 'tensor')} fingerprinted")
    say(f"\n[bold]2. a damaged copy[/] in {run.download}: {', '.join(run.damage)}")
    say(f"\n[bold]$ provenance verify {run.download} --manifest {run.manifest}[/]")
    render_table(run.report, console)
    for warning in run.report.warnings:  # what `verify` itself prints on stderr
        say(f"(on stderr) warning: {escape(warning)}")
    say(f"(exit code {run.report.exit_code})")
