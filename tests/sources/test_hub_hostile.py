"""A hub that answers too slowly: each request has a total time limit, not only a limit per read.

The server (tests/support/hubserver.py with `drip`) sends its answers one byte at a time, each within any read
timeout, so only a total limit ends the request. The real huggingface_hub client talks to it on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants

from provenance._sources.hub import Hub
from provenance._sources.hub_refs import RepoRef
from provenance.errors import HubError
from tests.support.hubserver import FakeHub
from tests.support.limits import bounded, refused

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


# ---------------------------------------------------------------- a model-info answer endless or nested deep


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a body that ends only when the connection does
    mode = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if self.mode == "endless":
                self.wfile.write(b'{"id": "a/b", "sha": "' + b"0" * 40 + b'", "siblings": [')
                chunk = b"{}," * (1 << 18)
                for _ in range(2000):  # 1.5 GB if read whole; the client must stop long before
                    self.wfile.write(chunk)
            else:
                self.wfile.write(b'{"id": "a/b", "sha": "x", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(params=["endless", "nested-deep"])
def hostile_hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    handler = type("Handler", (_Hostile,), {"mode": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # tests of local loaders set them for the session
        monkeypatch.delenv(name, raising=False)
    try:
        yield str(request.param)
    finally:
        server.shutdown()
        server.server_close()


def test_hostile_model_info_answer_is_one_line(hostile_hub: str, manifest: Path) -> None:
    run = bounded("audit", "hf://a/b", "--manifest", manifest)
    wrong = (
        "sent an answer over 64 MiB, more than any repository's metadata takes"
        if hostile_hub == "endless"
        else "sent an answer that is not the Hub's API (maximum recursion depth exceeded"
    )
    refused(run, "hf://a/b: the hub at http://127.0.0.1:", wrong)


def test_hub_audit_in_offline_mode_is_one_line(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    run = bounded("audit", "hf://a/b", "--manifest", manifest)
    assert run.err == (
        "error: hf://a/b: offline mode is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE); unset it to read the hub "
        "at http://127.0.0.1:9\n"
    )
    assert run.code == 2
