"""A hub that answers too slowly: each request has a total time limit, not only a limit per read.

The server (tests/hubserver.py with `drip`) sends its answers one byte at a time, each within any read
timeout, so only a total limit ends the request. The real huggingface_hub client talks to it on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from huggingface_hub import constants

from provenance._sources.hub import Hub, RepoRef
from provenance.errors import HubError
from tests.hubserver import FakeHub

REPO = "org/slow"
BODY = b"x" * 4096
TOTAL = 1.0  # seconds: the limit under test, short so the test is fast
SLACK = 4.0  # seconds past the limit a request may take to give up (one drip interval, thread start-up)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    with FakeHub() as server:
        server.add_repo(REPO, {"model.safetensors": BODY, "config.json": b"{}"})
        yield server


def _timed(call: object) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(HubError) as failure:
        call()  # type: ignore[operator]
    return str(failure.value), time.monotonic() - started


def test_dripping_metadata_answer_is_abandoned_after_the_total_time(hub: FakeHub) -> None:
    hub.drip = 0.2  # a 1 KB answer would take minutes; each byte arrives well within the read timeout
    client = Hub(hub.endpoint, retries=0, total=TOTAL)
    message, seconds = _timed(lambda: client.snapshot(RepoRef(REPO)))
    assert "did not finish answering within 1 s" in message
    assert seconds < TOTAL + SLACK


def test_dripping_range_is_abandoned_after_the_total_time(hub: FakeHub) -> None:
    client = Hub(hub.endpoint, retries=0, total=TOTAL)
    snapshot = client.snapshot(RepoRef(REPO))
    assert client.read_range(snapshot, "model.safetensors", 0, 16) == BODY[:16]
    hub.drip = 0.2
    message, seconds = _timed(lambda: client.read_range(snapshot, "model.safetensors", 0, 1024))
    assert "did not finish answering within 1 s" in message
    assert seconds < TOTAL + SLACK


def test_dripping_stream_is_abandoned_after_the_total_time(hub: FakeHub) -> None:
    client = Hub(hub.endpoint, retries=0, total=TOTAL)
    snapshot = client.snapshot(RepoRef(REPO))
    assert b"".join(client.stream(snapshot, "model.safetensors", len(BODY))) == BODY
    hub.drip = 0.2
    message, seconds = _timed(lambda: b"".join(client.stream(snapshot, "model.safetensors", len(BODY))))
    assert "the server sent under 4 MiB in 1 s" in message
    assert seconds < TOTAL + SLACK


def test_retries_stay_within_the_total_time_of_one_request(hub: FakeHub) -> None:
    """The total bounds a request with all its attempts: retries and their backoff do not multiply it."""
    hub.drop_next = 100  # every attempt sees the connection close: a transient failure, retried
    client = Hub(hub.endpoint, retries=10, backoff=0.4, total=TOTAL)  # 0.4 + 0.8 + 1.6 + ... s unbounded
    message, seconds = _timed(lambda: client.snapshot(RepoRef(REPO)))
    assert message.startswith(f"hf://{REPO}: the hub at {hub.endpoint} failed 2 times (")
    assert message.endswith("); retry later")
    assert seconds < TOTAL + SLACK


def test_default_total_time_fits_the_bound_on_any_input() -> None:
    """DESIGN.md: any input, a hub's answer included, is abandoned within 60 s."""
    from provenance._sources.hub import TOTAL_TIMEOUT

    assert Hub().total == TOTAL_TIMEOUT == 45.0
