"""Running the work on a Dask cluster (`--scheduler`): one task per file to hash, or per mirror to audit.

Nothing here imports `distributed` until a scheduler is asked for, and a run without one never imports this
module's engine. `tcp://HOST:PORT` (or `DASK_SCHEDULER_ADDRESS`) joins a running cluster; `local:N` starts a
`LocalCluster` of N worker processes on 127.0.0.1 for the length of the run. Hashing sends `hash_file` calls
(a path every worker sees, and the plan) through the client's executor, so the fingerprints, and the
manifest made of them, are those of a one-machine run; a worker that dies mid-task has its task run again
on another worker by Dask's scheduler.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Executor
from contextvars import ContextVar
from typing import Any

from provenance.errors import ProvenanceError

ENV = "DASK_SCHEDULER_ADDRESS"
EXTRA = "pip install 'weights-provenance[cluster]'"
RETRIES = 2  # a task that raised (not a lost worker: the scheduler reruns those itself) is tried again

_EXECUTOR: ContextVar[Executor | None] = ContextVar("provenance_cluster_executor", default=None)


def cluster_executor() -> Executor | None:
    """The executor of the cluster this run was given, or None to work in this process."""
    return _EXECUTOR.get()


def scheduler_from(spec: str | None) -> str | None:
    """The scheduler asked for: `spec`, else $DASK_SCHEDULER_ADDRESS, else None (one process)."""
    return spec or os.environ.get(ENV) or None


@contextlib.contextmanager
def on_cluster(spec: str | None, threads: int = 1) -> Iterator[Any]:
    """Within the block, hashing runs on the cluster `spec` names (None: in this process); yields the
    distributed Client, or None. `threads` per worker of a `local:N` cluster: 1 to hash (a file keeps a core
    busy), more to audit (a mirror mostly waits on the hub)."""
    spec = scheduler_from(spec)
    if spec is None:
        yield None
        return
    client = _connect(spec, threads)
    token = _EXECUTOR.set(client.get_executor(pure=False, retries=RETRIES))
    try:
        yield client
    finally:
        _EXECUTOR.reset(token)
        cluster = getattr(client, "_provenance_cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(spec: str, threads: int) -> Any:
    """A distributed Client for `local:N` (a LocalCluster started here) or a scheduler's address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ProvenanceError(f"--scheduler needs the Dask cluster extra: {EXTRA}") from None
    if spec.startswith("local:"):
        count = spec.removeprefix("local:")
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise ProvenanceError(f"--scheduler {spec}: give local:N with N the worker processes (1 to 256)")
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=int(count), threads_per_worker=threads, processes=True, host="127.0.0.1", dashboard_address=":0"
        )
        client = Client(cluster)  # type: ignore[no-untyped-call]
        client._provenance_cluster = cluster  # type: ignore[attr-defined]  # closed with the client
        return client
    if not spec.startswith(("tcp://", "tls://")):
        raise ProvenanceError(f"--scheduler {spec}: give tcp://HOST:PORT (a running scheduler) or local:N")
    try:
        return Client(spec, timeout="20s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ProvenanceError(
            f"--scheduler {spec}: no Dask scheduler answers there ({exc}); start one with `dask scheduler`"
        ) from None
