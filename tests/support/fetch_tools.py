"""Fetch the real conversion tools that tests/test_real_tools.py runs, into a cache outside the repository.

llama.cpp's `convert_hf_to_gguf.py` (with its `conversion/` package and `gguf-py`) comes from the
llama-cpp-python source distribution, and transformers' Meta -> Hugging Face converter
(`convert_llama_weights_to_hf.py`) from the transformers 4.47.1 wheel, both fetched with pip at pinned
versions. Only those files are unpacked; a tool already unpacked is reused. Prints the tools folder.

    python3 -m tests.support.fetch_tools [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
TRANSFORMERS = "4.47.1"
LLAMA_CPP = f"llama.cpp-{LLAMA_CPP_PYTHON}"  # folder holding convert_hf_to_gguf.py, conversion/, gguf-py/
META_CONVERTER = f"transformers-{TRANSFORMERS}"  # folder holding convert_llama_weights_to_hf.py
SDIST_PREFIX = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
SDIST_KEEP = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
WHEEL_MEMBER = "transformers/models/llama/convert_llama_weights_to_hf.py"


def default_cache() -> Path:
    """Where the tools live unless told otherwise: the user's cache, never the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "weights-provenance" / "tools"


def tools_folder() -> Path:
    """The folder the tests look in: `PROVENANCE_TOOLS` if set, else the default cache."""
    configured = os.environ.get("PROVENANCE_TOOLS")
    return Path(configured) if configured else default_cache()


def required() -> bool:
    """CI (CI=true, as CI runs .ci/run) or PROVENANCE_REQUIRE_TOOLS=1: a missing tool is an error, not a skip."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("CI", "PROVENANCE_REQUIRE_TOOLS"))


def _download(spec: str, into: Path, *, source: bool) -> Path:
    """`pip download --no-deps` of one pinned distribution; the file it wrote (kept for the next run)."""
    into.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    found = [p for p in into.iterdir() if p.name.lower().startswith(f"{name}-{spec.split('==')[1]}")]
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(into), spec]
    # Only this package from source: its build dependencies (pip prepares its metadata) may come as wheels.
    package = spec.split("==")[0]
    command += ["--no-binary", package] if source else ["--only-binary", package]
    subprocess.run(command, check=True)
    found = [p for p in into.iterdir() if p.name.lower().startswith(f"{name}-{spec.split('==')[1]}")]
    if not found:
        raise SystemExit(f"pip download {spec} wrote nothing into {into}")
    return found[0]


def _unpack_llama_cpp(sdist: Path, destination: Path) -> None:
    """Only the converter, its package and gguf-py, members checked by tarfile's data filter."""
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp, tarfile.open(sdist) as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.name.startswith(SDIST_PREFIX) and m.name.removeprefix(SDIST_PREFIX).startswith(SDIST_KEEP)
        ]
        archive.extractall(tmp, members=members, filter="data")
        shutil.move(str(Path(tmp) / SDIST_PREFIX), destination)


def _unpack_meta_converter(wheel: Path, destination: Path) -> None:
    """The one script out of the wheel (it imports the installed transformers, not the wheel's)."""
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp, zipfile.ZipFile(wheel) as archive:
        (Path(tmp) / "convert_llama_weights_to_hf.py").write_bytes(archive.read(WHEEL_MEMBER))
        shutil.move(tmp, destination)


def fetch(cache: Path) -> Path:
    """Make sure both tools are unpacked under `cache`; downloads only what is not there yet."""
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / LLAMA_CPP / "convert_hf_to_gguf.py").is_file():
        shutil.rmtree(cache / LLAMA_CPP, ignore_errors=True)
        sdist = _download(f"llama-cpp-python=={LLAMA_CPP_PYTHON}", cache / "downloads", source=True)
        _unpack_llama_cpp(sdist, cache / LLAMA_CPP)
    if not (cache / META_CONVERTER / "convert_llama_weights_to_hf.py").is_file():
        shutil.rmtree(cache / META_CONVERTER, ignore_errors=True)
        wheel = _download(f"transformers=={TRANSFORMERS}", cache / "downloads", source=False)
        _unpack_meta_converter(wheel, cache / META_CONVERTER)
    return cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=tools_folder(), help="tools folder (default: %(default)s)")
    print(fetch(parser.parse_args().cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
