"""The trust policy and the record of verified releases: rollback held, and a damaged, endless or
unreadable policy or record stops the run in one line naming it, never reset."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.support.limits import GIB4, bounded, fifo, refused, sparse
from tests.support.references import one_error_line

Run = Callable[..., CliResult]


def _state() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "weights-provenance" / "seen-releases.json"


@pytest.mark.parametrize(
    "content",
    [b'{"sample-release": {"abc": "2026', b"\xff\xfe", b"[]", b'{"sample-release": "2026-01-01"}', b'{"r": {"k": 5}}'],
    ids=["cut-short", "not-utf8", "a-list", "entry-not-a-map", "date-not-a-string"],
)
def test_a_damaged_rollback_record_stops_the_run_and_is_never_reset(
    run_cli: Run, dated: dict[str, Path], release_dir: Path, content: bytes
) -> None:
    _state().parent.mkdir(parents=True, exist_ok=True)
    _state().write_bytes(content)
    for command in (
        ["verify", release_dir, "--manifest", dated["old"], "-q"],
        ["diff", dated["old"], release_dir, "-q"],
        ["identify", release_dir, "--registry", dated["old"].parent, "-q"],
    ):
        line = one_error_line(run_cli(*command), 2)
        assert str(_state()) in line and "restore it, or delete it to start a new record" in line
    assert _state().read_bytes() == content


def test_an_unreadable_rollback_record_stops_the_run(run_cli: Run, dated: dict[str, Path], release_dir: Path) -> None:
    _state().mkdir(parents=True)  # a folder where the record should be: reading it fails
    line = one_error_line(run_cli("verify", release_dir, "--manifest", dated["new"], "-q"), 2)
    assert str(_state()) in line and "cannot be read" in line


def test_a_missing_rollback_record_starts_one(run_cli: Run, dated: dict[str, Path], release_dir: Path) -> None:
    assert not _state().exists()
    assert run_cli("verify", release_dir, "--manifest", dated["new"], "-q").code == 0
    assert json.loads(_state().read_text())["sample-release"] != {}


# ---------------------------------------------------------------- within 60 s and 1 GiB (tests/support/limits.py)


def _policy() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / "policy.json"


def _seen() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "weights-provenance" / "seen-releases.json"


POLICIES = {
    "nested-deep": ("[" * 60_000, "is not a JSON object"),  # under the cap: json.loads hits RecursionError
    "over-cap": ("[" * 100_000, "is 100,000 bytes, over the 65,536-byte cap"),
    "not-an-object": ("[]", "is not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(POLICIES))
def test_damaged_trust_policy_stops_the_run_naming_it(case: str, checkpoint: Path, manifest: Path) -> None:
    text, wrong = POLICIES[case]
    policy = _policy()
    policy.parent.mkdir(parents=True)
    policy.write_text(text)
    run = bounded("verify", checkpoint, "--manifest", manifest)
    refused(run, str(policy), wrong)
    assert run.err.endswith("; fix it or delete it\n")


def test_trust_policy_that_is_a_pipe_is_one_line(checkpoint: Path, manifest: Path) -> None:
    policy = fifo(_policy())
    run = bounded("verify", checkpoint, "--manifest", manifest)
    assert run.err == f"error: trust policy {policy} is not a regular file; fix it or delete it\n"
    assert run.code == 2


@pytest.mark.parametrize("kind", ["sparse-4-GiB", "fifo", "nested-deep"])
def test_unreadable_record_of_seen_releases_is_one_line(kind: str, checkpoint: Path, signed: tuple[Path, Path]) -> None:
    seen = _seen()
    if kind == "sparse-4-GiB":
        sparse(seen, GIB4)
        wrong = "is 4,294,967,296 bytes, over the 8,388,608-byte cap"
    elif kind == "fifo":
        fifo(seen)
        wrong = "cannot be read (not a regular file)"
    else:
        seen.parent.mkdir(parents=True)
        seen.write_text("{" * 1_000_000)
        wrong = "is damaged (not JSON)"
    run = bounded("verify", checkpoint, "--manifest", signed[0], "--key", signed[1])
    refused(run, f"the record of verified releases {seen} {wrong}", "restore it, or delete it")
