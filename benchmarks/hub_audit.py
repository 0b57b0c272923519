"""How long `provenance audit` takes to settle 50 mirrors from metadata, and what it fetches per mirror.

A hub-compatible server (tests/support/hubserver.py) on 127.0.0.1 serves 50 mirrors of a generated release
(40 identical, 5 with one tensor changed, 5 re-sharded); the installed `provenance` audits all of them
with `--search` in one run, as a user would. Prints the wall time (median of 3), and per mirror the
verdict, the requests and bytes the tool counted, and the requests and bytes the server saw.

    python3 benchmarks/hub_audit.py            # from the repository root, with the project installed
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

from provenance._sample import build_sample_release, sample_tensors, write_sharded  # noqa: E402
from tests.support.hubserver import FakeHub  # noqa: E402

MIRRORS = 50
RUNS = 3


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    exe = os.environ.get("PROVENANCE", "provenance")
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub:
        root = Path(tmp)
        release = build_sample_release(root / "release")
        manifest = root / "release.json"
        subprocess.run([exe, "fingerprint", str(release), "-o", str(manifest), "-q"], check=True, capture_output=True)
        files = files_of(release)
        shard = "model-00002-of-00003.safetensors"
        changed = bytearray(files[shard])
        changed[70_000] ^= 1
        resharded_dir = root / "resharded"
        write_sharded(resharded_dir, sample_tensors(), 2)
        resharded = files_of(resharded_dir) | {k: v for k, v in files.items() if not k.startswith("model")}
        for i in range(MIRRORS):
            content = files if i < 40 else (files | {shard: bytes(changed)} if i < 45 else resharded)
            hub.add_repo(f"mirrors/release-copy-{i:02d}", content)
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
        argv = [exe, "audit", "--search", "release-copy", "--limit", "100", "--manifest", str(manifest), "--json"]
        times: list[float] = []
        document: dict[str, object] = {}
        for _ in range(RUNS):
            hub.reset_stats()
            start = time.perf_counter()
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - start)
            document = json.loads(proc.stdout)
        mirrors = document["mirrors"]
        assert isinstance(mirrors, list) and len(mirrors) == MIRRORS, proc.stderr
        print(
            f"{MIRRORS} mirrors audited from metadata on loopback: median {statistics.median(times):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in times)}); 8 requests in flight at most\n"
        )
        print(f"{'mirror':34} {'verdict':10} {'requests':>8} {'bytes':>8} {'server requests':>16} {'server bytes':>13}")
        verdicts: dict[str, int] = {}
        for m in mirrors:
            repo = m["repo"].removeprefix("hf://")
            served_requests, served_bytes = hub.stats(repo)
            verdicts[m["verdict"]] = verdicts.get(m["verdict"], 0) + 1
            print(
                f"{m['repo']:34} {m['verdict']:10} {m['mirror']['requests']:>8} {m['mirror']['bytes']:>8} "
                f"{served_requests:>16} {served_bytes:>13}"
            )
        print(f"\nverdicts: {verdicts}; total bytes of the release per mirror: {sum(len(v) for v in files.values()):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
