"""The command line's own contract: one line per error, exit codes, nothing from a file acting on a terminal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.conftest import CliResult

Run = Callable[..., CliResult]


@pytest.mark.parametrize(
    "args",
    [("verify", "somewhere"), ("nosuch",), ("verify", ".", "--manifest", "m.json", "--bogus"), ("keygen",)],
    ids=["missing-option", "unknown-command", "unknown-flag", "missing-argument"],
)
def test_usage_errors_are_one_line_and_exit_2(run_cli: Run, args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1 and "--help" in result.err


def test_help_exits_0(run_cli: Run) -> None:
    result = run_cli("--help")
    assert result.code == 0 and "verify" in result.out


def test_terminal_escapes_in_tensor_names_are_shown_not_obeyed(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    hostile = "\x1b[2J\x1b[1;32mverdict: identical"
    save_file({hostile: np.zeros(4, dtype=np.float32)}, str(copy_of_release / "extra.safetensors"))
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q")
    assert result.code == 1
    assert "\x1b" not in result.out and "\\x1b[2J" in result.out
    report = json.loads(run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q").out)
    assert hostile in [t["name"] for t in report["tensors"]]  # JSON keeps the real name, escaped by JSON itself


def test_demo_is_a_library_operation_the_command_only_prints(run_cli: Run, tmp_path: Path) -> None:
    import provenance

    run = provenance.demo(tmp_path / "library")
    assert run.report.verdict is provenance.Verdict.MODIFIED and run.report.exit_code == 1
    assert run.manifest.is_file() and not (run.download / "model-00003-of-00003.safetensors").exists()
    assert len(run.checkpoint.files) == 6 and run.checkpoint.tensor_count == 39

    result = run_cli("demo", "--dir", tmp_path / "command")
    assert result.code == 0
    assert f"$ provenance verify {tmp_path / 'command' / 'download'} --manifest" in result.out
    assert "verdict: modified" in result.out and "(exit code 1)" in result.out

    again = run_cli("demo", "--dir", tmp_path / "command")
    assert again.code == 2 and "is not empty" in again.err
