"""The real loaders a user runs on a download (transformers' `from_pretrained`, `safetensors`, and
`torch.load(weights_only=True)`), and the check that a green verdict holds for what they load.

Imported only after the tests have made sure torch and transformers are installed.
"""

from __future__ import annotations

import collections
import io
import json
import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it: the folders are local, nothing is fetched
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from provenance.report import Report, TensorStatus, Verdict

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

GREEN = (Verdict.IDENTICAL, Verdict.EQUIVALENT, Verdict.CONVERTED)
INDEX = "model.safetensors.index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
INERT_SUFFIXES = (".md", ".txt", ".png", ".jpg", ".jpeg", ".gif", ".svg")
INERT_NAMES = ("LICENSE", "LICENCE", "NOTICE", ".gitattributes", ".gitignore")
UNSEEN = (".git", ".cache")  # folders no loader looks into by itself (an index may still point there)
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
StateDict = dict[str, torch.Tensor]


def build_release(folder: Path) -> StateDict:
    """A tiny Llama with fixed weights, saved by `save_pretrained` in four safetensors shards with an index."""
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, max_shard_size="8KB")
    return read_shards(folder)


def read_shards(folder: Path) -> StateDict:
    """The tensors the index names, each from the shard it names (what a safetensors user reads)."""
    index = json.loads((folder / INDEX).read_text())["weight_map"]
    state: StateDict = {}
    for name, file in index.items():
        with safe_open(str(folder / file), framework="pt") as handle:
            state[name] = handle.get_tensor(name)
    return state


def from_pretrained(folder: Path) -> StateDict:
    """What transformers loads from the folder, offline, with the folder's own config."""
    model = LlamaForCausalLM.from_pretrained(folder, local_files_only=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def torch_load(path: Path) -> StateDict:
    """`torch.load(weights_only=True)`, nested dictionaries flattened to dotted names."""
    return dict(_flatten("", torch.load(path, map_location="cpu", weights_only=True)))


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(f"{prefix}.{i}" if prefix else str(i), item)
    else:
        raise AssertionError(f"{prefix or 'the file'} loads as {type(value).__name__}, not tensors")


def _load_file(path: Path) -> StateDict:
    return load_file(str(path)) if path.suffix == ".safetensors" else torch_load(path)


def views(folder: Path) -> Iterator[tuple[str, Callable[[], StateDict], bool]]:
    """Each way a user loads the folder: (how, loader, whether it must give the whole release)."""
    yield "from_pretrained", lambda: from_pretrained(folder), True
    if (folder / INDEX).is_file():
        yield f"safetensors via {INDEX}", lambda: read_shards(folder), True
    elif (folder / "model.safetensors").is_file():
        yield "safetensors model.safetensors", lambda: load_file(str(folder / "model.safetensors")), True
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES and relative.parts[0] not in UNSEEN:
            yield str(relative), lambda path=path: _load_file(path), False  # type: ignore[misc]


def picked_up(folder: Path, release_files: set[str]) -> list[str]:
    """Files a loader or framework may pick up that are neither the release's, nor weights (checked by
    content), nor an index (followed by the views), nor inert."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or relative in release_files or relative.split("/")[0] in UNSEEN:
            continue
        if path.suffix in WEIGHT_SUFFIXES or relative.endswith(".index.json"):
            continue
        if path.suffix.lower() in INERT_SUFFIXES or path.name in INERT_NAMES:
            continue
        found.append(relative)
    return found


def _expected(report: Report, release: StateDict) -> dict[str, tuple[torch.Tensor, bool]]:
    """Per release tensor, the values a loader must give: the release's, cast as the report says; and
    whether equality is exact or within the cast's rounding (a `sampled` cast)."""
    casts = {t.name: t for t in report.tensors if t.status is TensorStatus.CAST and t.candidate_dtype}
    expected: dict[str, tuple[torch.Tensor, bool]] = {}
    for name, value in release.items():
        cast = casts.get(name)
        if cast is None:
            expected[name] = (value, True)
        else:
            expected[name] = (value.to(DTYPES[str(cast.candidate_dtype)]), cast.change is None)
    return expected


def _agrees(loaded: torch.Tensor, wanted: torch.Tensor, exact: bool) -> bool:
    if loaded.shape != wanted.shape:
        return False
    if loaded.dtype == wanted.dtype:
        same = torch.equal(loaded, wanted)
    else:
        same = torch.equal(loaded.to(torch.float64), wanted.to(torch.float64))
    if same or exact:
        return same
    bound = torch.finfo(wanted.dtype).eps * wanted.to(torch.float64).abs()
    return bool(((loaded.to(torch.float64) - wanted.to(torch.float64)).abs() <= bound).all())


def loaded_differences(folder: Path, report: Report, release: StateDict, release_files: set[str]) -> list[str]:
    """What the real loaders load from `folder` that a green verdict does not allow (empty: they agree)."""
    expected = _expected(report, release)
    problems: list[str] = []
    for how, load, whole in views(folder):
        try:
            state = load()
        except Exception as error:  # any refusal by the loader is the finding
            problems.append(f"{how}: the loader fails: {type(error).__name__}: {str(error)[:200]}")
            continue
        names = set(state)
        if whole and names != set(expected):
            problems.append(
                f"{how}: names differ: extra {sorted(names - set(expected))[:3]}, "
                f"missing {sorted(set(expected) - names)[:3]}"
            )
        unknown = sorted(names - set(expected))
        if not whole and unknown:
            problems.append(f"{how}: holds tensors the release does not have: {unknown[:3]}")
        for name in sorted(names & set(expected)):
            wanted, exact = expected[name]
            if not _agrees(state[name], wanted, exact):
                problems.append(f"{how}: {name!r} loads other values than the release's")
    problems += [f"added file a framework picks up: {name}" for name in picked_up(folder, release_files)]
    return problems


# -- safetensors headers, written byte by byte so that any header can be built


def read_safetensors(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header (as an ordered dict) and the data section of a safetensors file."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length], object_pairs_hook=collections.OrderedDict), raw[8 + length :]


def write_safetensors(path: Path, header: dict[str, Any] | str, data: bytes) -> None:
    """A safetensors file with this header (a dict, or raw JSON text for duplicate keys) and data section."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    encoded = text.encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


# -- PyTorch checkpoints, built through torch.save with the rebuild calls spelled out


class Rebuilt:
    """Pickles as the given reduce value: a `_rebuild_tensor_v2` or `_rebuild_parameter_with_state` call
    with whatever arguments, over real storages that torch.save writes as records."""

    def __init__(self, reduced: tuple[Any, tuple[Any, ...]]) -> None:
        self.reduced = reduced

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, tuple[Any, ...]]:
        return self.reduced


def storage_of(values: torch.Tensor) -> torch.storage.TypedStorage:
    """The typed storage torch.save writes for a tensor (a fresh contiguous copy of its values)."""
    flat = values.detach().contiguous().clone()
    return torch.storage.TypedStorage(wrap_storage=flat.untyped_storage(), dtype=flat.dtype, _internal=True)


def rebuild_v2(
    storage: torch.storage.TypedStorage,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    metadata: dict[str, bool] | None = None,
) -> Rebuilt:
    args: tuple[Any, ...] = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
    if metadata is not None:
        args += (metadata,)
    return Rebuilt((torch._utils._rebuild_tensor_v2, args))


def parameter_with_state(data: Rebuilt, state: Any) -> Rebuilt:
    return Rebuilt((torch._utils._rebuild_parameter_with_state, (data, False, collections.OrderedDict(), state)))


def plain(values: torch.Tensor) -> Rebuilt:
    """A tensor rebuilt as torch.save writes it: its own storage, offset 0, row-major strides."""
    return rebuild_v2(storage_of(values), 0, tuple(values.shape), tuple(values.contiguous().stride()))


def torch_save(path: Path, state: dict[str, Any]) -> None:
    torch.save(state, path)


def zip_records(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def write_zip(path: Path, records: list[tuple[str, bytes]]) -> None:
    """The records as a stored (uncompressed) zip, duplicates included, as torch writes them."""
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: they are the point
        for name, data in records:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    path.write_bytes(buffer.getvalue())


def save_shards(folder: Path, state: StateDict, shards: int, *, prefix: str = "model") -> None:
    """The state dict in `shards` safetensors files with an index, as transformers writes them."""
    names = list(state)
    weight_map: dict[str, str] = {}
    for i in range(shards):
        part = names[i::shards]
        file = f"{prefix}-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: state[n].contiguous() for n in part}, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in state.values())}}
    (folder / f"{prefix}.safetensors.index.json").write_text(json.dumps({**index, "weight_map": weight_map}))
