"""The generated checkpoints: Llama-shaped safetensors written directly (header, then random data streamed
a chunk at a time), a config-only one, the small- and large-tensor pair, and a torch.save .pth."""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from run_common import CHUNK, DATA_DIR, GIB, MIB, BenchError

SHARDS = 8
DTYPE_SIZES = {"F16": 2, "BF16": 2, "F32": 4}

SMALL_TENSORS = 100_000
SMALL_SHARDS = 4  # 25,000 tensors per shard keeps each JSON header near 2 MiB, far below safetensors' cap
SMALL_SHAPES = ((64, 84), (84, 64), (32, 168), (5376,))  # all 10,752 bytes in F16: ~1 GiB for 100,000


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
