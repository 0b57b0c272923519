"""Auditing mirrors on a Dask cluster: one task per mirror, the results those of one process, in order.

Each task builds its own `Hub` on the worker from the endpoint the client resolved (tokens come from the
worker's own environment, never shipped), with the run's `in_flight` bound toward the hub. The reference is
scattered to every worker once. Each task, as it starts, says so on a distributed Queue of the run: a
mirror started twice lost its worker and was run again by the scheduler, and its result says so.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from typing import Any

from manifests.reference import Reference
from provenance._checks.audit_mirror import AuditOptions, MirrorResult, audit_one
from provenance._hashing.cluster import RETRIES, on_cluster
from provenance._hashing.scan import ProgressReporter
from provenance._sources.hub import Hub
from provenance._sources.hub_refs import RepoRef


def _audit_task(
    index: int,
    ref: RepoRef,
    reference: Reference,
    options: AuditOptions,
    hub_at: tuple[str, int],
    run: str,
    single: bool,
) -> MirrorResult:
    """What one worker does for one mirror (module level: pickled by name)."""
    from distributed import Queue

    Queue(run).put(index)  # type: ignore[no-untyped-call]
    endpoint, in_flight = hub_at
    return audit_one(Hub(endpoint, in_flight=in_flight), ref, reference, options, single=single)


def audit_on_cluster(
    spec: str | None,
    refs: list[RepoRef],
    reference: Reference,
    options: AuditOptions,
    hub_at: tuple[str, int],
    progress: ProgressReporter | None = None,
) -> list[MirrorResult]:
    """Every mirror audited as one task on the cluster `spec` names; results in the order of `refs`."""
    run = f"provenance-audit-{uuid.uuid4().hex}"
    with on_cluster(spec, threads=hub_at[1]) as client:
        shared = client.scatter(reference, broadcast=True)
        single = len(refs) == 1
        futures: dict[Any, int] = {
            client.submit(_audit_task, i, ref, shared, options, hub_at, run, single, pure=False, retries=RETRIES): i
            for i, ref in enumerate(refs)
        }
        from distributed import Queue, as_completed

        results: list[MirrorResult | None] = [None] * len(refs)
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            results[futures[future]] = future.result()
            if progress is not None:
                progress.advance(1)
        started: list[int] = Queue(run, client=client).get(batch=True)  # type: ignore[no-untyped-call]
        starts = Counter(started)
    return [
        dataclasses.replace(r, attempts=starts[i]) if starts[i] > 1 else r
        for i, r in enumerate(results)
        if r is not None
    ]
