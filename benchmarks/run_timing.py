"""Running the commands: each under /usr/bin/time -v, interleaved round-robin, against a reference made
once per run; and the commands compared at each size."""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from run_checkpoints import Checkpoint
from run_common import BENCH_DIR, DATA_DIR, KIB, MIB, TIME_BIN, BenchError
from run_environment import Tools

PIECE_LENGTH = 4 * MIB  # `fingerprint --torrent-v2` default, and the libtorrent peer's piece length


@dataclass
class Sample:
    """One timed run: wall seconds and peak resident set size."""

    seconds: float
    max_rss_kib: int


@dataclass
class Series:
    """All runs of one command on one checkpoint."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_mib(self) -> float:
        """The largest over the runs: a memory target is about the worst case."""
        return max(s.max_rss_kib for s in self.samples) / KIB


def parse_max_rss(time_output: str) -> int:
    """Peak RSS in KiB from GNU time's verbose report."""
    for line in time_output.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    raise BenchError("no 'Maximum resident set size' in /usr/bin/time -v output")


def run_command(argv: Sequence[str]) -> Sample:
    """Runs one command under `/usr/bin/time -v`, output discarded; any non-zero exit aborts the benchmark."""
    started = time.perf_counter()
    proc = subprocess.run(
        [TIME_BIN, "-v", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[:20])
        raise BenchError(f"`{shlex.join(argv)}` exited with {proc.returncode}:\n{tail}")
    return Sample(elapsed, parse_max_rss(proc.stderr))


def run_checked(argv: Sequence[str]) -> str:
    """Runs a set-up command (not timed) and returns its stdout; failure aborts with the command's own message."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"`{shlex.join(argv)}` exited with {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def round_robin(commands: dict[str, list[str]], runs: int) -> dict[str, Series]:
    """Interleaves the commands run by run, rotating the start, so machine noise and order hit all of them alike."""
    series = {label: Series(label) for label in commands}
    labels = list(commands)
    for run in range(runs):
        shift = run % len(labels)
        for label in labels[shift:] + labels[:shift]:
            series[label].samples.append(run_command(commands[label]))
        done = ", ".join(f"{label} {series[label].samples[-1].seconds:.2f}s" for label in labels)
        print(f"  run {run + 1}/{runs}: {done}", flush=True)
    return series


def ensure_keys(tools: Tools) -> tuple[Path, Path]:
    """An EC P-256 key pair for model_signing, made once with openssl."""
    keys = DATA_DIR / "keys"
    private, public = keys / "ec-p256-private.pem", keys / "ec-p256-public.pem"
    if not (private.exists() and public.exists()):
        keys.mkdir(parents=True, exist_ok=True)
        run_checked([tools.openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(private)])
        private.chmod(0o600)
        run_checked([tools.openssl, "ec", "-in", str(private), "-pubout", "-out", str(public)])
    return private, public


def output_dir(ckpt: Checkpoint) -> Path:
    """Manifests and signatures go beside the checkpoint, never inside it, so no tool hashes them."""
    path = DATA_DIR / "out" / ckpt.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def reference_artifacts(ckpt: Checkpoint, tools: Tools, keys: tuple[Path, Path]) -> tuple[Path, Path, str]:
    """The manifest and signature that the verify commands check, made once per run, plus verify's verdict."""
    out = output_dir(ckpt)
    manifest, signature = out / "manifest.json", out / "model.sig"
    run_checked(fingerprint_argv(tools, ckpt, manifest))
    sign = [tools.model_signing, "sign", "key", str(ckpt.directory), "--private_key", str(keys[0])]
    run_checked([*sign, "--signature", str(signature)])
    report = run_checked([tools.provenance, "verify", str(ckpt.directory), "--manifest", str(manifest), "--json", "-q"])
    return manifest, signature, summarize_verdict(report)


def summarize_verdict(report: str) -> str:
    """The verdict field of verify's JSON, to show the timed verify did the full identical-release path."""
    try:
        document = json.loads(report)
    except json.JSONDecodeError:
        return "unparsable JSON"
    if isinstance(document, dict):
        for key in ("verdict", "status", "result"):
            if key in document:
                return f"{key}={document[key]}"
    return "no verdict field"


def fingerprint_argv(tools: Tools, ckpt: Checkpoint, output: Path) -> list[str]:
    """`provenance fingerprint` (sketches, the default) writing its manifest outside the checkpoint, replacing
    the previous one."""
    return [tools.provenance, "fingerprint", str(ckpt.directory), "-o", str(output), "--force", "-q"]


def size_commands(
    ckpt: Checkpoint, tools: Tools, keys: tuple[Path, Path], manifest: Path, signature: Path
) -> dict[str, list[str]]:
    """The commands compared at each size, in the order they are printed."""
    directory, files = str(ckpt.directory), [str(p) for p in ckpt.files()]
    out = output_dir(ckpt)
    signature_out = str(out / "model-timed.sig")
    private, public = (str(key) for key in keys)
    return {
        "provenance verify": [tools.provenance, "verify", directory, "--manifest", str(manifest), "--json", "-q"],
        "provenance fingerprint": fingerprint_argv(tools, ckpt, out / "fingerprint-timed.json"),
        "b3sum": [tools.b3sum, *files],
        "sha256sum": [tools.sha256sum, *files],
        "model_signing sign key": [
            *(tools.model_signing, "sign", "key", directory),
            *("--private_key", private, "--signature", signature_out),
        ],
        "model_signing verify key": [
            *(tools.model_signing, "verify", "key", directory),
            *("--signature", str(signature), "--public_key", public),
        ],
        "provenance fingerprint --no-sketches": [
            *fingerprint_argv(tools, ckpt, out / "fingerprint-plain-timed.json"),
            "--no-sketches",
        ],
        "provenance fingerprint --torrent-v2 --no-sketches": [
            *fingerprint_argv(tools, ckpt, out / "fingerprint-v2-timed.json"),
            *("--torrent-v2", "--piece-length", str(PIECE_LENGTH), "--no-sketches"),
        ],
        "libtorrent create v2": [
            *(tools.peer_python, str(BENCH_DIR / "libtorrent_create.py")),
            *(directory, str(out / "timed.torrent"), str(PIECE_LENGTH)),
        ],
    }
