"""Differential tests against the real loaders: for generated candidates (hostile mutations of safetensors
headers, shard indexes, extra files, PyTorch zip records and pickles, and names, with benign controls),
whenever the verdict is `identical`, `equivalent` or `converted`, what `from_pretrained`, `safetensors` and
`torch.load(weights_only=True)` load from the candidate must be the release's tensors under the release's
names (up to the stated cast), and no file a framework picks up may have been added.

The release is a tiny Llama (hidden size 16, 2 layers, vocabulary 64) built with a fixed seed and saved
by `save_pretrained` in four shards. The benign controls must be green, so that the suite cannot pass by
making every verdict red.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="torch is not installed: the differential tests need the real loaders")
pytest.importorskip("transformers", reason="transformers is not installed: from_pretrained is one of the loaders")

from provenance import verify  # noqa: E402
from provenance.errors import ProvenanceError  # noqa: E402
from provenance.report import Report, Verdict  # noqa: E402
from tests.conftest import write_release_manifest  # noqa: E402
from tests.support import loaders  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
EXAMPLES = 6
FEW = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same candidates on every run: a failure names the same construction each time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ONCE = settings(FEW, max_examples=2)
Draw = Callable[[st.SearchStrategy[Any]], Any]


class Release:
    """The release folder, its manifest, its tensors and files (a plain class: hypothesis prints it short)."""

    def __init__(
        self,
        folder: Path,
        manifest: Path,
        state: loaders.StateDict,
        files: frozenset[str],
        shards: dict[str, list[str]],
    ) -> None:
        self.folder, self.manifest, self.state, self.files = folder, manifest, state, files
        self.shards = shards  # shard file -> the tensor names it holds

    def __repr__(self) -> str:
        return f"Release({self.folder})"

    @property
    def names(self) -> list[str]:
        return sorted(self.state)

    def shard_of(self, name: str) -> str:
        return next(file for file, names in self.shards.items() if name in names)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    root = tmp_path_factory.mktemp("differential")
    folder = root / "release"
    state = loaders.build_release(folder)
    manifest = write_release_manifest(folder, root / "release.manifest.json", sketches=True, name="tiny-llama")
    index = json.loads((folder / loaders.INDEX).read_text())["weight_map"]
    shards: dict[str, list[str]] = {}
    for name, file in index.items():
        shards.setdefault(file, []).append(name)
    files = frozenset(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return Release(folder, manifest, state, files, shards)


@contextmanager
def candidate(release: Release) -> Iterator[Path]:
    """A fresh copy of the release to mutate, removed afterwards (hypothesis runs many in one test)."""
    with tempfile.TemporaryDirectory(prefix="candidate-") as where:
        folder = Path(where) / "download"
        shutil.copytree(release.folder, folder)
        yield folder


def judge(folder: Path, release: Release) -> Report | None:
    """Verify the candidate; when the verdict is green, the real loaders must load the release from it.
    None: the tool refused the candidate (exit 2), which is never a false pass."""
    try:
        report = verify(folder, release.manifest)
    except ProvenanceError:
        return None
    if report.verdict in loaders.GREEN:
        problems = loaders.loaded_differences(folder, report, release.state, set(release.files))
        assert not problems, f"verdict {report.verdict.value}, but: " + "; ".join(problems)
    return report


def assert_green(report: Report | None, *verdicts: Verdict) -> None:
    assert report is not None, "a benign candidate was refused"
    assert report.verdict in verdicts, (report.verdict, report.reasons)


def other_values(value: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(value.shape, generator=generator, dtype=torch.float32).to(value.dtype)


# -- controls: genuine conversions and harmless additions are green


def test_the_release_itself_is_identical_and_loads(release: Release) -> None:
    with candidate(release) as folder:
        report = judge(folder, release)
        assert_green(report, Verdict.IDENTICAL)


@ONCE
@given(shards=st.integers(1, 5), reverse=st.booleans())
def test_a_genuine_reshard_is_equivalent(release: Release, shards: int, reverse: bool) -> None:
    with candidate(release) as folder:
        for file in release.shards:
            (folder / file).unlink()
        (folder / loaders.INDEX).unlink()
        state = dict(reversed(release.state.items())) if reverse else release.state
        if shards == 1:
            loaders.save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        else:
            loaders.save_shards(folder, state, shards)
        assert_green(judge(folder, release), Verdict.EQUIVALENT)


def test_a_genuine_bin_conversion_is_equivalent(release: Release) -> None:
    with candidate(release) as folder:
        for file in release.shards:
            (folder / file).unlink()
        (folder / loaders.INDEX).unlink()
        torch.save(release.state, folder / "pytorch_model.bin")
        assert_green(judge(folder, release), Verdict.EQUIVALENT)


@ONCE
@given(text=st.text(min_size=0, max_size=40))
def test_an_added_readme_stays_green(release: Release, text: str) -> None:
    with candidate(release) as folder:
        (folder / "README.md").write_text(f"# tiny llama\n{text}\n")
        assert_green(judge(folder, release), Verdict.IDENTICAL, Verdict.EQUIVALENT)


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_a_genuine_cast_is_converted_and_loads_as_the_cast(release: Release, dtype: str) -> None:
    with candidate(release) as folder:
        for file, names in release.shards.items():
            cast = {n: release.state[n].to(loaders.DTYPES[dtype]) for n in names}
            loaders.save_file(cast, str(folder / file), metadata={"format": "pt"})
        assert_green(judge(folder, release), Verdict.CONVERTED)


# -- safetensors headers


def _shard_with(folder: Path, release: Release, name: str) -> tuple[Path, dict[str, Any], bytes]:
    path = folder / release.shard_of(name)
    header, data = loaders.read_safetensors(path)
    return path, header, data


def _same_size_pairs(release: Release) -> list[tuple[str, str]]:
    """Pairs of distinct tensors of one shard with the same byte length and distinct values."""
    pairs = []
    for names in release.shards.values():
        for a in names:
            for b in names:
                va, vb = release.state[a], release.state[b]
                if a < b and va.numel() == vb.numel() and not torch.equal(va.flatten(), vb.flatten()):
                    pairs.append((a, b))
    return pairs


def swap_offsets(folder: Path, release: Release, draw: Draw) -> None:
    a, b = draw(st.sampled_from(_same_size_pairs(release)))
    path, header, data = _shard_with(folder, release, a)
    header[a]["data_offsets"], header[b]["data_offsets"] = header[b]["data_offsets"], header[a]["data_offsets"]
    if draw(st.booleans()):
        header[a]["shape"], header[b]["shape"] = header[b]["shape"], header[a]["shape"]
    loaders.write_safetensors(path, header, data)


def duplicate_entry(folder: Path, release: Release, draw: Draw) -> None:
    """The same name twice in one header: the second entry points at another tensor's bytes."""
    a, b = draw(st.sampled_from(_same_size_pairs(release)))
    first, second = (a, b) if draw(st.booleans()) else (b, a)
    path, header, data = _shard_with(folder, release, first)
    entries = [json.dumps(k) + ":" + json.dumps(v) for k, v in header.items()]
    twin = json.dumps(first) + ":" + json.dumps({**header[first], "data_offsets": header[second]["data_offsets"]})
    entries.insert(draw(st.integers(0, len(entries))), twin)
    loaders.write_safetensors(path, "{" + ",".join(entries) + "}", data)


def change_dtype(folder: Path, release: Release, draw: Draw) -> None:
    name = draw(st.sampled_from(release.names))
    path, header, data = _shard_with(folder, release, name)
    kind = draw(st.sampled_from(["I32", "U32", "BF16", "F16"]))
    header[name]["dtype"] = kind
    if kind in ("BF16", "F16"):
        header[name]["shape"] = [*header[name]["shape"][:-1], header[name]["shape"][-1] * 2]
    loaders.write_safetensors(path, header, data)


def change_shape(folder: Path, release: Release, draw: Draw) -> None:
    name = draw(st.sampled_from([n for n in release.names if release.state[n].ndim == 2]))
    path, header, data = _shard_with(folder, release, name)
    rows, cols = header[name]["shape"]
    header[name]["shape"] = draw(st.sampled_from([[cols, rows], [rows * cols], [1, rows, cols]]))
    loaders.write_safetensors(path, header, data)


def extra_tensor(folder: Path, release: Release, draw: Draw) -> None:
    shard = draw(st.sampled_from(sorted(release.shards)))
    name = draw(st.sampled_from(["model.layers.2.mlp.up_proj.weight", "lm_head.bias", "model.extra"]))
    header, data = loaders.read_safetensors(folder / shard)
    header[name] = {"dtype": "F32", "shape": [4], "data_offsets": [len(data), len(data) + 16]}
    loaders.write_safetensors(folder / shard, header, data + torch.arange(4.0).numpy().tobytes())


def other_metadata(folder: Path, release: Release, draw: Draw) -> None:
    shard = draw(st.sampled_from(sorted(release.shards)))
    header, data = loaders.read_safetensors(folder / shard)
    header["__metadata__"] = {"format": "pt", "converted_by": draw(st.text(max_size=20))}
    loaders.write_safetensors(folder / shard, header, data)


def other_order(folder: Path, release: Release, draw: Draw) -> None:
    """The header's entries and the tensors' bytes in another order (each entry still pointing at its bytes)."""
    shard = draw(st.sampled_from([s for s, names in release.shards.items() if len(names) > 1]))
    header, data = loaders.read_safetensors(folder / shard)
    metadata = header.pop("__metadata__", None)
    names = draw(st.permutations(list(header)))
    layout: dict[str, Any] = {} if metadata is None else {"__metadata__": metadata}
    chunks, at = [], 0
    for name in names:
        start, end = header[name]["data_offsets"]
        chunks.append(data[start:end])
        layout[name] = {**header[name], "data_offsets": [at, at + end - start]}
        at += end - start
    loaders.write_safetensors(folder / shard, layout, b"".join(chunks))


HOSTILE_HEADERS = {
    "swapped-offsets": swap_offsets,
    "duplicated-entry": duplicate_entry,
    "changed-dtype": change_dtype,
    "changed-shape": change_shape,
    "extra-tensor": extra_tensor,
}
BENIGN_HEADERS = {"changed-metadata": other_metadata, "changed-order": other_order}


@pytest.mark.parametrize("kind", sorted(HOSTILE_HEADERS))
@FEW
@given(data=st.data())
def test_safetensors_header_mutations(release: Release, kind: str, data: st.DataObject) -> None:
    with candidate(release) as folder:
        HOSTILE_HEADERS[kind](folder, release, data.draw)
        judge(folder, release)


@pytest.mark.parametrize("kind", sorted(BENIGN_HEADERS))
@FEW
@given(data=st.data())
def test_benign_safetensors_header_changes_stay_equivalent(release: Release, kind: str, data: st.DataObject) -> None:
    with candidate(release) as folder:
        BENIGN_HEADERS[kind](folder, release, data.draw)
        assert_green(judge(folder, release), Verdict.IDENTICAL, Verdict.EQUIVALENT)  # identical: the same order


# -- names: look-alikes, control characters, case


def lookalike(name: str, at: int) -> str:
    """A Cyrillic letter in place of a Latin one."""
    return name.replace("o", "\u043e", 1) if at % 2 else name.replace("e", "\u0435", 1)


def control_character(name: str, at: int) -> str:
    cut = at % len(name)
    return name[:cut] + ["\x1b", "\x00", "\r", "\u200b"][at % 4] + name[cut:]


def case_change(name: str, at: int) -> str:
    cut = at % len(name)
    return name.upper() if at % 2 else name[:cut] + name[cut].swapcase() + name[cut + 1 :]


NAME_CHANGES: dict[str, Callable[[str, int], str]] = {
    "unicode-lookalike": lookalike,
    "control-character": control_character,
    "case-change": case_change,
}


@pytest.mark.parametrize("kind", sorted(NAME_CHANGES))
@FEW
@given(data=st.data())
def test_renamed_tensors(release: Release, kind: str, data: st.DataObject) -> None:
    """A tensor under another name in its shard's header (the index following it, or not), or in a .bin."""
    name = data.draw(st.sampled_from(release.names))
    new = NAME_CHANGES[kind](name, data.draw(st.integers(0, 200)))
    if new == name:
        return
    where = data.draw(st.sampled_from(["header", "header-and-index", "bin"]))
    with candidate(release) as folder:
        if where == "bin":
            _as_bin(folder, release, {new if k == name else k: v for k, v in release.state.items()})
        else:
            path, header, blob = _shard_with(folder, release, name)
            renamed = {new if k == name else k: v for k, v in header.items()}
            loaders.write_safetensors(path, renamed, blob)
            if where == "header-and-index":
                index = json.loads((folder / loaders.INDEX).read_text())
                index["weight_map"][new] = index["weight_map"].pop(name)
                (folder / loaders.INDEX).write_text(json.dumps(index))
        judge(folder, release)


# -- shard indexes


def _index(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / loaders.INDEX).read_text())
    return document


def _write_index(folder: Path, document: dict[str, Any]) -> None:
    (folder / loaders.INDEX).write_text(json.dumps(document, indent=2))


def index_to_other_shard(folder: Path, release: Release, draw: Draw) -> None:
    name = draw(st.sampled_from(release.names))
    document = _index(folder)
    others = sorted(f for f in release.shards if f != release.shard_of(name))
    document["weight_map"][name] = draw(st.sampled_from(others))
    _write_index(folder, document)


def index_into_git(folder: Path, release: Release, draw: Draw) -> None:
    """The index sends a tensor to a file in `.git/` (never scanned) holding other values under its name."""
    name = draw(st.sampled_from(release.names))
    (folder / ".git").mkdir()
    file = draw(st.sampled_from([".git/evil.safetensors", ".git/objects/model.safetensors"]))
    (folder / file).parent.mkdir(parents=True, exist_ok=True)
    loaders.save_file({name: other_values(release.state[name], 1)}, str(folder / file), metadata={"format": "pt"})
    document = _index(folder)
    document["weight_map"][name] = file
    _write_index(folder, document)


def index_to_missing_file(folder: Path, release: Release, draw: Draw) -> None:
    name = draw(st.sampled_from(release.names))
    document = _index(folder)
    document["weight_map"][name] = draw(st.sampled_from(["model-00005-of-00005.safetensors", "elsewhere.safetensors"]))
    _write_index(folder, document)


def index_extra_entries(folder: Path, release: Release, draw: Draw) -> None:
    """Entries for tensors the release does not have, pointing at a real shard or at a new file holding them."""
    document = _index(folder)
    name = draw(st.sampled_from(["model.layers.2.mlp.up_proj.weight", "lm_head.bias", "score.weight"]))
    if draw(st.booleans()):
        loaders.save_file({name: torch.ones(16)}, str(folder / "extra.safetensors"), metadata={"format": "pt"})
        document["weight_map"][name] = "extra.safetensors"
    else:
        document["weight_map"][name] = draw(st.sampled_from(sorted(release.shards)))
    _write_index(folder, document)


def index_dropped_entry(folder: Path, release: Release, draw: Draw) -> None:
    document = _index(folder)
    del document["weight_map"][draw(st.sampled_from(release.names))]
    _write_index(folder, document)


INDEX_MUTATIONS = {
    "to-another-shard": index_to_other_shard,
    "into-dot-git": index_into_git,
    "to-a-missing-file": index_to_missing_file,
    "extra-entries": index_extra_entries,
    "dropped-entry": index_dropped_entry,
}


@pytest.mark.parametrize("kind", sorted(INDEX_MUTATIONS))
@FEW
@given(data=st.data())
def test_index_mutations(release: Release, kind: str, data: st.DataObject) -> None:
    with candidate(release) as folder:
        INDEX_MUTATIONS[kind](folder, release, data.draw)
        judge(folder, release)


# -- extra files beside the release


def _changed_state(release: Release, draw: Draw) -> loaders.StateDict:
    name = draw(st.sampled_from(release.names))
    return {k: other_values(v, 2) if k == name else v for k, v in release.state.items()}


def bin_with_other_numbers(folder: Path, release: Release, draw: Draw) -> None:
    torch.save(_changed_state(release, draw), folder / draw(st.sampled_from(["pytorch_model.bin", "model.pt"])))


def single_file_with_other_numbers(folder: Path, release: Release, draw: Draw) -> None:
    loaders.save_file(_changed_state(release, draw), str(folder / "model.safetensors"), metadata={"format": "pt"})


def adapter(folder: Path, release: Release, draw: Draw) -> None:
    rank = draw(st.integers(1, 4))
    lora = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(rank, 16),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.randn(16, rank),
    }
    loaders.save_file(lora, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {"peft_type": "LORA", "r": rank, "target_modules": ["q_proj"], "base_model_name_or_path": "."}
    (folder / "adapter_config.json").write_text(json.dumps(config))


def modeling_code(folder: Path, release: Release, draw: Draw) -> None:
    (folder / "modeling_llama.py").write_text("import os\nos.environ['PWNED'] = '1'\n")
    if draw(st.booleans()):
        (folder / "configuration_llama.py").write_text("from transformers import LlamaConfig\n")


def chat_template(folder: Path, release: Release, draw: Draw) -> None:
    text = draw(st.sampled_from(["{{ messages }}", "{% for m in messages %}{{ m['content'] }}{% endfor %}"]))
    (folder / "chat_template.jinja").write_text(text)


def a_pickle(folder: Path, release: Release, draw: Draw) -> None:
    """A pickle beside the weights: numbers the release does not have, or a malicious one (never loaded)."""
    if draw(st.booleans()):
        torch.save({"step": torch.tensor(3), "lr": torch.tensor(0.1)}, folder / "training_state.pt")
    else:
        malicious = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
        name = draw(st.sampled_from(["optimizer.pkl", "training_args.bin"]))
        (folder / name).write_bytes(malicious)
        assert pickle.PROTO in malicious  # a real protocol-2 pickle, never unpickled here


HOSTILE_FILES = {
    "bin-with-other-numbers": bin_with_other_numbers,
    "model-safetensors-beside-shards": single_file_with_other_numbers,
    "adapter": adapter,
    "modeling-code": modeling_code,
    "chat-template": chat_template,
    "pickle": a_pickle,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
@FEW
@given(data=st.data())
def test_extra_files(release: Release, kind: str, data: st.DataObject) -> None:
    with candidate(release) as folder:
        HOSTILE_FILES[kind](folder, release, data.draw)
        judge(folder, release)


@pytest.mark.parametrize("kind", ["pytorch_model.bin", "model.safetensors"])
def test_an_exact_copy_beside_the_shards_stays_green(release: Release, kind: str) -> None:
    """A leftover conversion holding the release's tensors under the release's names: whatever a loader
    picks, it loads the release's numbers."""
    with candidate(release) as folder:
        if kind == "pytorch_model.bin":
            torch.save(release.state, folder / kind)
        else:
            loaders.save_file(release.state, str(folder / kind), metadata={"format": "pt"})
        assert_green(judge(folder, release), Verdict.IDENTICAL, Verdict.EQUIVALENT)


# -- PyTorch zip records and pickles: a real torch.save of the release, with its rebuild calls changed


BIN = "pytorch_model.bin"


def _as_bin(folder: Path, release: Release, state: dict[str, Any]) -> Path:
    """The folder as a .bin conversion: the shards and index replaced by one torch.save of `state`."""
    for file in release.shards:
        (folder / file).unlink()
    (folder / loaders.INDEX).unlink()
    loaders.torch_save(folder / BIN, state)
    return folder / BIN


def _rebuilt_state(release: Release, name: str, replacement: loaders.Rebuilt) -> dict[str, Any]:
    return {k: replacement if k == name else loaders.plain(v) for k, v in release.state.items()}


def _matrix(release: Release, draw: Draw) -> tuple[str, torch.Tensor]:
    name = draw(st.sampled_from([n for n in release.names if release.state[n].ndim == 2]))
    return name, release.state[name]


def offset_shifted(release: Release, draw: Draw) -> dict[str, Any]:
    name, value = _matrix(release, draw)
    pad = draw(st.integers(1, 8))
    storage = loaders.storage_of(torch.cat([torch.zeros(pad), value.flatten(), torch.zeros(pad)]))
    shift = draw(st.sampled_from([-1, 1]))
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, pad + shift, value.shape, value.stride()))


def offset_kept(release: Release, draw: Draw) -> dict[str, Any]:
    """Benign: the values at an offset inside a larger storage."""
    name, value = _matrix(release, draw)
    pad = draw(st.integers(1, 8))
    storage = loaders.storage_of(torch.cat([torch.zeros(pad), value.flatten()]))
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, pad, value.shape, value.stride()))


def stride_transposed(release: Release, draw: Draw) -> dict[str, Any]:
    """The release's bytes read column-major: other values under the release's name and shape."""
    name, value = _matrix(release, draw)
    rows, cols = value.shape
    storage = loaders.storage_of(value)
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, 0, (rows, cols), (1, rows)))


def stride_kept(release: Release, draw: Draw) -> dict[str, Any]:
    """Benign: the values stored column-major, with the strides that read them back."""
    name, value = _matrix(release, draw)
    rows, cols = value.shape
    storage = loaders.storage_of(value.t())
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, 0, (rows, cols), (1, rows)))


def stride_overlapping(release: Release, draw: Draw) -> dict[str, Any]:
    name, value = _matrix(release, draw)
    rows, cols = value.shape
    stride = draw(st.sampled_from([(0, 1), (1, 1), (cols - 1, 1)]))
    return _rebuilt_state(release, name, loaders.rebuild_v2(loaders.storage_of(value), 0, (rows, cols), stride))


def size_changed(release: Release, draw: Draw) -> dict[str, Any]:
    name, value = _matrix(release, draw)
    rows, cols = value.shape
    size, stride = draw(st.sampled_from([((cols, rows), (rows, 1)), ((rows // 2, cols), (cols, 1))]))
    return _rebuilt_state(release, name, loaders.rebuild_v2(loaders.storage_of(value), 0, size, stride))


def other_storage(release: Release, draw: Draw) -> dict[str, Any]:
    name, value = _matrix(release, draw)
    storage = loaders.storage_of(other_values(value, 3))
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, 0, value.shape, value.stride()))


def negative_bit(release: Release, draw: Draw) -> dict[str, Any]:
    """The neg bit in `_rebuild_tensor_v2`'s metadata: torch.load returns the negated values."""
    name, value = _matrix(release, draw)
    metadata = draw(st.sampled_from([{"neg": True}, {"neg": True, "conj": False}]))
    return _rebuilt_state(
        release, name, loaders.rebuild_v2(loaders.storage_of(value), 0, value.shape, value.stride(), metadata)
    )


def negative_bit_undone(release: Release, draw: Draw) -> dict[str, Any]:
    """The negated values stored with the neg bit: torch.load returns the release's values."""
    name, value = _matrix(release, draw)
    storage = loaders.storage_of(-value)
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, 0, value.shape, value.stride(), {"neg": True}))


def conjugate_bit(release: Release, draw: Draw) -> dict[str, Any]:
    name, value = _matrix(release, draw)
    storage = loaders.storage_of(value)
    return _rebuilt_state(release, name, loaders.rebuild_v2(storage, 0, value.shape, value.stride(), {"conj": True}))


def parameter_state_data(release: Release, draw: Draw) -> dict[str, Any]:
    """`_rebuild_parameter_with_state` whose state sets `data`: torch applies it."""
    name, value = _matrix(release, draw)
    other = other_values(value, 4)
    state = draw(st.sampled_from([{"data": other}, ({"data": other}, None)]))
    return _rebuilt_state(release, name, loaders.parameter_with_state(loaders.plain(value), state))


def parameter_state_harmless(release: Release, draw: Draw) -> dict[str, Any]:
    name, value = _matrix(release, draw)
    state = draw(st.sampled_from([None, {}, {"tag": "x"}]))
    return _rebuilt_state(release, name, loaders.parameter_with_state(loaders.plain(value), state))


REBUILDS = {
    "storage-offset-shifted": offset_shifted,
    "storage-offset-kept": offset_kept,
    "stride-transposed": stride_transposed,
    "stride-kept": stride_kept,
    "stride-overlapping": stride_overlapping,
    "size-changed": size_changed,
    "other-storage": other_storage,
    "negative-bit": negative_bit,
    "negative-bit-undone": negative_bit_undone,
    "conjugate-bit": conjugate_bit,
    "parameter-state-sets-data": parameter_state_data,
    "parameter-state-harmless": parameter_state_harmless,
}


@pytest.mark.parametrize("kind", sorted(REBUILDS))
@FEW
@given(data=st.data())
def test_pytorch_rebuild_arguments(release: Release, kind: str, data: st.DataObject) -> None:
    with candidate(release) as folder:
        _as_bin(folder, release, REBUILDS[kind](release, data.draw))
        judge(folder, release)


def _records(folder: Path, release: Release) -> tuple[Path, list[tuple[str, bytes]], str]:
    path = _as_bin(folder, release, dict(release.state))
    records = loaders.zip_records(path)
    prefix = records[0][0].split("/")[0]
    return path, records, prefix


def _hostile_pickle(release: Release, draw: Draw) -> bytes:
    """A data.pkl over the same storage records as the release's .bin, with one tensor negated."""
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "pytorch_model.bin"
        loaders.torch_save(path, negative_bit(release, draw))
        return next(data for name, data in loaders.zip_records(path) if name.endswith("/data.pkl"))


def pickle_case_twin(folder: Path, release: Release, draw: Draw) -> None:
    """`data.pkl` beside `DATA.PKL` (or `Data.pkl`) holding another pickle."""
    path, records, prefix = _records(folder, release)
    twin = (f"{prefix}/" + draw(st.sampled_from(["DATA.PKL", "Data.pkl", "data.PKL"])), _hostile_pickle(release, draw))
    at = next(i for i, (n, _) in enumerate(records) if n.endswith("/data.pkl"))
    records.insert(at + draw(st.integers(0, 1)), twin)
    loaders.write_zip(path, records)


def data_case_twin(folder: Path, release: Release, draw: Draw) -> None:
    """`data/0` beside `DATA/0` (or `Data/0`) holding other bytes of the same length."""
    path, records, prefix = _records(folder, release)
    storages = [(i, n) for i, (n, _) in enumerate(records) if n.startswith(f"{prefix}/data/")]
    at, name = draw(st.sampled_from(storages))
    other = bytes(b ^ 0x55 for b in records[at][1])
    spelled = name.replace("/data/", draw(st.sampled_from(["/DATA/", "/Data/"])))
    records.insert(at + draw(st.integers(0, 1)), (spelled, other))
    loaders.write_zip(path, records)


def duplicate_record(folder: Path, release: Release, draw: Draw) -> None:
    """The same record name twice: the second copy holds other bytes."""
    path, records, prefix = _records(folder, release)
    if draw(st.booleans()):
        at = next(i for i, (n, _) in enumerate(records) if n.endswith("/data.pkl"))
        records.insert(at + draw(st.integers(0, 1)), (records[at][0], _hostile_pickle(release, draw)))
    else:
        storages = [i for i, (n, _) in enumerate(records) if n.startswith(f"{prefix}/data/")]
        at = draw(st.sampled_from(storages))
        records.insert(at + draw(st.integers(0, 1)), (records[at][0], bytes(b ^ 0x55 for b in records[at][1])))
    loaders.write_zip(path, records)


def prefixed_records(folder: Path, release: Release, draw: Draw) -> None:
    """Records under a nested or mixed prefix, or renamed, as torch itself may refuse them."""
    path, records, prefix = _records(folder, release)
    how = draw(st.sampled_from(["nested", "mixed", "upper-prefix", "no-prefix"]))
    if how == "nested":
        records = [(f"outer/{n}", d) for n, d in records]
    elif how == "mixed":
        records = [(n.replace(prefix, "other", 1) if n.endswith("data.pkl") else n, d) for n, d in records]
    elif how == "upper-prefix":
        records = [(n.replace(prefix, prefix.upper(), 1), d) for n, d in records]
    else:
        records = [(n.split("/", 1)[1], d) for n, d in records]
    loaders.write_zip(path, records)


def storage_bytes(folder: Path, release: Release, draw: Draw) -> None:
    path, records, prefix = _records(folder, release)
    storages = [i for i, (n, _) in enumerate(records) if n.startswith(f"{prefix}/data/")]
    at = draw(st.sampled_from(storages))
    name, blob = records[at]
    byte = draw(st.integers(0, len(blob) - 1))
    records[at] = (name, blob[:byte] + bytes([blob[byte] ^ (1 << draw(st.integers(0, 7)))]) + blob[byte + 1 :])
    loaders.write_zip(path, records)


ZIP_MUTATIONS = {
    "pickle-case-twin": pickle_case_twin,
    "data-case-twin": data_case_twin,
    "duplicate-record": duplicate_record,
    "prefixed-records": prefixed_records,
    "storage-bytes": storage_bytes,
}


@pytest.mark.parametrize("kind", sorted(ZIP_MUTATIONS))
@FEW
@given(data=st.data())
def test_pytorch_zip_records(release: Release, kind: str, data: st.DataObject) -> None:
    with candidate(release) as folder:
        ZIP_MUTATIONS[kind](folder, release, data.draw)
        judge(folder, release)


def test_a_rewritten_zip_of_the_release_is_still_equivalent(release: Release) -> None:
    """The zip rewriter itself changes nothing a loader sees: the control for the record mutations."""
    with candidate(release) as folder:
        path, records, _ = _records(folder, release)
        loaders.write_zip(path, records)
        assert_green(judge(folder, release), Verdict.EQUIVALENT)


@pytest.mark.parametrize("kind", ["storage-offset-kept", "stride-kept", "parameter-state-harmless"])
def test_benign_rebuild_arguments_are_equivalent(release: Release, kind: str) -> None:
    """The same values stored at an offset, column-major, or as a parameter: what torch.save writes for
    views and parameters, which a verifier must read as the release's tensors."""
    with candidate(release) as folder:
        _as_bin(folder, release, REBUILDS[kind](release, _first))
        assert_green(judge(folder, release), Verdict.EQUIVALENT)


def _first(strategy: st.SearchStrategy[Any]) -> Any:
    """A fixed draw for the parametrized controls: the simplest value of the strategy."""
    from hypothesis import find

    return find(strategy, lambda _: True)
