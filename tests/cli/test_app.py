"""The command line's own contract: one line per error, exit codes, nothing from a file acting on a terminal."""

from __future__ import annotations

import json
import pickle
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


def test_help_says_how_to_name_a_file_or_a_registry_entry(run_cli: Run) -> None:
    result = run_cli("verify", "--help")
    assert result.code == 0
    text = " ".join(result.out.replace("\u2502", " ").split())  # rich draws the options in a box
    assert "./NAME is always a file, registry:NAME always a registry entry" in text


def test_list_globals_escapes_control_characters_in_a_pickle_global(run_cli: Run, tmp_path: Path) -> None:
    """A global whose name carries `\\r` and an erase-line escape cannot redraw its REFUSED line as allowed."""
    forged = b"\r\x1b[2Kraw.bin: allowed  torch._utils._rebuild_tensor_v2"
    (tmp_path / "raw.bin").write_bytes(b"\x80\x02cos\nsystem" + forged + b"\n)R.")
    result = run_cli("fingerprint", tmp_path, "--list-globals")
    assert result.code == 0
    assert result.out.splitlines() == [
        "raw.bin: REFUSED  os.system\\r\\x1b[2Kraw.bin: allowed  torch._utils._rebuild_tensor_v2"
    ]
    assert "\r" not in result.out and "\x1b" not in result.out


def test_list_globals_escapes_control_characters_in_a_file_name(run_cli: Run, tmp_path: Path) -> None:
    name = "evil\x1b[1G.bin"
    (tmp_path / name).write_bytes(pickle.dumps({"x": 1}, protocol=2))
    (tmp_path / "bad\r.bin").write_bytes(b"\x80\x02cposix\nsystem\n)R.")
    result = run_cli("fingerprint", tmp_path, "--list-globals")
    assert result.code == 0
    assert "bad\\r.bin: REFUSED  posix.system" in result.out.splitlines()
    assert "\r" not in result.out and "\x1b" not in result.out


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


def test_demo_in_a_folder_it_cannot_use_is_one_line_and_exit_2(run_cli: Run, tmp_path: Path) -> None:
    """A file where the folder should be, or a folder under a file: an input error, not a traceback."""
    (tmp_path / "a-file").write_text("not a folder\n")
    for folder in (tmp_path / "a-file", tmp_path / "a-file" / "below"):
        result = run_cli("demo", "--dir", folder)
        assert (result.code, result.out) == (2, ""), folder
        assert result.err.startswith("error: ") and len(result.err.splitlines()) == 1, result.err
