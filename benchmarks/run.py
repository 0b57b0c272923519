#!/usr/bin/env python3
"""Side-by-side speed and memory benchmark of `provenance` against b3sum, sha256sum and OpenSSF model_signing.

Measures the figures that DESIGN.md ("Speed and memory, measured side by side") sets targets for, on generated
safetensors checkpoints, warm page cache, every command on the same files in the same run. The machines this
runs on are noisy, so the ratios are what count: commands are interleaved run by run and each figure is a median.

Usage (from the repository root): python3 benchmarks/run.py [--quick] [--sizes 0.5,2,8] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
VENV_DIR = BENCH_DIR / ".venv"
PROJECT_VENV = BENCH_DIR / ".venv-project"
RESULTS_FILE = BENCH_DIR / "results.md"
TIME_BIN = "/usr/bin/time"
MODEL_SIGNING_VERSION = "1.1.1"

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
CHUNK = 16 * MIB  # random data is generated and written this much at a time: bounds the generator's memory
SHARDS = 8
DTYPE_SIZES = {"F16": 2, "BF16": 2, "F32": 4}

SMALL_TENSORS = 100_000
SMALL_SHARDS = 4  # 25,000 tensors per shard keeps each JSON header near 2 MiB, far below safetensors' cap
SMALL_SHAPES = ((64, 84), (84, 64), (32, 168), (5376,))  # all 10,752 bytes in F16: ~1 GiB for 100,000

TARGET_VERIFY_VS_B3SUM = 1.3
TARGET_VERIFY_VS_MS_VERIFY = 0.35
TARGET_FINGERPRINT_VS_MS_SIGN = 1.15
PIECE_LENGTH = 4 * MIB  # `fingerprint --torrent-v2` default, and the libtorrent peer's piece length
TARGET_RSS_AT_2GIB_MIB = 400.0
TARGET_RSS_GROWTH = 1.10
TARGET_SMALL_TENSOR_RATE = 0.5


class BenchError(Exception):
    """A command failed or the environment is unusable; reported without a traceback."""


# ----------------------------------------------------------------------------------------------- environment


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


# -------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as the header records it; the data is random bytes of the right length."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * DTYPE_SIZES[self.dtype]


@dataclass(frozen=True)
class Checkpoint:
    """A generated checkpoint: its tensor plan per shard and its config; its bytes are seeded by its name."""

    name: str
    shards: tuple[tuple[TensorSpec, ...], ...]
    config: dict[str, object]

    @property
    def directory(self) -> Path:
        return DATA_DIR / self.name

    @property
    def marker(self) -> Path:
        """Outside the checkpoint, so no tool ever sees it; its content pins the plan it was generated from."""
        return DATA_DIR / f"{self.name}.complete"

    @property
    def tensor_count(self) -> int:
        """From the plan; a checkpoint written by another tool (torch.save) records its count in its config."""
        planned = sum(len(shard) for shard in self.shards)
        recorded = self.config.get("tensors")
        return recorded if isinstance(recorded, int) and not planned else planned

    def shard_name(self, index: int) -> str:
        return f"model-{index + 1:05d}-of-{len(self.shards):05d}.safetensors"

    def fingerprint(self) -> str:
        """Changes whenever the plan changes, so stale data from an older version of this script is rebuilt."""
        plan = [[(t.name, t.dtype, t.shape) for t in shard] for shard in self.shards]
        return f"{zlib.crc32(json.dumps([plan, self.config]).encode()):08x}"

    def files(self) -> list[Path]:
        """Every file of the checkpoint, sorted: what each tool is pointed at."""
        return sorted(p for p in self.directory.iterdir() if p.is_file())

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())


def llama_dims(shard_budget: int) -> tuple[int, int]:
    """Hidden and MLP sizes: Llama-7B's (4096, 11008) when two MLP matrices fit in a shard, else TinyLlama's."""
    if shard_budget >= 2 * 11008 * 4096 * 2:
        return 4096, 11008
    return 2048, 5632


def llama_tensors(hidden: int, intermediate: int) -> Iterator[TensorSpec]:
    """Decoder layers in safetensors order: BF16 projection matrices and F16 norm vectors, without end."""
    layer = 0
    while True:
        prefix = f"model.layers.{layer}"
        yield TensorSpec(f"{prefix}.input_layernorm.weight", "F16", (hidden,))
        for proj in ("q", "k", "v", "o"):
            yield TensorSpec(f"{prefix}.self_attn.{proj}_proj.weight", "BF16", (hidden, hidden))
        yield TensorSpec(f"{prefix}.post_attention_layernorm.weight", "F16", (hidden,))
        yield TensorSpec(f"{prefix}.mlp.gate_proj.weight", "BF16", (intermediate, hidden))
        yield TensorSpec(f"{prefix}.mlp.up_proj.weight", "BF16", (intermediate, hidden))
        yield TensorSpec(f"{prefix}.mlp.down_proj.weight", "BF16", (hidden, intermediate))
        layer += 1


def filler(name: str, nbytes: int, width: int) -> list[TensorSpec]:
    """Tops a shard up to its exact byte budget with a (rows, width) BF16 matrix and a vector for any rest."""
    rows, rest = divmod(nbytes, width * 2)
    tensors = [TensorSpec(f"{name}.weight", "BF16", (rows, width))] if rows else []
    if rest:
        tensors.append(TensorSpec(f"{name}.bias", "BF16", (rest // 2,)))
    return tensors


def plan_shards(source: Iterator[TensorSpec], shard_budget: int, shards: int, width: int) -> list[list[TensorSpec]]:
    """Deals tensors into shards of equal size; a tensor that does not fit starts the next shard."""
    plan: list[list[TensorSpec]] = []
    pending = next(source)
    for index in range(shards):
        shard: list[TensorSpec] = []
        left = shard_budget
        while pending.nbytes <= left:
            shard.append(pending)
            left -= pending.nbytes
            pending = next(source)
        if left:
            shard.extend(filler(f"model.extra.{index}", left, width))
        plan.append(shard)
    return plan


def llama_checkpoint(size_gib: float) -> Checkpoint:
    """A Llama-shaped checkpoint of `size_gib` GiB of tensor data in 8 equal shards."""
    budget = int(size_gib * GIB) // SHARDS
    hidden, intermediate = llama_dims(budget)
    plan = plan_shards(llama_tensors(hidden, intermediate), budget, SHARDS, hidden)
    config: dict[str, object] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "torch_dtype": "bfloat16",
    }
    return Checkpoint(f"llama-{size_gib:g}GiB", tuple(tuple(s) for s in plan), config)


def config_only_checkpoint() -> Checkpoint:
    """No weights at all: what each tool costs before it hashes a byte (start-up, imports, key loading)."""
    return Checkpoint("config-only", (), {"model_type": "synthetic"})


def small_tensor_checkpoint() -> Checkpoint:
    """100,000 tensors of 10.5 KiB each (MoE-expert-like names): the per-tensor overhead case."""
    per_shard = SMALL_TENSORS // SMALL_SHARDS
    plan: list[tuple[TensorSpec, ...]] = []
    for shard in range(SMALL_SHARDS):
        tensors = []
        for i in range(shard * per_shard, (shard + 1) * per_shard):
            name = f"model.layers.{i // 1000}.experts.{i % 1000}.weight"
            tensors.append(TensorSpec(name, "F16", SMALL_SHAPES[i % len(SMALL_SHAPES)]))
        plan.append(tuple(tensors))
    return Checkpoint("tensors-100k-small", tuple(plan), {"model_type": "synthetic", "tensors": SMALL_TENSORS})


def large_tensor_checkpoint(total: int) -> Checkpoint:
    """The same bytes as the small-tensor checkpoint, in a few dozen 4096x4096 BF16 matrices."""

    def matrices() -> Iterator[TensorSpec]:
        index = 0
        while True:
            yield TensorSpec(f"model.layers.{index}.weight", "BF16", (4096, 4096))
            index += 1

    plan = plan_shards(matrices(), total // SMALL_SHARDS, SMALL_SHARDS, 4096)
    return Checkpoint("tensors-large", tuple(tuple(s) for s in plan), {"model_type": "synthetic"})


def safetensors_header(tensors: Sequence[TensorSpec]) -> tuple[bytes, int]:
    """Length prefix plus JSON header padded with spaces to 8 bytes, and the size of the data that follows."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def write_random(handle: BinaryIO, nbytes: int, rng: np.random.Generator) -> None:
    """Streams random bytes in CHUNK pieces: uint64 draws run ~2.5 GiB/s, several times faster than rng.bytes."""
    write = handle.write
    while nbytes >= 8:
        words = min(CHUNK, nbytes) // 8
        write(rng.integers(0, np.iinfo(np.uint64).max, size=words, dtype=np.uint64, endpoint=True))
        nbytes -= words * 8
    if nbytes:
        write(rng.bytes(nbytes))


def write_shard(path: Path, tensors: Sequence[TensorSpec], rng: np.random.Generator) -> None:
    """Writes one safetensors file directly, never holding more than one chunk of tensor data in memory."""
    header, data_size = safetensors_header(tensors)
    with path.open("wb") as handle:
        handle.write(header)
        write_random(handle, data_size, rng)


def write_checkpoint(ckpt: Checkpoint) -> None:
    """Shards, index weight_map and config.json, then the completion marker last."""
    shutil.rmtree(ckpt.directory, ignore_errors=True)
    ckpt.directory.mkdir(parents=True)
    rng = np.random.default_rng(zlib.crc32(ckpt.name.encode()))
    weight_map: dict[str, str] = {}
    total = 0
    for index, tensors in enumerate(ckpt.shards):
        started = time.perf_counter()
        write_shard(ckpt.directory / ckpt.shard_name(index), tensors, rng)
        size = sum(t.nbytes for t in tensors)
        total += size
        weight_map.update({t.name: ckpt.shard_name(index) for t in tensors})
        elapsed = time.perf_counter() - started
        print(f"  {ckpt.shard_name(index)}: {len(tensors)} tensors, {size / MIB:.0f} MiB, {elapsed:.1f} s", flush=True)
    index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (ckpt.directory / "model.safetensors.index.json").write_text(json.dumps(index_doc, indent=2) + "\n")
    (ckpt.directory / "config.json").write_text(json.dumps(ckpt.config, indent=2) + "\n")
    os.sync()  # the disk writes back at ~250 MB/s: pending writeback must not land inside the timings
    ckpt.marker.write_text(ckpt.fingerprint() + "\n")


def check_first_shard(ckpt: Checkpoint) -> None:
    """Proves the hand-written files are real safetensors: safetensors itself opens them and finds the tensors."""
    from safetensors import safe_open

    if not ckpt.shards:
        return
    path = ckpt.directory / ckpt.shard_name(0)
    expected = {t.name: t for t in ckpt.shards[0]}
    with safe_open(str(path), "np") as handle:
        if set(handle.keys()) != set(expected):
            raise BenchError(f"{path}: safetensors lists other tensors than were written")
        for name, spec in expected.items():
            if tuple(handle.get_slice(name).get_shape()) != spec.shape:
                raise BenchError(f"{path}: tensor {name} has the wrong shape")
        f16 = next((t for t in ckpt.shards[0] if t.dtype == "F16"), None)
        if f16 is not None and handle.get_tensor(f16.name).shape != f16.shape:
            raise BenchError(f"{path}: tensor {f16.name} does not load")


def ensure_checkpoint(ckpt: Checkpoint) -> Checkpoint:
    """Generates a checkpoint once; later runs reuse it unless the plan changed or generation was cut short."""
    marker_ok = ckpt.marker.exists() and ckpt.marker.read_text().strip() == ckpt.fingerprint()
    if not marker_ok or not ckpt.directory.is_dir():
        size = sum(t.nbytes for shard in ckpt.shards for t in shard)
        print(f"generating {ckpt.directory} ({size / GIB:.2f} GiB, {ckpt.tensor_count} tensors) ...", flush=True)
        ckpt.marker.unlink(missing_ok=True)
        write_checkpoint(ckpt)
    check_first_shard(ckpt)
    return ckpt


def warm_cache(ckpt: Checkpoint) -> None:
    """Reads every file once so all tools start from the same warm page cache."""
    os.sync()
    buffer = bytearray(CHUNK)
    for path in ckpt.files():
        with path.open("rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


# ---------------------------------------------------------------------------------------------- running


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
    """`provenance fingerprint` writing its manifest outside the checkpoint, replacing the previous one."""
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
        "provenance fingerprint --torrent-v2": [
            *fingerprint_argv(tools, ckpt, out / "fingerprint-v2-timed.json"),
            *("--torrent-v2", "--piece-length", str(PIECE_LENGTH)),
        ],
        "libtorrent create v2": [
            *(tools.peer_python, str(BENCH_DIR / "libtorrent_create.py")),
            *(directory, str(out / "timed.torrent"), str(PIECE_LENGTH)),
        ],
        "provenance fingerprint --sketches": [
            *fingerprint_argv(tools, ckpt, out / "fingerprint-sketches-timed.json"),
            "--sketches",
        ],
    }


# ---------------------------------------------------------------------------------------------- reporting


@dataclass
class Table:
    """A titled table rendered as aligned text for the console and as Markdown for the README."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def text(self) -> str:
        widths = [max(len(row[i]) for row in [self.headers, *self.rows]) for i in range(len(self.headers))]
        lines = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in self.rows]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def timing_table(ckpt: Checkpoint, series: dict[str, Series], runs: int) -> Table:
    """Medians per command at one size, with spread, throughput and peak memory."""
    size = ckpt.total_bytes()
    title = f"{ckpt.name}: {size / GIB:.2f} GiB, {ckpt.tensor_count} tensors, {len(ckpt.files())} files, {runs} runs"
    table = Table(title, ["command", "median s", "min s", "max s", "GiB/s", "peak RSS MiB"])
    for s in series.values():
        times = [x.seconds for x in s.samples]
        table.rows.append(
            [
                s.label,
                f"{s.median:.3f}",
                f"{min(times):.3f}",
                f"{max(times):.3f}",
                f"{size / GIB / s.median:.2f}" if size >= MIB else "-",
                f"{s.peak_rss_mib:.0f}",
            ]
        )
    return table


def ratio_table(results: dict[str, dict[str, Series]]) -> Table:
    """DESIGN.md's wall-time ratios at every size, each against its target."""
    checks = (
        ("verify / b3sum", "provenance verify", "b3sum", TARGET_VERIFY_VS_B3SUM),
        ("verify / model_signing verify", "provenance verify", "model_signing verify key", TARGET_VERIFY_VS_MS_VERIFY),
        (
            "fingerprint / model_signing sign",
            "provenance fingerprint",
            "model_signing sign key",
            TARGET_FINGERPRINT_VS_MS_SIGN,
        ),
    )
    table = Table(
        "Wall-time ratios (medians) against DESIGN.md targets", ["checkpoint", "ratio", "value", "target", "result"]
    )
    for name, series in results.items():
        for label, num, den, target in checks:
            value = series[num].median / series[den].median
            table.rows.append([name, label, f"{value:.2f}", f"<= {target}", verdict(value <= target)])
        if "libtorrent create v2" in series:  # no DESIGN.md target: what the BEP 52 hashes cost, against the peer
            for label, num, den in (
                (
                    "fingerprint --torrent-v2 / libtorrent create v2",
                    "provenance fingerprint --torrent-v2",
                    "libtorrent create v2",
                ),
                (
                    "fingerprint --torrent-v2 / fingerprint",
                    "provenance fingerprint --torrent-v2",
                    "provenance fingerprint",
                ),
                (
                    "fingerprint --sketches / model_signing sign",
                    "provenance fingerprint --sketches",
                    "model_signing sign key",
                ),
                (
                    "fingerprint --sketches / fingerprint",
                    "provenance fingerprint --sketches",
                    "provenance fingerprint",
                ),
            ):
                value = series[num].median / series[den].median
                table.rows.append([name, label, f"{value:.2f}", "(no target)", "-"])
    return table


def memory_table(results: dict[str, dict[str, Series]], sizes: Sequence[float]) -> Table:
    """Peak RSS of provenance at every size; the targets need the 2 GiB and 8 GiB checkpoints."""
    table = Table(
        "Peak memory of provenance (max RSS over the runs)",
        ["command", "checkpoint", "peak RSS MiB", "target", "result"],
    )
    for command in ("provenance verify", "provenance fingerprint"):
        base = results.get("llama-2GiB", {}).get(command)
        for size in sizes:
            name = f"llama-{size:g}GiB"
            rss = results[name][command].peak_rss_mib
            target, mark = "", ""
            if size == 2:
                target, mark = f"< {TARGET_RSS_AT_2GIB_MIB:.0f} MiB", verdict(rss < TARGET_RSS_AT_2GIB_MIB)
            elif size == 8 and base is not None:
                growth = rss / base.peak_rss_mib
                target = f"<= 1.10 x 2 GiB figure (is {growth:.3f} x)"
                mark = verdict(growth <= TARGET_RSS_GROWTH)
            table.rows.append([command, name, f"{rss:.0f}", target, mark])
    if "llama-2GiB" not in results or "llama-8GiB" not in results:
        table.rows.append(["(targets need --sizes including 2 and 8)", "", "", "", "n/a"])
    return table


def overhead_tables(small: Checkpoint, large: Checkpoint, series: dict[str, Series], runs: int) -> list[Table]:
    """Fingerprint byte rate with 100,000 small tensors against a few large ones of the same total size."""
    table = Table(
        f"Per-tensor overhead: fingerprint byte rate, {runs} runs",
        ["checkpoint", "tensors", "GiB", "fingerprint median s", "fingerprint GiB/s", "b3sum median s", "b3sum GiB/s"],
    )
    rates = {}
    for ckpt in (small, large):
        size = ckpt.total_bytes()
        fp, b3 = series[f"fingerprint {ckpt.name}"], series[f"b3sum {ckpt.name}"]
        rates[ckpt.name] = size / fp.median
        table.rows.append(
            [
                ckpt.name,
                str(ckpt.tensor_count),
                f"{size / GIB:.3f}",
                f"{fp.median:.3f}",
                f"{size / GIB / fp.median:.2f}",
                f"{b3.median:.3f}",
                f"{size / GIB / b3.median:.2f}",
            ]
        )
    ratio = rates[small.name] / rates[large.name]
    target = Table("Per-tensor overhead against the DESIGN.md target", ["ratio", "value", "target", "result"])
    target.rows.append(
        [
            "fingerprint GiB/s, 100k small / large tensors",
            f"{ratio:.2f}",
            f">= {TARGET_SMALL_TENSOR_RATE}",
            verdict(ratio >= TARGET_SMALL_TENSOR_RATE),
        ]
    )
    return [table, target]


# ------------------------------------------------------------------------------------------------ phases


def bench_checkpoint(ckpt: Checkpoint, tools: Tools, keys: tuple[Path, Path], runs: int) -> dict[str, Series]:
    """Generate (once), warm, make the reference manifest and signature, then time the commands."""
    ensure_checkpoint(ckpt)
    return bench_prepared(ckpt, tools, keys, runs)


def torch_checkpoint(size_gib: float) -> Checkpoint | None:
    """A Meta-layout `consolidated.00.pth` of BF16 matrices written by real torch.save, made once.

    torch is needed only to make it (`pip install torch==2.13.0`); without torch this part is skipped.
    """
    per_layer = 3  # wq, w1 and a norm per layer, until size_gib is reached
    layers = -(-int(size_gib * GIB) // ((4096 * 4096 + 11008 * 4096) * 2))
    config = {"dim": 4096, "format": "torch.save zip", "tensors": layers * per_layer}
    ckpt = Checkpoint(f"pth-{size_gib:g}GiB", shards=(), config=config)
    if ckpt.marker.exists() and ckpt.marker.read_text().strip() == ckpt.fingerprint() and ckpt.directory.is_dir():
        return ckpt
    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping the .pth checkpoint (pip install torch==2.13.0)", flush=True)
        return None
    print(f"generating {ckpt.directory} with torch.save ...", flush=True)
    shutil.rmtree(ckpt.directory, ignore_errors=True)
    ckpt.directory.mkdir(parents=True)
    torch.manual_seed(0)
    state: dict[str, object] = {}
    total, layer = 0, 0
    while total < size_gib * GIB:
        for name, shape in (
            (f"layers.{layer}.attention.wq.weight", (4096, 4096)),
            (f"layers.{layer}.feed_forward.w1.weight", (11008, 4096)),
        ):
            state[name] = torch.randn(shape).to(torch.bfloat16)
            total += shape[0] * shape[1] * 2
        state[f"layers.{layer}.attention_norm.weight"] = torch.ones(4096, dtype=torch.bfloat16)
        layer += 1
    torch.save(state, ckpt.directory / "consolidated.00.pth")
    (ckpt.directory / "params.json").write_text(json.dumps(ckpt.config) + "\n")
    os.sync()
    ckpt.marker.write_text(ckpt.fingerprint() + "\n")
    return ckpt


def bench_prepared(ckpt: Checkpoint, tools: Tools, keys: tuple[Path, Path], runs: int) -> dict[str, Series]:
    """Warm, make the reference manifest and signature, then time the commands."""
    warm_cache(ckpt)
    manifest, signature, outcome = reference_artifacts(ckpt, tools, keys)
    print(f"{ckpt.name}: reference verify says {outcome}; timing {runs} runs ...", flush=True)
    return round_robin(size_commands(ckpt, tools, keys, manifest, signature), runs)


def bench_overhead(tools: Tools, runs: int) -> list[Table]:
    """Time fingerprint and b3sum on the small- and large-tensor checkpoints, interleaved like the size runs."""
    small = ensure_checkpoint(small_tensor_checkpoint())
    large = ensure_checkpoint(large_tensor_checkpoint(sum(t.nbytes for s in small.shards for t in s)))
    commands: dict[str, list[str]] = {}
    for ckpt in (small, large):
        warm_cache(ckpt)
        out = output_dir(ckpt) / "fingerprint-timed.json"
        commands[f"fingerprint {ckpt.name}"] = fingerprint_argv(tools, ckpt, out)
        commands[f"b3sum {ckpt.name}"] = [tools.b3sum, *(str(p) for p in ckpt.files())]
    print(f"per-tensor overhead: timing {runs} runs ...", flush=True)
    return overhead_tables(small, large, round_robin(commands, runs), runs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0.5,2,8", help="checkpoint sizes in GiB, comma-separated (default 0.5,2,8)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per command (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="0.5 GiB only and 3 runs: a fast check that all works")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the 2 GiB .pth checkpoint")
    parser.add_argument("--no-overhead", action="store_true", help="skip the 100,000-tensor overhead measurement")
    args = parser.parse_args(argv)
    args.sizes = [0.5] if args.quick else [float(s) for s in args.sizes.split(",") if s.strip()]
    args.torch = args.torch and not args.quick
    args.runs = args.runs or (3 if args.quick else 5)
    if args.runs < 1 or not args.sizes or min(args.sizes) <= 0:
        parser.error("--runs must be >= 1 and --sizes positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tools = resolve_tools()
        DATA_DIR.mkdir(exist_ok=True)
        keys = ensure_keys(tools)
        state = project_state()
        env = environment_lines(tools, args.runs, state)
        tables: list[Table] = []
        results: dict[str, dict[str, Series]] = {}
        fixed = config_only_checkpoint()
        tables.append(timing_table(fixed, bench_checkpoint(fixed, tools, keys, args.runs), args.runs))
        tables[-1].title = f"Fixed cost: {fixed.name} checkpoint (config.json and an empty index), {args.runs} runs"
        print("\n" + tables[-1].text() + "\n", flush=True)
        for size in args.sizes:
            ckpt = llama_checkpoint(size)
            results[ckpt.name] = bench_checkpoint(ckpt, tools, keys, args.runs)
            tables.append(timing_table(ckpt, results[ckpt.name], args.runs))
            print("\n" + tables[-1].text() + "\n", flush=True)
        pth = torch_checkpoint(2.0) if args.torch else None
        if pth is not None:
            results[pth.name] = bench_prepared(pth, tools, keys, args.runs)
            tables.append(timing_table(pth, results[pth.name], args.runs))
            print("\n" + tables[-1].text() + "\n", flush=True)
        tables.append(ratio_table(results))
        tables.append(memory_table(results, args.sizes))
        if not args.no_overhead:
            tables.extend(bench_overhead(tools, args.runs))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    final_state = project_state()
    if final_state != state:
        env.append(f"WARNING: the project changed during the run (started on {state}, ended on {final_state})")
    print("\n" + "\n".join(env) + "\n")
    print("\n\n".join(t.text() for t in tables))
    markdown = "\n".join(f"- {line}" for line in env) + "\n\n" + "\n\n".join(t.markdown() for t in tables) + "\n"
    RESULTS_FILE.write_text(markdown)
    print(f"\n----- Markdown (also written to {RESULTS_FILE}) -----\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
