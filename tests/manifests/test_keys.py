"""Key files: a device or a pipe given as a public or private key is one line, never a read without end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.limits import bounded, fifo


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_public_key_that_is_a_device_or_pipe_is_one_line(
    kind: str, checkpoint: Path, signed: tuple[Path, Path]
) -> None:
    key = Path("/dev/zero") if kind == "dev-zero" else fifo(signed[1].with_name("pipe.pub"))
    run = bounded("verify", checkpoint, "--manifest", signed[0], "--key", key)
    assert run.err == f"error: public key {key} is not a regular file\n"
    assert run.code == 2


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_private_key_that_is_a_device_or_pipe_is_one_line(kind: str, manifest: Path, tmp_path: Path) -> None:
    key = Path("/dev/zero") if kind == "dev-zero" else fifo(tmp_path / "pipe.key")
    run = bounded("sign", manifest, "--key", key, "-o", tmp_path / "s.sig")
    assert run.err == f"error: private key {key} is not a regular file\n"
    assert run.code == 2
