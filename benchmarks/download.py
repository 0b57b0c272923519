"""What a verified download costs: `provenance download` against `huggingface_hub.snapshot_download` alone
and against `snapshot_download` followed by `provenance verify` (the bytes read twice), on the same release
from the same loopback server in the same run.

The release is run.py's generated 2 GiB Llama-shaped checkpoint (8 shards), served from memory by the test
tree's hub-compatible server (tests/support/hubserver.py, real HTTP on 127.0.0.1, LFS files redirected to its
CDN origin). Each command runs in its own process into a fresh cache; the median of `--runs` runs is kept.

    python3 benchmarks/download.py [--size 2] [--runs 3]     # from the repository root
"""

from __future__ import annotations

import argparse
import os
import shutil
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

from run_checkpoints import ensure_checkpoint, llama_checkpoint  # noqa: E402

from tests.support.hubserver import FakeHub  # noqa: E402

REPO = "bench/release"
SNAPSHOT = (
    "import sys; from huggingface_hub import snapshot_download; "
    "print(snapshot_download(sys.argv[1], cache_dir=sys.argv[2]))"
)


PEAKS: dict[str, int] = {}  # command -> the largest peak RSS (KiB) seen, from GNU time


def _timed(argv: list[str], env: dict[str, str], name: str) -> tuple[float, str]:
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    start = time.perf_counter()
    proc = subprocess.run([*timer, *argv], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    if timer:
        PEAKS[name] = max(PEAKS.get(name, 0), int(proc.stderr.strip().splitlines()[-1]))
    return elapsed, proc.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=2.0, help="GiB of tensor data (default 2)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    exe, python = str(bindir / "provenance"), sys.executable
    ckpt = ensure_checkpoint(llama_checkpoint(args.size))
    files = {p.relative_to(ckpt.directory).as_posix(): p.read_bytes() for p in ckpt.files()}
    total = sum(len(b) for b in files.values())
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp, FakeHub() as hub:
        root = Path(tmp)
        manifest = root / "release.json"
        subprocess.run([exe, "fingerprint", str(ckpt.directory), "-o", str(manifest), "-q"], check=True)
        hub.add_repo(REPO, files)
        del files
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        times: dict[str, list[float]] = {"snapshot_download": [], "snapshot_download + verify": [], "download": []}
        for _ in range(args.runs):
            cache = root / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            times["snapshot_download"].append(_timed([python, "-c", SNAPSHOT, REPO, str(cache)], env, "snapshot")[0])
            shutil.rmtree(cache, ignore_errors=True)
            fetched, folder = _timed([python, "-c", SNAPSHOT, REPO, str(cache)], env, "snapshot")
            checked, _ = _timed([exe, "verify", folder, "-m", str(manifest), "-q"], env, "verify")
            times["snapshot_download + verify"].append(fetched + checked)
            shutil.rmtree(cache, ignore_errors=True)
            argv = [exe, "download", f"hf://{REPO}", "-m", str(manifest), "--cache-dir", str(cache), "-q"]
            times["download"].append(_timed(argv, env, "download")[0])
        shutil.rmtree(root / "cache", ignore_errors=True)
    base = statistics.median(times["snapshot_download"])
    print(f"release: {ckpt.name}, {total / 2**30:.2f} GiB in {len(ckpt.files())} files; median of {args.runs} runs")
    print("| command | seconds | GB/s | ratio to snapshot_download |")
    print("|---|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.2f} | {total / median / 1e9:.2f} | {median / base:.2f} |")
    if PEAKS:
        print("peak RSS (MiB): " + ", ".join(f"{k} {v / 1024:.0f}" for k, v in PEAKS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
