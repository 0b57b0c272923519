"""The restricted unpickler: real torch pickles read, hostile ones refused with nothing imported or run."""

from __future__ import annotations

import builtins
import contextlib
import importlib
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance._formats.unpickler import (
    DisallowedGlobal,
    StorageRef,
    TensorRef,
    UnreadablePickle,
    list_globals,
    load_restricted,
    walk_tensors,
)
from provenance.errors import ProvenanceError
from tests.conftest import REAL, needs_shared


def data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        return archive.read(name)


@needs_shared
@pytest.mark.parametrize("name", ["test.pt", "fortran_tensor_3d.pth"])
def test_real_torch_pickles_read_as_tensor_references(name: str) -> None:
    leaves = dict(walk_tensors(load_restricted(data_pkl(REAL / name), name)))
    assert len(leaves) == 1
    ((_, tensor),) = leaves.items()
    assert isinstance(tensor, TensorRef) and isinstance(tensor.storage, StorageRef)
    assert tensor.storage.dtype == "I64" and tensor.storage.key == "0"


@needs_shared
@pytest.mark.parametrize("name", ["test.pt", "fortran_tensor_3d.pth"])
def test_real_torch_pickles_agree_with_torch(name: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed: compared with torch.load where it is")
    leaves = dict(walk_tensors(load_restricted(data_pkl(REAL / name), name)))
    reference = torch.load(REAL / name, weights_only=True)
    assert list(leaves) == list(reference)
    for path, expected in reference.items():
        tensor = leaves[path]
        assert tensor.shape == tuple(expected.shape)
        assert tensor.stride == tuple(expected.stride())
        assert tensor.offset == expected.storage_offset()


class _Reduce:
    """An object that pickles as a call: what an attacker writes into a checkpoint."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _corpus(canary: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (pickle bytes, the global it must be refused for)."""
    touch = f"touch {canary}"
    cases: dict[str, tuple[bytes, str]] = {
        "os.system": (pickle.dumps(_Reduce(os.system, touch), protocol=2), "system"),
        "builtins.eval": (pickle.dumps(_Reduce(builtins.eval, f"__import__('os').system('{touch}')")), "eval"),
        "builtins.exec": (pickle.dumps(_Reduce(builtins.exec, f"__import__('os').system('{touch}')")), "exec"),
        "getattr-chain": (
            pickle.dumps(_Reduce(builtins.getattr, _Reduce(importlib.import_module, "os"), "system")),
            "getattr",
        ),
        "importlib.import_module": (pickle.dumps(_Reduce(importlib.import_module, "os")), "import_module"),
        "protocol-0": (f"cposix\nsystem\n(S'{touch}'\ntR.".encode(), "posix.system"),
        "protocol-1": (pickle.dumps(_Reduce(os.system, touch), protocol=1), "system"),
        "pip.main": (b"cpip\nmain\n(lp0\nS'install'\natR.", "pip.main"),
        "pkgutil.resolve_name": (f"cpkgutil\nresolve_name\n(S'os:system'\ntR(S'{touch}'\ntR.".encode(), "resolve_name"),
        "inst-opcode": (f"(S'{touch}'\niposix\nsystem\n.".encode(), "posix.system"),
        "stack-global-through-memo": (
            b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c"
            + bytes([len(touch)])
            + touch.encode()
            + b"\x85R.",
            "os.system",
        ),
        "harmless-but-not-allowed": (pickle.dumps({1, 2, 3}, protocol=1), "set"),
    }
    return cases


@pytest.mark.parametrize("case", list(_corpus(Path("/x"))))
def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path: Path, case: str) -> None:
    canary = tmp_path / "canary"
    data, culprit = _corpus(canary)[case]
    with pytest.raises(DisallowedGlobal) as refused:
        load_restricted(data, "pytorch_model.bin")
    assert culprit in str(refused.value) and "pytorch_model.bin" in str(refused.value)
    assert not canary.exists()
    assert any(culprit.split(".")[-1] in name for name in list_globals(data))
    assert not canary.exists()


def test_list_globals_names_what_a_torch_pickle_imports() -> None:
    data = pickle.dumps(OrderedDict(a=1), protocol=2)
    assert list_globals(data) == ["collections.OrderedDict"]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x02", b"\x80\x02}q\x00(X\x01\x00\x00\x00a", b"(((((((((", b"\x80\x05\x95" + b"\xff" * 8],
    ids=["empty", "proto-only", "cut", "marks", "huge-frame"],
)
def test_damaged_pickles_are_one_clear_error(data: bytes) -> None:
    with pytest.raises(UnreadablePickle):
        load_restricted(data, "x.pth")


def test_tensor_rebuilt_from_something_else_is_refused() -> None:
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00(K\x01K\x00)N\x89NtR."
    with pytest.raises(UnreadablePickle, match="not a storage"):
        load_restricted(data, "x.pth")


@given(st.binary(max_size=300))
@settings(max_examples=400, deadline=None, database=None)
def test_fuzz_random_bytes_never_escape(data: bytes) -> None:
    with contextlib.suppress(ProvenanceError):
        load_restricted(data, "fuzz.pth")
    list_globals(data)


@needs_shared
@given(st.data())
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_real_pickle_never_escapes(data: st.DataObject) -> None:
    original = bytearray(data_pkl(REAL / "test.pt"))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProvenanceError):
        load_restricted(bytes(original), "fuzz.pth")


def test_memo_index_bomb_is_refused_before_any_allocation() -> None:
    """LONG_BINPUT 2**28 in a 9-byte pickle made the C unpickler allocate 4 GB and spend 18 s."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(UnreadablePickle, match="memo index"):
        load_restricted(b"\x80\x02Nr\xff\xff\xff\x0f.", "x.pth")
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB
