"""PyTorch zip checkpoints end to end: golden files made by real torch.save, cross-format identity, refusals."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from provenance._hashing.engine import HashPlan, hash_file
from tests.conftest import REAL, CliResult, needs_shared

Run = Callable[..., CliResult]
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "torch"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def our_digests(folder: Path, name: str) -> dict[str, dict[str, object]]:
    fingerprint = hash_file(folder, name, HashPlan(parts=True))
    assert fingerprint.error is None
    return {t.name: {"dtype": t.dtype, "shape": list(t.shape), "blake3": t.blake3} for t in fingerprint.tensors}


def test_golden_checkpoint_digests_equal_torchs_contiguous_bytes() -> None:
    """expected.json holds what torch itself gave for each tensor when the golden file was made."""
    assert our_digests(GOLDEN, "checkpoint.pt") == EXPECTED


def test_golden_regenerates_identically_when_torch_is_present(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch is not installed: the committed goldens are checked instead")
    import runpy

    module = runpy.run_path(str(GOLDEN / "make_torch_golden.py"))
    module["main"](tmp_path)
    assert json.loads((tmp_path / "expected.json").read_text()) == EXPECTED
    assert our_digests(tmp_path, "checkpoint.pt") == EXPECTED


@needs_shared
@pytest.mark.parametrize("name", ["test.pt", "fortran_tensor_3d.pth"])
def test_real_torch_files_digest_as_torch_reads_them(name: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed: compared with torch.load where it is")
    from blake3 import blake3

    reference = torch.load(REAL / name, weights_only=True)
    expected = {
        key: blake3(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
        for key, t in reference.items()
    }
    assert {k: v["blake3"] for k, v in our_digests(REAL, name).items()} == expected


def _release(folder: Path, weights: str) -> Path:
    folder.mkdir()
    shutil.copyfile(GOLDEN / weights, folder / weights)
    (folder / "config.json").write_text('{"hidden_size": 6}\n')
    return folder


@pytest.mark.parametrize(
    ("reference", "candidate"),
    [("checkpoint.pt", "checkpoint.safetensors"), ("checkpoint.safetensors", "checkpoint.pt")],
)
def test_same_numbers_nested_or_flat_are_not_the_same_names(
    run_cli: Run, tmp_path: Path, reference: str, candidate: str
) -> None:
    """The golden .pt nests its tensors ({"model_state_dict": {"base": ...}, "layers": [...]}); its safetensors
    conversion holds the same numbers under flat dotted keys. torch.load returns the tree for one and the keys for
    the other, so a loader looking up one's names does not find the other's: modified, each tensor said why."""
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", _release(tmp_path / "ref", reference), "-o", manifest, "-q").code == 0
    result = run_cli("verify", _release(tmp_path / "cand", candidate), "--manifest", manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    assert report["summary"]["tensors"] == {"modified": len(EXPECTED)}
    assert all("in the candidate's object tree" in t["detail"] for t in report["tensors"])


def test_changed_tensor_in_a_torch_checkpoint_is_named(run_cli: Run, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", _release(tmp_path / "ref", "checkpoint.pt"), "-o", manifest, "-q").code == 0
    candidate = _release(tmp_path / "cand", "checkpoint.pt")
    base = next(
        t
        for t in hash_file(candidate, "checkpoint.pt", HashPlan(parts=True)).tensors
        if t.path
        == (
            "model_state_dict",
            "base",
        )
    )
    with open(candidate / "checkpoint.pt", "r+b") as stream:  # one bit of the tensor's storage, in place
        stream.seek(base.start + 5)
        value = stream.read(1)[0]
        stream.seek(base.start + 5)
        stream.write(bytes([value ^ 1]))
    report = json.loads(run_cli("verify", candidate, "--manifest", manifest, "--json", "-q").out)
    assert report["verdict"] == "modified"
    changed = [t["name"] for t in report["tensors"] if t["status"] != "match"]
    assert changed == ["model_state_dict.base", "model_state_dict.transposed"]  # a view of the same storage


LEGACY_EXPECTED = {name: entry for name, entry in EXPECTED.items() if "float8" not in name}


def test_legacy_golden_digests_equal_torchs_contiguous_bytes() -> None:
    """The legacy golden holds every tensor but the float8 ones, which torch.load cannot read back from it."""
    assert our_digests(GOLDEN, "checkpoint-legacy.pt") == LEGACY_EXPECTED


def test_legacy_and_zip_checkpoints_of_the_same_numbers_are_equivalent(run_cli: Run, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed: it writes the zip copy of the legacy state")
    import runpy

    state = runpy.run_path(str(GOLDEN / "make_torch_golden.py"))["legacy_checkpoint"]()
    (tmp_path / "ref").mkdir()
    torch.save(state, tmp_path / "ref" / "checkpoint.pt")
    (tmp_path / "ref" / "config.json").write_text('{"hidden_size": 6}\n')
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", tmp_path / "ref", "-o", manifest, "-q").code == 0
    result = run_cli("verify", _release(tmp_path / "cand", "checkpoint-legacy.pt"), "--manifest", manifest, "--json")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "equivalent")


def test_legacy_file_with_untyped_storages_is_refused_as_torch_refuses_it(run_cli: Run, tmp_path: Path) -> None:
    """torch.save writes float8 tensors of a legacy file over UntypedStorage, which torch.load cannot read."""
    torch = pytest.importorskip("torch", reason="torch is not installed: it writes and loads the legacy file")
    path = tmp_path / "f8.pt"
    torch.save({"w": torch.zeros(4, dtype=torch.float8_e4m3fn)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(AttributeError, match="dtype"):
        torch.load(path, weights_only=True)
    result = run_cli("fingerprint", path, "-q")
    assert (result.code, result.err.count("\n")) == (2, 1) and "UntypedStorage" in result.err


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_bare_malicious_pickle_under_a_bin_name_is_refused_by_name(run_cli: Run, tmp_path: Path, protocol: int) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(_Evil(f"touch {canary}"), protocol=protocol))
    result = run_cli("fingerprint", tmp_path / "pytorch_model.bin", "-q")
    assert (result.code, result.err.count("\n")) == (2, 1) and "posix.system" in result.err
    assert not canary.exists()


def test_truncated_legacy_checkpoint_is_incomplete_on_verify(run_cli: Run, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", _release(tmp_path / "ref", "checkpoint-legacy.pt"), "-o", manifest, "-q").code == 0
    candidate = _release(tmp_path / "cand", "checkpoint-legacy.pt")
    data = (candidate / "checkpoint-legacy.pt").read_bytes()
    (candidate / "checkpoint-legacy.pt").write_bytes(data[: len(data) - 100])
    result = run_cli("verify", candidate, "--manifest", manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "incomplete")
    assert {f["name"]: f["status"] for f in report["files"]}["checkpoint-legacy.pt"] == "corrupt"


def _zip_checkpoint(pkl: bytes, storages: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")  # torch refuses an archive without it
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return buffer.getvalue()


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (self.command,)


def test_malicious_pytorch_model_bin_is_refused_and_nothing_runs(run_cli: Run, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "pytorch_model.bin").write_bytes(
        _zip_checkpoint(pickle.dumps({"w": _Evil(f"touch {canary}")}, protocol=2), {})
    )
    for args in (("fingerprint", tmp_path / "model", "-q"),):
        result = run_cli(*args)
        assert (result.code, result.err.count("\n")) == (2, 1)
        assert "posix.system" in result.err and "pytorch_model.bin" in result.err
    assert not canary.exists()


def test_list_globals_shows_what_a_pickle_would_import_without_running_it(run_cli: Run, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "pytorch_model.bin").write_bytes(
        _zip_checkpoint(pickle.dumps({"w": _Evil(f"touch {canary}")}, protocol=2), {})
    )
    shutil.copyfile(GOLDEN / "checkpoint.pt", tmp_path / "model" / "good.pt")
    result = run_cli("fingerprint", tmp_path / "model", "--list-globals")
    assert result.code == 0
    lines = result.out.splitlines()
    assert "pytorch_model.bin: REFUSED  posix.system" in lines
    assert "good.pt: allowed  torch._utils._rebuild_tensor_v2" in lines
    assert not any(line.startswith("good.pt: REFUSED") for line in lines)
    assert not canary.exists()


@pytest.mark.parametrize(
    "pkl",
    [
        b"\x80\x02}X\x01\x00\x00\x00x" + b"]" * 5000 + b"a" * 4999 + b"s.",
        b"\x80\x02}X\x01\x00\x00\x00x]q\x00h\x00as.",
    ],
    ids=["nested-5000-deep", "list-containing-itself"],
)
def test_deep_or_self_referential_object_trees_are_one_clear_line(run_cli: Run, tmp_path: Path, pkl: bytes) -> None:
    (tmp_path / "w.pt").write_bytes(_zip_checkpoint(pkl, {}))
    result = run_cli("fingerprint", tmp_path / "w.pt", "-q")
    assert (result.code, result.err.count("\n")) == (2, 1) and "nests deeper" in result.err


def _torch_pickle(numel: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """A one-tensor state dict pickled as torch.save pickles it, by Python's own pickler, with the numbers a
    hostile file would choose. The pickler names globals by module; stand-in modules let it do so here."""
    import sys
    import types
    from unittest import mock

    torch_module, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None: ...

    class FloatStorage: ...

    class Storage: ...

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch_module.FloatStorage = FloatStorage  # type: ignore[attr-defined]

    class Tensor:
        def __reduce__(self) -> tuple[object, ...]:
            return _rebuild_tensor_v2, (Storage(), 0, size, stride, False, None)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return ("storage", FloatStorage, "0", "cpu", numel) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    with mock.patch.dict(sys.modules, {"torch": torch_module, "torch._utils": utils}):
        Pickler(buffer, protocol=2).dump({"w": Tensor()})
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("numel", "size", "stride", "stored", "refusal"),
    [
        (16, (4, 4), (4, 1), 64, None),
        (100, (100,), (1,), 64, "declares 100 F32 elements"),
        (16, (4, 5), (4, 1), 64, "reaches past the end of its storage"),
        (1, (2**40,), (0,), 4, "expands to"),  # stride 0 repeats one element: hours of digesting
    ],
    ids=["well-formed", "storage-size-disagrees", "view-past-storage", "broadcast-view-larger-than-file"],
)
def test_tensor_placement_is_checked_against_its_storage(
    run_cli: Run,
    tmp_path: Path,
    numel: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    stored: int,
    refusal: str | None,
) -> None:
    (tmp_path / "w.pt").write_bytes(_zip_checkpoint(_torch_pickle(numel, size, stride), {"0": bytes(stored)}))
    result = run_cli("fingerprint", tmp_path / "w.pt", "-q")
    if refusal is None:
        (entry,) = json.loads(result.out)["predicate"]["weights_provenance/v1"]["files"]
        assert (result.code, [(t["name"], t["shape"]) for t in entry["tensors"]]) == (0, [("w", [4, 4])])
    else:
        assert (result.code, result.err.count("\n")) == (2, 1) and refusal in result.err, result.err


def test_verify_refuses_a_malicious_file_in_the_download_too(run_cli: Run, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", _release(tmp_path / "ref", "checkpoint.pt"), "-o", manifest, "-q").code == 0
    candidate = _release(tmp_path / "cand", "checkpoint.pt")
    (candidate / "checkpoint.pt").write_bytes(pickle.dumps(_Evil(f"touch {canary}"), protocol=1))
    result = run_cli("verify", candidate, "--manifest", manifest, "--json", "-q")
    assert "Traceback" not in result.err
    report = json.loads(result.out)  # refused, and reported: the check goes on
    assert (result.code, report["verdict"]) == (1, "modified")
    (entry,) = [f for f in report["files"] if f["name"] == "checkpoint.pt"]
    assert entry["status"] == "modified" and "posix.system" in entry["detail"] and "refused" in entry["detail"]
    assert not canary.exists()


def test_list_globals_reads_legacy_files_and_bare_pickles(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "raw.bin").write_bytes(pickle.dumps(_Evil("true"), protocol=0))
    shutil.copyfile(GOLDEN / "checkpoint-legacy.pt", tmp_path / "legacy.pt")
    lines = run_cli("fingerprint", tmp_path, "--list-globals").out.splitlines()
    assert "raw.bin: REFUSED  posix.system" in lines
    assert "legacy.pt: allowed  torch._utils._rebuild_tensor_v2" in lines
    assert not [line for line in lines if line.startswith("legacy.pt: REFUSED")]


def test_big_endian_checkpoint_digests_as_little_endian_elements(tmp_path: Path) -> None:
    """The golden checkpoint as a big-endian machine writes it: every storage byte-swapped, byteorder "big"."""
    from manifests.dtypes import DTYPE_BITS
    from provenance._formats.unpickler import TensorRef, load_restricted, walk_tensors

    source = zipfile.ZipFile(GOLDEN / "checkpoint.pt")
    prefix = next(n for n in source.namelist() if n.endswith("/data.pkl")).removesuffix("/data.pkl")
    tree = load_restricted(source.read(f"{prefix}/data.pkl"), "checkpoint.pt")
    dtypes = {leaf.storage.key: leaf.storage.dtype for _, leaf in walk_tensors(tree) if isinstance(leaf, TensorRef)}
    out = tmp_path / "big.pt"
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == f"{prefix}/byteorder":
                data = b"big"
            elif info.filename.startswith(f"{prefix}/data/"):
                dtype = dtypes[info.filename.rsplit("/", 1)[1]]
                unit = DTYPE_BITS[dtype] // (16 if dtype == "C64" else 8)
                data = b"".join(data[i : i + unit][::-1] for i in range(0, len(data), unit))
            target.writestr(info.filename, data)
    assert our_digests(tmp_path, "big.pt") == EXPECTED
