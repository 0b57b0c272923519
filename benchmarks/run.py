#!/usr/bin/env python3
"""Side-by-side speed and memory benchmark of `provenance` against b3sum, sha256sum and OpenSSF model_signing.

Measures the figures that DESIGN.md ("Speed and memory, measured side by side") sets targets for, on generated
safetensors checkpoints, warm page cache, every command on the same files in the same run. The machines this
runs on are noisy, so the ratios are what count: commands are interleaved run by run and each figure is a median.

Usage (from the repository root): python3 benchmarks/run.py [--quick] [--sizes 0.5,2,8] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from run_checkpoints import (
    Checkpoint,
    config_only_checkpoint,
    ensure_checkpoint,
    large_tensor_checkpoint,
    llama_checkpoint,
    small_tensor_checkpoint,
    torch_checkpoint,
    warm_cache,
)
from run_common import DATA_DIR, RESULTS_FILE, BenchError
from run_environment import Tools, environment_lines, project_state, resolve_tools
from run_tables import Table, memory_table, overhead_tables, ratio_table, timing_table
from run_timing import (
    Series,
    ensure_keys,
    fingerprint_argv,
    output_dir,
    reference_artifacts,
    round_robin,
    size_commands,
)


def bench_checkpoint(ckpt: Checkpoint, tools: Tools, keys: tuple[Path, Path], runs: int) -> dict[str, Series]:
    """Generate (once), warm, make the reference manifest and signature, then time the commands."""
    ensure_checkpoint(ckpt)
    return bench_prepared(ckpt, tools, keys, runs)


def bench_prepared(ckpt: Checkpoint, tools: Tools, keys: tuple[Path, Path], runs: int) -> dict[str, Series]:
    """Warm, make the reference manifest and signature, then time the commands."""
    warm_cache(ckpt)
    manifest, signature, outcome = reference_artifacts(ckpt, tools, keys)
    print(f"{ckpt.name}: reference verify says {outcome}; timing {runs} runs ...", flush=True)
    return round_robin(size_commands(ckpt, tools, keys, manifest, signature), runs)


def bench_overhead(tools: Tools, runs: int) -> list[Table]:
    """Time fingerprint (sketched and not) and b3sum on the small- and large-tensor checkpoints, interleaved."""
    small = ensure_checkpoint(small_tensor_checkpoint())
    large = ensure_checkpoint(large_tensor_checkpoint(sum(t.nbytes for s in small.shards for t in s)))
    commands: dict[str, list[str]] = {}
    for ckpt in (small, large):
        warm_cache(ckpt)
        out = output_dir(ckpt)
        commands[f"fingerprint {ckpt.name}"] = fingerprint_argv(tools, ckpt, out / "fingerprint-timed.json")
        plain = fingerprint_argv(tools, ckpt, out / "fingerprint-plain-timed.json")
        commands[f"fingerprint --no-sketches {ckpt.name}"] = [*plain, "--no-sketches"]
        commands[f"b3sum {ckpt.name}"] = [tools.b3sum, *(str(p) for p in ckpt.files())]
    print(f"per-tensor overhead: timing {runs} runs ...", flush=True)
    return overhead_tables(small, large, round_robin(commands, runs), runs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0.5,2,8", help="checkpoint sizes in GiB, comma-separated (default 0.5,2,8)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per command (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="0.5 GiB only and 3 runs: a fast check that all works")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the 2 GiB .pth checkpoint")
    parser.add_argument("--no-overhead", action="store_true", help="skip the 100,000-tensor overhead measurement")
    args = parser.parse_args(argv)
    args.sizes = [0.5] if args.quick else [float(s) for s in args.sizes.split(",") if s.strip()]
    args.torch = args.torch and not args.quick
    args.runs = args.runs or (3 if args.quick else 5)
    if args.runs < 1 or not args.sizes or min(args.sizes) <= 0:
        parser.error("--runs must be >= 1 and --sizes positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tools = resolve_tools()
        DATA_DIR.mkdir(exist_ok=True)
        keys = ensure_keys(tools)
        state = project_state()
        env = environment_lines(tools, args.runs, state)
        tables: list[Table] = []
        results: dict[str, dict[str, Series]] = {}
        fixed = config_only_checkpoint()
        tables.append(timing_table(fixed, bench_checkpoint(fixed, tools, keys, args.runs), args.runs))
        tables[-1].title = f"Fixed cost: {fixed.name} checkpoint (config.json and an empty index), {args.runs} runs"
        print("\n" + tables[-1].text() + "\n", flush=True)
        for size in args.sizes:
            ckpt = llama_checkpoint(size)
            results[ckpt.name] = bench_checkpoint(ckpt, tools, keys, args.runs)
            tables.append(timing_table(ckpt, results[ckpt.name], args.runs))
            print("\n" + tables[-1].text() + "\n", flush=True)
        pth = torch_checkpoint(2.0) if args.torch else None
        if pth is not None:
            results[pth.name] = bench_prepared(pth, tools, keys, args.runs)
            tables.append(timing_table(pth, results[pth.name], args.runs))
            print("\n" + tables[-1].text() + "\n", flush=True)
        tables.append(ratio_table(results))
        tables.append(memory_table(results, args.sizes))
        if not args.no_overhead:
            tables.extend(bench_overhead(tools, args.runs))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    final_state = project_state()
    if final_state != state:
        env.append(f"WARNING: the project changed during the run (started on {state}, ended on {final_state})")
    print("\n" + "\n".join(env) + "\n")
    print("\n\n".join(t.text() for t in tables))
    markdown = "\n".join(f"- {line}" for line in env) + "\n\n" + "\n\n".join(t.markdown() for t in tables) + "\n"
    RESULTS_FILE.write_text(markdown)
    print(f"\n----- Markdown (also written to {RESULTS_FILE}) -----\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
