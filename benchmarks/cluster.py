"""What `--scheduler` gives: mirrors audited per second from metadata, one process against `local:2` and
`local:4`, with the hub's latency set so that the measure is not bound by 127.0.0.1; and fingerprinting a
release in 64 shards on `local:2` against one process.

The mirrors are copies of the sample release (identical, one tensor changed, re-sharded) on the test tree's
hub-compatible server; each run is the installed `provenance` in its own process, start-up and cluster
start included, median of `--runs`.

    python3 benchmarks/cluster.py [--mirrors 1000] [--latency 0.02] [--size 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_DIR = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO_DIR))

from run_checkpoints import Checkpoint, ensure_checkpoint, llama_dims, llama_tensors, plan_shards  # noqa: E402
from run_common import GIB  # noqa: E402

from provenance._sample import build_sample_release, sample_tensors, write_sharded  # noqa: E402
from tests.support.hubserver import FakeHub  # noqa: E402

SHARD = "model-00002-of-00003.safetensors"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _median(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return statistics.median(times)


def audits(exe: str, count: int, latency: float, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub:
        root = Path(tmp)
        release = build_sample_release(root / "release")
        manifest = root / "release.json"
        subprocess.run([exe, "fingerprint", str(release), "-o", str(manifest), "-q"], check=True)
        files = _files(release)
        changed = bytearray(files[SHARD])
        changed[70_000] ^= 1
        write_sharded(root / "resharded", sample_tensors(), 2)
        resharded = _files(root / "resharded") | {k: v for k, v in files.items() if not k.startswith("model")}
        for i in range(count):
            kind = i % 10
            content = files if kind < 8 else (files | {SHARD: bytes(changed)} if kind == 8 else resharded)
            hub.add_repo(f"mirrors/copy-{i:04d}", content)
        hub.latency = latency
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
        base = [exe, "audit", "--search", "copy", "--limit", str(count), "-m", str(manifest), "--json"]
        print(f"{count} mirrors from metadata, hub latency {latency * 1000:.0f} ms per answer, median of {runs}")
        print("| run | seconds | mirrors/s |")
        print("|---|---|---|")
        for name, extra in (
            ("one process", []),
            ("local:2", ["--scheduler", "local:2"]),
            ("local:4", ["--scheduler", "local:4"]),
        ):
            seconds = _median(base + extra, env, runs)
            print(f"| {name} | {seconds:.1f} | {count / seconds:.0f} |", flush=True)


def sharded(size_gib: float) -> Checkpoint:
    """run.py's Llama-shaped checkpoint, in 64 shards."""
    shards = 64
    budget = int(size_gib * GIB) // shards
    hidden, intermediate = llama_dims(budget)
    plan = plan_shards(llama_tensors(hidden, intermediate), budget, shards, hidden)
    config: dict[str, object] = {"architectures": ["LlamaForCausalLM"], "hidden_size": hidden}
    return Checkpoint(f"llama-{size_gib:g}GiB-64", tuple(tuple(s) for s in plan), config)


def fingerprints(exe: str, size: float, runs: int) -> None:
    ckpt = ensure_checkpoint(sharded(size))
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "m.json")
        print(f"fingerprint of {size:g} GiB in 64 shards, median of {runs}")
        print("| run | seconds | GiB/s |")
        print("|---|---|---|")
        for name, extra in (("one process", []), ("local:2", ["--scheduler", "local:2"])):
            for flags in ([], ["--no-sketches"]):
                argv = [exe, "fingerprint", str(ckpt.directory), "-o", out, "--force", "-q", *flags, *extra]
                seconds = _median(argv, dict(os.environ), runs)
                print(f"| {name} {' '.join(flags)} | {seconds:.1f} | {size / seconds:.2f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mirrors", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per hub answer (default 0.02)")
    parser.add_argument("--size", type=float, default=8.0, help="GiB to fingerprint in 64 shards (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "provenance")
    audits(exe, args.mirrors, args.latency, args.runs)
    if args.size:
        fingerprints(exe, args.size, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
