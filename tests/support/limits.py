"""DESIGN.md's bound on hostile input: every parser refuses or finishes within 60 s and 1 GiB.

`bounded` runs the real console entry point in a child process limited to 1 GiB of address space, with a 60 s
timeout. The run must end cleanly: exit 2 with one line on stderr saying what is wrong (`refused`), or a
result (exit 0 or 1), never a traceback, MemoryError or signal. The fixtures are a tiny checkpoint, its
manifest and a signed copy made under that bound; `sparse` and `fifo` make inputs whose size lies (a device
or a FIFO reports 0, so a size check alone passes them and the read then never ends or never starts).

A plugin of tests/conftest.py: its fixtures are there for every test module.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

MEMORY = 1 << 30
SECONDS = 60
ENTRY_POINT = "from cli.app import main; main()"  # what the `provenance` console script calls
GIB4 = 4 << 30


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def bounded(*args: str | Path, entry: str = ENTRY_POINT) -> Run:
    """`provenance ARGS` (or the Python code `entry` given ARGS) in a child process under the 1 GiB / 60 s
    bound; a timeout fails the test."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-c", entry, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=SECONDS,
        preexec_fn=_limit_memory,
    )
    run = Run(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
    assert "Traceback" not in run.err and "MemoryError" not in run.err, run.err[-2000:]
    assert run.code >= 0, f"killed by signal {-run.code}"
    return run


def refused(run: Run, name: str, wrong: str) -> None:
    """Exit 2, one line on stderr naming the file and saying what is wrong."""
    assert run.code == 2, f"exit {run.code}: {run.err[-500:]!r}"
    assert run.err.count("\n") == 1 and run.err.startswith("error:"), run.err
    assert name in run.err and wrong in run.err, run.err


def manifest_of(checkpoint: Path, tmp_path: Path) -> Path:
    """The checkpoint fingerprinted under the bound, as the reference a bounded `verify` checks against."""
    manifest = tmp_path / "reference.json"
    assert bounded("fingerprint", checkpoint, "-o", manifest).code == 0
    return manifest


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that costs no disk (it reads as zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.truncate(size)
    return path


def fifo(path: Path) -> Path:
    """A FIFO without a writer: opened for reading the usual way, it never returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoint")
    save_file({"w": np.arange(16, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def manifest(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "reference.json"
    assert bounded("fingerprint", checkpoint, "-o", path).code == 0
    return path


@pytest.fixture
def signed(manifest: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(bundle, public key) of the reference signed by a fresh key."""
    assert bounded("keygen", tmp_path / "k").code == 0
    bundle = tmp_path / "reference.sig"
    assert bounded("sign", manifest, "--key", tmp_path / "k.key", "-o", bundle).code == 0
    return bundle, tmp_path / "k.pub"
