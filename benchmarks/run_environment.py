"""The benchmark's tools, located and installed before any data is generated, and the lines that record
where and with what it measured."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from run_common import GIB, PROJECT_VENV, REPO_DIR, TIME_BIN, VENV_DIR

MODEL_SIGNING_VERSION = "1.1.1"


@dataclass(frozen=True)
class Tools:
    """Absolute paths of every program timed, resolved once so no PATH lookup or shim lands inside a timing."""

    provenance: str
    b3sum: str
    sha256sum: str
    openssl: str
    model_signing: str
    peer_python: str  # the peer venv's interpreter, for libtorrent


def find_provenance() -> str:
    """The project as a user installs it: a regular (byte-compiled) install of this checkout in a clean venv.

    An editable install in a shared interpreter measures something else: no compiled bytecode when
    PYTHONDONTWRITEBYTECODE is set, and whatever .pth files that interpreter runs at every start.
    """
    python = PROJECT_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PROJECT_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PROJECT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO_DIR)], check=True)
    else:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO_DIR)], check=True
        )
    return str(PROJECT_VENV / "bin" / "provenance")


def require_system_tools() -> tuple[str, str, str]:
    """b3sum and GNU time come from apt; exit 2 with the install line when missing, as the README promises."""
    b3sum, sha256sum, openssl = shutil.which("b3sum"), shutil.which("sha256sum"), shutil.which("openssl")
    if b3sum is None or not os.access(TIME_BIN, os.X_OK):
        print("b3sum and /usr/bin/time are required: apt-get install -y b3sum time", file=sys.stderr)
        sys.exit(2)
    if sha256sum is None or openssl is None:
        print("sha256sum and openssl are required: apt-get install -y coreutils openssl", file=sys.stderr)
        sys.exit(2)
    return b3sum, sha256sum, openssl


def venv_package_version(package: str) -> str | None:
    """Version of a package inside the benchmark venv, or None when it is not installed there."""
    python = VENV_DIR / "bin" / "python"
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_peer_venv() -> str:
    """The peer tool lives in its own venv so its pins never touch the project's environment."""
    if not (VENV_DIR / "bin" / "python").exists():
        print(f"creating {VENV_DIR} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
    if (
        venv_package_version("model-signing") != MODEL_SIGNING_VERSION
        or venv_package_version("pyOpenSSL") is None
        or venv_package_version("libtorrent") is None
    ):
        print(f"installing model-signing=={MODEL_SIGNING_VERSION}, pyOpenSSL, libtorrent into {VENV_DIR} ...")
        pip = [str(VENV_DIR / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"model-signing=={MODEL_SIGNING_VERSION}", "pyOpenSSL", "libtorrent"], check=True)
    return str(VENV_DIR / "bin" / "model_signing")


def resolve_tools() -> Tools:
    """Check and locate everything before any data is generated, so a missing tool fails in seconds."""
    b3sum, sha256sum, openssl = require_system_tools()
    model_signing = ensure_peer_venv()
    return Tools(find_provenance(), b3sum, sha256sum, openssl, model_signing, str(VENV_DIR / "bin" / "python"))


def first_line(argv: Sequence[str]) -> str:
    """First line of a command's output, for the environment section of the report."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def cpu_model() -> str:
    """CPU name from /proc/cpuinfo, so figures from different machines are not mixed up."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def project_state() -> str:
    """Commit, uncommitted changes and installed packages: the install is editable, so edits land mid-run."""
    rev = first_line(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    diff = subprocess.run(
        ["git", "-C", str(REPO_DIR), "diff", "HEAD", "--", ".", ":(exclude)benchmarks"],
        capture_output=True,
        check=False,
    ).stdout
    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    digest = zlib.crc32(diff + "\n".join(packages).encode())
    return f"git {rev}{' + uncommitted changes' if diff else ''}, environment {digest:08x}"


def environment_lines(tools: Tools, runs: int, state: str) -> list[str]:
    """Where and with what the figures were measured."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    prov = importlib.metadata.version("weights-provenance")
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {ram:.1f} GiB RAM, {platform.platform()}",
        f"python: {platform.python_version()}; weights-provenance {prov} ({state})",
        f"peers: {first_line([tools.b3sum, '--version'])}; {first_line([tools.sha256sum, '--version'])}; "
        f"model-signing {venv_package_version('model-signing')}; libtorrent {venv_package_version('libtorrent')}",
        f"method: warm page cache, median of {runs} runs, commands interleaved round-robin; "
        "wall time from perf_counter around /usr/bin/time -v, which also gives the peak RSS",
    ]
