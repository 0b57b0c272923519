"""The hub unreachable: offline mode set, or a host name that does not resolve. One line, exit 2, advice
that fits the cause (never "retry later" when retrying cannot help), and one `error` row per mirror."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import OFFLINE_SWITCHES, CliResult

Run = Callable[..., CliResult]
NOWHERE = "http://nonexistent.invalid"  # .invalid never resolves (RFC 2606)
OFFLINE = "offline mode is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE); unset it to read the hub at {endpoint}"
UNRESOLVED = (
    "cannot resolve the host name of the hub at http://nonexistent.invalid ([Errno -2] Name or service not known); "
    "check HF_ENDPOINT and this machine's network (or DNS) settings"
)


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> str:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read once at import, as the client does
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    return OFFLINE.format(endpoint="http://127.0.0.1:9")


@pytest.fixture
def unresolvable(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HF_ENDPOINT", NOWHERE)
    return UNRESOLVED


@pytest.mark.parametrize("cause", ["offline", "unresolvable"])
def test_fingerprint_hf_is_one_line_and_exit_2(
    run_cli: Run, cause: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    advice = request.getfixturevalue(cause)
    result = run_cli("fingerprint", "hf://acme/model", "-o", tmp_path / "m.json")
    assert result.code == 2
    assert result.err == f"error: hf://acme/model: {advice}\n"
    assert "retry later" not in result.err


@pytest.mark.parametrize("cause", ["offline", "unresolvable"])
def test_audit_one_mirror_is_one_line_and_exit_2(
    run_cli: Run, cause: str, request: pytest.FixtureRequest, release_manifest: Path
) -> None:
    advice = request.getfixturevalue(cause)
    result = run_cli("audit", "hf://acme/model", "--manifest", release_manifest)
    assert result.code == 2
    assert result.err.splitlines()[-1] == f"error: hf://acme/model: {advice}"
    json_result = run_cli("audit", "hf://acme/model", "--manifest", release_manifest, "--json")
    assert json_result.code == 2
    assert json.loads(json_result.out)["error"] == {"code": "hub_error", "message": f"hf://acme/model: {advice}"}


@pytest.mark.parametrize("cause", ["offline", "unresolvable"])
def test_audit_several_mirrors_gives_one_error_row_each(
    run_cli: Run, cause: str, request: pytest.FixtureRequest, release_manifest: Path
) -> None:
    advice = request.getfixturevalue(cause)
    result = run_cli("audit", "hf://acme/one", "hf://acme/two", "--manifest", release_manifest, "--json")
    assert result.code == 2
    document = json.loads(result.out)
    assert document["version"] == "0.1.0"
    assert document["mirrors"] == [
        {"repo": "hf://acme/one", "error": f"hf://acme/one: {advice}"},
        {"repo": "hf://acme/two", "error": f"hf://acme/two: {advice}"},
    ]


def test_a_search_on_an_unresolvable_hub_is_one_line_in_a_real_process(release_manifest: Path) -> None:
    """The hub client logs its own retries ("Retrying in 1s") through a handler bound to the real stderr: only
    a separate process shows whether they reach the user."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}
    env |= {"HF_ENDPOINT": NOWHERE, "HF_HUB_DISABLE_TELEMETRY": "1"}
    argv = [sys.executable, "-c", "from cli.app import main; main()", "audit", "--search", "llama"]
    done = subprocess.run([*argv, "-m", str(release_manifest)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"error: search 'llama': {UNRESOLVED}\n"
