"""What every part of the side-by-side benchmark (run.py) shares: where things live, units, its error."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
VENV_DIR = BENCH_DIR / ".venv"
PROJECT_VENV = BENCH_DIR / ".venv-project"
RESULTS_FILE = BENCH_DIR / "results.md"
TIME_BIN = "/usr/bin/time"

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
CHUNK = 16 * MIB  # random data is generated and written this much at a time: bounds the generator's memory


class BenchError(Exception):
    """A command failed or the environment is unusable; reported without a traceback."""
