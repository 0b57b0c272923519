"""Walking a checkpoint folder under the 60 s and 1 GiB bound: a symlink loop and a path past PATH_MAX are
one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.limits import bounded, manifest_of, refused


@pytest.mark.parametrize("command", ["fingerprint", "verify"])
def test_symlink_loop_in_checkpoint_is_one_line(command: str, checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "looped"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    (folder / "a.bin").symlink_to("b.bin")
    (folder / "b.bin").symlink_to("a.bin")
    args = (
        ["-o", str(tmp_path / "m.json")]
        if command == "fingerprint"
        else ["--manifest", manifest_of(checkpoint, tmp_path)]
    )
    refused(bounded(command, folder, *args), "looped", "loops back on itself")


@pytest.mark.parametrize("command", ["fingerprint", "verify"])
def test_path_longer_than_path_max_is_one_line(command: str, checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(100):  # 100 levels of 50 characters: 5,100 bytes, past Linux's PATH_MAX of 4,096
            os.mkdir("d" * 50, dir_fd=fd)
            inner = os.open("d" * 50, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("model.safetensors", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    args = (
        ["-o", str(tmp_path / "m.json")]
        if command == "fingerprint"
        else ["--manifest", manifest_of(checkpoint, tmp_path)]
    )
    run = bounded(command, folder, *args)
    refused(run, "deep", "File name too long; move the checkpoint to a shorter path")
    assert len(run.err) < 400, "a long path is shortened in the error"
