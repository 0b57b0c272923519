"""The results as tables (aligned text for the console, Markdown for results.md), each ratio and memory
figure against its DESIGN.md target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from run_checkpoints import Checkpoint
from run_common import GIB, MIB
from run_timing import Series

TARGET_VERIFY_VS_B3SUM = 1.3
TARGET_VERIFY_VS_MS_VERIFY = 0.35
TARGET_FINGERPRINT_VS_MS_SIGN = 1.5  # with sketches, the default
TARGET_PLAIN_VS_MS_SIGN = 1.15  # --no-sketches
TARGET_RSS_AT_2GIB_MIB = 400.0
TARGET_RSS_GROWTH = 1.10
TARGET_SMALL_TENSOR_RATE = 0.5
OVERHEAD_COMMANDS = ("fingerprint", "fingerprint --no-sketches", "b3sum")  # the keys bench_overhead times


@dataclass
class Table:
    """A titled table rendered as aligned text for the console and as Markdown for the README."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def text(self) -> str:
        widths = [max(len(row[i]) for row in [self.headers, *self.rows]) for i in range(len(self.headers))]
        lines = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in self.rows]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def timing_table(ckpt: Checkpoint, series: dict[str, Series], runs: int) -> Table:
    """Medians per command at one size, with spread, throughput and peak memory."""
    size = ckpt.total_bytes()
    title = f"{ckpt.name}: {size / GIB:.2f} GiB, {ckpt.tensor_count} tensors, {len(ckpt.files())} files, {runs} runs"
    table = Table(title, ["command", "median s", "min s", "max s", "GiB/s", "peak RSS MiB"])
    for s in series.values():
        times = [x.seconds for x in s.samples]
        table.rows.append(
            [
                s.label,
                f"{s.median:.3f}",
                f"{min(times):.3f}",
                f"{max(times):.3f}",
                f"{size / GIB / s.median:.2f}" if size >= MIB else "-",
                f"{s.peak_rss_mib:.0f}",
            ]
        )
    return table


def ratio_table(results: dict[str, dict[str, Series]]) -> Table:
    """DESIGN.md's wall-time ratios at every size, each against its target."""
    checks = (
        ("verify / b3sum", "provenance verify", "b3sum", TARGET_VERIFY_VS_B3SUM),
        ("verify / model_signing verify", "provenance verify", "model_signing verify key", TARGET_VERIFY_VS_MS_VERIFY),
        (
            "fingerprint / model_signing sign",
            "provenance fingerprint",
            "model_signing sign key",
            TARGET_FINGERPRINT_VS_MS_SIGN,
        ),
        (
            "fingerprint --no-sketches / model_signing sign",
            "provenance fingerprint --no-sketches",
            "model_signing sign key",
            TARGET_PLAIN_VS_MS_SIGN,
        ),
    )
    table = Table(
        "Wall-time ratios (medians) against DESIGN.md targets", ["checkpoint", "ratio", "value", "target", "result"]
    )
    for name, series in results.items():
        for label, num, den, target in checks:
            value = series[num].median / series[den].median
            table.rows.append([name, label, f"{value:.2f}", f"<= {target}", verdict(value <= target)])
        if "libtorrent create v2" in series:  # no DESIGN.md target: what the BEP 52 hashes cost, against the peer
            for label, num, den in (
                (
                    "fingerprint --torrent-v2 --no-sketches / libtorrent create v2",
                    "provenance fingerprint --torrent-v2 --no-sketches",
                    "libtorrent create v2",
                ),
                (
                    "fingerprint --torrent-v2 --no-sketches / fingerprint --no-sketches",
                    "provenance fingerprint --torrent-v2 --no-sketches",
                    "provenance fingerprint --no-sketches",
                ),
                (
                    "fingerprint / fingerprint --no-sketches (what sketches cost)",
                    "provenance fingerprint",
                    "provenance fingerprint --no-sketches",
                ),
            ):
                value = series[num].median / series[den].median
                table.rows.append([name, label, f"{value:.2f}", "(no target)", "-"])
    return table


def memory_table(results: dict[str, dict[str, Series]], sizes: Sequence[float]) -> Table:
    """Peak RSS of provenance at every size; the targets need the 2 GiB and 8 GiB checkpoints."""
    table = Table(
        "Peak memory of provenance (max RSS over the runs)",
        ["command", "checkpoint", "peak RSS MiB", "target", "result"],
    )
    for command in ("provenance verify", "provenance fingerprint"):
        base = results.get("llama-2GiB", {}).get(command)
        for size in sizes:
            name = f"llama-{size:g}GiB"
            rss = results[name][command].peak_rss_mib
            target, mark = "", ""
            if size == 2:
                target, mark = f"< {TARGET_RSS_AT_2GIB_MIB:.0f} MiB", verdict(rss < TARGET_RSS_AT_2GIB_MIB)
            elif size == 8 and base is not None:
                growth = rss / base.peak_rss_mib
                target = f"<= 1.10 x 2 GiB figure (is {growth:.3f} x)"
                mark = verdict(growth <= TARGET_RSS_GROWTH)
            table.rows.append([command, name, f"{rss:.0f}", target, mark])
    if "llama-2GiB" not in results or "llama-8GiB" not in results:
        table.rows.append(["(targets need --sizes including 2 and 8)", "", "", "", "n/a"])
    return table


def overhead_tables(small: Checkpoint, large: Checkpoint, series: dict[str, Series], runs: int) -> list[Table]:
    """Fingerprint byte rate with 100,000 small tensors against a few large ones of the same total size."""
    table = Table(
        f"Per-tensor overhead: fingerprint byte rate, {runs} runs",
        ["command", "checkpoint", "tensors", "GiB", "median s", "GiB/s"],
    )
    rates: dict[tuple[str, str], float] = {}
    for command in OVERHEAD_COMMANDS:
        for ckpt in (small, large):
            size = ckpt.total_bytes()
            median = series[f"{command} {ckpt.name}"].median
            rates[command, ckpt.name] = size / median
            rate = f"{size / GIB / median:.2f}"
            table.rows.append([command, ckpt.name, str(ckpt.tensor_count), f"{size / GIB:.3f}", f"{median:.3f}", rate])
    target = Table("Per-tensor overhead against the DESIGN.md target", ["ratio", "value", "target", "result"])
    for command in OVERHEAD_COMMANDS[:-1]:  # b3sum has no per-tensor work: shown for scale only
        ratio = rates[command, small.name] / rates[command, large.name]
        target.rows.append(
            [
                f"{command} GiB/s, 100k small / large tensors",
                f"{ratio:.2f}",
                f">= {TARGET_SMALL_TENSOR_RATE}",
                verdict(ratio >= TARGET_SMALL_TENSOR_RATE),
            ]
        )
    return [table, target]
