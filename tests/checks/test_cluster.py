"""`--scheduler`: fingerprint, verify and audit on a real Dask `LocalCluster` (worker processes on 127.0.0.1)
give what one process gives, byte for byte; a worker killed mid-run loses and duplicates no mirror."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance import MirrorResult, audit_mirrors
from provenance._sample import sample_tensors, write_sharded
from tests.conftest import OFFLINE_SWITCHES, CliResult
from tests.support.hubserver import FakeHub

distributed = pytest.importorskip("distributed", reason="the cluster extra is not installed: pip install '.[cluster]'")

Run = Callable[..., CliResult]
SHARD = "model-00002-of-00003.safetensors"


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes, one thread each: what `local:2` starts, shared by this module's tests. Started
    online: workers inherit the environment, where tests of local loaders switch the hub client off."""
    with pytest.MonkeyPatch.context() as patch:
        for name in OFFLINE_SWITCHES:
            patch.delenv(name, raising=False)
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as running:
            yield running


def _without_date(manifest: str) -> str:
    return "\n".join(line for line in manifest.splitlines() if '"created"' not in line)


def test_fingerprint_on_the_cluster_is_the_one_process_manifest(run_cli: Run, release_dir: Path, cluster: Any) -> None:
    alone = run_cli("fingerprint", release_dir, "--name", "r", "-q")
    spread = run_cli("fingerprint", release_dir, "--name", "r", "-q", "--scheduler", cluster.scheduler_address)
    assert (alone.code, spread.code) == (0, 0)
    assert '"created"' in alone.out  # the one line left out of the comparison
    assert _without_date(spread.out) == _without_date(alone.out)


def test_local_n_starts_its_own_cluster(run_cli: Run, release_dir: Path) -> None:
    alone = run_cli("fingerprint", release_dir, "--name", "r", "-q", "--no-sketches")
    spread = run_cli("fingerprint", release_dir, "--name", "r", "-q", "--no-sketches", "--scheduler", "local:2")
    assert (alone.code, spread.code) == (0, 0)
    assert _without_date(spread.out) == _without_date(alone.out)


def test_verify_on_the_cluster_is_the_one_process_report(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, cluster: Any
) -> None:
    data = bytearray((copy_of_release / SHARD).read_bytes())
    data[70_000] ^= 0x01
    (copy_of_release / SHARD).write_bytes(bytes(data))
    alone = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    spread = run_cli(
        "verify", copy_of_release, "-m", release_manifest, "--json", "-q", "--scheduler", cluster.scheduler_address
    )
    assert (alone.code, spread.code) == (1, 1)
    assert json.loads(alone.out)["verdict"] == "modified"
    assert spread.out == alone.out


def _mirrors(hub: FakeHub, release_dir: Path, tmp_path: Path, count: int) -> list[str]:
    """`count` mirrors: identical, one tensor changed, re-sharded, and (every tenth) one that does not exist."""
    files = files_of(release_dir)
    changed = bytearray(files[SHARD])
    changed[70_000] ^= 1
    write_sharded(tmp_path / "resharded", sample_tensors(), 2)
    resharded = files_of(tmp_path / "resharded") | {k: v for k, v in files.items() if not k.startswith("model")}
    targets = []
    for i in range(count):
        name = f"mirrors/copy-{i:03d}"
        targets.append(f"hf://{name}")
        if i % 10 == 9:
            continue  # never published: an error row
        kind = i % 3
        hub.add_repo(name, files if kind == 0 else files | {SHARD: bytes(changed)} if kind == 1 else resharded)
    return targets


class Counted:
    """A progress reporter that keeps what it was told (the CLI's draws it on stderr)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, int, str]] = []

    def begin(self, total: int, label: str) -> None:
        self.said.append(("begin", total, label))

    def advance(self, amount: int) -> None:
        self.said.append(("advance", amount, ""))

    def end(self) -> None:
        self.said.append(("end", 0, ""))


def _rows(results: list[MirrorResult]) -> list[tuple[str, str | None, str]]:
    return [(str(r.ref), r.error, json.dumps(r.report.as_dict() if r.report else None)) for r in results]


def test_two_hundred_mirrors_audited_on_the_cluster_give_the_one_process_results(
    hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path, cluster: Any
) -> None:
    targets = _mirrors(hub, release_dir, tmp_path, 200)
    counted = Counted()
    alone = audit_mirrors(targets, release_manifest, endpoint=hub.endpoint)
    spread = audit_mirrors(
        targets, release_manifest, endpoint=hub.endpoint, scheduler=cluster.scheduler_address, progress=counted
    )
    assert _rows(spread) == _rows(alone)
    assert counted.said == [("begin", 200, "auditing mirrors"), *[("advance", 1, "")] * 200, ("end", 0, "")]
    verdicts = [r.report.verdict.value if r.report else "error" for r in spread]
    assert verdicts[:10] == ["identical", "modified", "undecided"] * 3 + ["error"]
    assert all(r.attempts == 1 for r in spread)


def test_a_worker_killed_during_an_audit_loses_and_duplicates_no_mirror(
    hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    targets = _mirrors(hub, release_dir, tmp_path, 40)
    alone = audit_mirrors(targets, release_manifest, endpoint=hub.endpoint)
    hub.latency = 0.05  # every mirror takes a while: a worker always has one in hand
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as running,
        distributed.Client(running) as client,
    ):
        pids = list(client.run(os.getpid).values())
        done: list[list[MirrorResult]] = []
        audit = threading.Thread(
            target=lambda: done.append(
                audit_mirrors(targets, release_manifest, endpoint=hub.endpoint, scheduler=running.scheduler_address)
            )
        )
        hub.reset_stats()
        audit.start()
        deadline = time.monotonic() + 60
        while len(hub.log) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        audit.join(timeout=120)
    assert done, "the audit did not finish"
    assert _rows(done[0]) == _rows(alone)
    assert any(r.attempts == 2 for r in done[0])


def test_without_the_extra_a_scheduler_is_one_line_and_exit_2(release_dir: Path) -> None:
    code = "import sys; sys.modules['distributed'] = None; from cli.app import main; main()"
    argv = [sys.executable, "-c", code, "fingerprint", str(release_dir), "--scheduler", "local:2", "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == (
        "error: --scheduler needs the Dask cluster extra: pip install 'weights-provenance[cluster]'\n"
    )


def test_nothing_of_dask_is_imported_without_a_scheduler(release_dir: Path, release_manifest: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import provenance; "
        f"provenance.verify(Path({str(release_dir)!r}), Path({str(release_manifest)!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "[]\n")


@pytest.mark.parametrize("spec", ["local:0", "local:x", "http://host:8786"])
def test_a_scheduler_that_is_not_one_is_one_line_and_exit_2(run_cli: Run, release_dir: Path, spec: str) -> None:
    result = run_cli("fingerprint", release_dir, "--scheduler", spec, "-q")
    assert result.code == 2
    assert result.err.startswith(f"error: --scheduler {spec}: give ") and result.err.count("\n") == 1
