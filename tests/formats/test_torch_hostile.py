"""Hostile PyTorch checkpoints, each held against what torch.load(weights_only=True) does with the same bytes.

Every hostile file is a real torch.save archive whose pickle (hand-assembled from the opcodes torch's
weights_only unpickler runs) or zip records were changed. For each, the test loads it with torch to show
what torch does, and asserts that the reader either yields exactly torch's tensor (our digest equals the
digest of torch's tensor bytes) or refuses the file with one line.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provenance._formats.torch import TorchReader, pickle_globals
from provenance._formats.unpickler import ALLOWED, StorageType
from provenance._hashing.engine import HashPlan, hash_file
from provenance.errors import MalformedContainer
from tests.conftest import CliResult

Run = Callable[..., CliResult]
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "torch"

# ---------------------------------------------------------------------------------------------------------
# Pickles assembled by hand, in the opcodes torch's weights_only unpickler runs (protocol 2)


def uni(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def num(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    size = (value.bit_length() + 8) // 8
    return b"\x8a" + bytes([size]) + value.to_bytes(size, "little", signed=True)


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def ints(values: tuple[int, ...]) -> bytes:
    return tup(*(num(v) for v in values))


NONE, TRUE, FALSE = b"N", b"\x88", b"\x89"


def odict(items: bytes = b"") -> bytes:
    return glob("collections", "OrderedDict") + b")R" + (b"(" + items + b"u" if items else b"")


def mapping(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def storage(key: str, numel: int, kind: str = "FloatStorage") -> bytes:
    return tup(uni("storage"), glob("torch", kind), uni(key), uni("cpu"), num(numel)) + b"Q"


def v2(
    store: bytes,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *,
    grad: bytes = FALSE,
    hooks: bytes | None = None,
    metadata: bytes | None = None,
) -> bytes:
    args = [store, num(0), ints(size), ints(stride), grad, odict() if hooks is None else hooks]
    if metadata is not None:
        args.append(metadata)
    return glob("torch._utils", "_rebuild_tensor_v2") + tup(*args) + b"R"


def _raw_v2(store: bytes, offset: bytes, size: bytes, stride: bytes) -> bytes:
    """_rebuild_tensor_v2 with arguments as a hostile file chooses them, unchecked."""
    return glob("torch._utils", "_rebuild_tensor_v2") + tup(store, offset, size, stride, FALSE, odict()) + b"R"


def state_dict(**tensors: bytes) -> bytes:
    return b"\x80\x02" + mapping([(uni(k), v) for k, v in tensors.items()]) + b"."


FOUR = struct.pack("<4f", 1, 2, 3, 4)
OTHER = struct.pack("<4f", 9, 8, 7, 6)
PLAIN = v2(storage("0", 4), (4,), (1,))


def archive(
    pkl: bytes,
    records: dict[str, bytes] | None = None,
    *,
    extra: dict[str, bytes] | None = None,
    byteorder: bytes = b"little",
) -> bytes:
    """The records of a real torch.save archive, in its order, with the pickle and storages given."""
    buffer = io.BytesIO()
    torch = pytest.importorskip("torch", reason="torch is not installed: hostile files are held against it")
    torch.save({"w": torch.tensor([1.0, 2, 3, 4])}, buffer)
    names = [n.split("/", 1)[1] for n in zipfile.ZipFile(buffer).namelist() if "/data/" not in n]
    content = {"data.pkl": pkl, "byteorder": byteorder, "version": b"3\n"}
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as real, zipfile.ZipFile(out, "w") as target:
        for name in names:
            target.writestr(f"archive/{name}", content.get(name, real.read(f"archive/{name}")))
            if name == "byteorder":
                for key, data in (records if records is not None else {"0": FOUR}).items():
                    target.writestr(f"archive/data/{key}", data)
        for name, data in (extra or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def torch_load(data: bytes) -> Any:
    """What torch.load(weights_only=True) gives for these bytes, or the exception it raises."""
    torch = pytest.importorskip("torch", reason="torch is not installed: hostile files are held against it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(io.BytesIO(data), weights_only=True)
        except Exception as exc:
            return exc


def torch_digests(loaded: Any, prefix: str = "") -> dict[str, str]:
    """The BLAKE3 of the bytes of every tensor torch loaded, by dotted path, its negative and conjugate bits applied."""
    from blake3 import blake3

    torch = pytest.importorskip("torch", reason="torch is not installed")
    if isinstance(loaded, dict | list):
        items = loaded.items() if isinstance(loaded, dict) else enumerate(loaded)
        out: dict[str, str] = {}
        for key, value in items:
            out.update(torch_digests(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if not isinstance(loaded, torch.Tensor):
        return {}
    tensor = loaded.resolve_neg().resolve_conj().contiguous().reshape(-1)
    return {prefix: blake3(tensor.view(torch.uint8).numpy().tobytes()).hexdigest()}


def ours(data: bytes, tmp_path: Path, name: str = "w.pt") -> dict[str, str]:
    (tmp_path / name).write_bytes(data)
    fingerprint = hash_file(tmp_path, name, HashPlan(parts=True))
    assert fingerprint.error is None
    return {t.name: t.blake3 for t in fingerprint.tensors}


def refusal(data: bytes, tmp_path: Path) -> str:
    """The one line our reader refuses the file with."""
    (tmp_path / "w.pt").write_bytes(data)
    with pytest.raises(MalformedContainer) as refused, open(tmp_path / "w.pt", "rb") as stream:
        TorchReader().read_layout(stream, len(data), "w.pt")
    message = str(refused.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------------
# 1. Rebuild arguments torch applies


def test_the_genuine_hand_made_archive_reads_as_torch_loads_it(tmp_path: Path) -> None:
    data = archive(state_dict(w=PLAIN))
    assert ours(data, tmp_path) == torch_digests(torch_load(data))


@pytest.mark.parametrize("value", [TRUE, FALSE], ids=["neg-true", "neg-false"])
def test_negative_bit_metadata_is_refused(tmp_path: Path, value: bytes) -> None:
    """torch sets the negative bit whenever the key is there, even as False: it loads -1, -2, -3, -4."""
    data = archive(state_dict(w=v2(storage("0", 4), (4,), (1,), metadata=mapping([(uni("neg"), value)]))))
    assert torch_load(data)["w"].tolist() == [-1.0, -2.0, -3.0, -4.0]
    assert "metadata" in refusal(data, tmp_path)


def test_conjugate_bit_metadata_is_refused(tmp_path: Path) -> None:
    values = struct.pack("<4f", 1, 2, 3, 4)  # two complex numbers: 1+2j, 3+4j
    tensor = v2(storage("0", 2, "ComplexFloatStorage"), (2,), (1,), metadata=mapping([(uni("conj"), TRUE)]))
    data = archive(state_dict(w=tensor), {"0": values})
    assert torch_load(data)["w"].tolist() == [1 - 2j, 3 - 4j]
    assert "metadata" in refusal(data, tmp_path)


@pytest.mark.parametrize("metadata", [NONE, b"}", odict()], ids=["none", "empty-dict", "empty-ordered-dict"])
def test_empty_metadata_reads_as_torch_loads_it(tmp_path: Path, metadata: bytes) -> None:
    data = archive(state_dict(w=v2(storage("0", 4), (4,), (1,), metadata=metadata)))
    assert ours(data, tmp_path) == torch_digests(torch_load(data))


def _with_state(state: bytes) -> bytes:
    param = glob("torch._utils", "_rebuild_parameter_with_state") + tup(PLAIN, FALSE, odict(), state) + b"R"
    return archive(state_dict(w=param), {"0": FOUR, "1": OTHER})


def test_parameter_state_that_replaces_its_data_is_refused(tmp_path: Path) -> None:
    data = _with_state(mapping([(uni("data"), v2(storage("1", 4), (4,), (1,)))]))
    assert torch_load(data)["w"].tolist() == [9.0, 8.0, 7.0, 6.0]  # torch applies the state
    assert "state" in refusal(data, tmp_path)


def test_parameter_slot_state_is_refused(tmp_path: Path) -> None:
    data = _with_state(tup(b"}", mapping([(uni("data"), v2(storage("1", 4), (4,), (1,)))])))
    assert torch_load(data)["w"].tolist() == [9.0, 8.0, 7.0, 6.0]
    assert "state" in refusal(data, tmp_path)


@pytest.mark.parametrize("state", [NONE, b"}", tup(NONE, NONE)], ids=["none", "empty", "empty-pair"])
def test_empty_parameter_state_reads_as_torch_loads_it(tmp_path: Path, state: bytes) -> None:
    data = _with_state(state)
    # the unused storage 1 is fine for both
    assert ours(data, tmp_path) == torch_digests(torch_load(data))


def test_backward_hooks_are_refused(tmp_path: Path) -> None:
    """torch keeps hooks without changing values; torch.save never writes any: refused as not modelled."""
    hooks = odict(num(0) + glob("torch._utils", "_rebuild_tensor"))
    data = archive(state_dict(w=v2(storage("0", 4), (4,), (1,), hooks=hooks)))
    assert torch_load(data)["w"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert "backward hooks" in refusal(data, tmp_path)


@pytest.mark.parametrize(
    ("tensor", "reason"),
    [
        (v2(storage("0", 4), (4,), (1,), grad=num(1)), "requires_grad is not a bool"),
        (v2(storage("0", 4), (4,), (1,), grad=NONE), "requires_grad is not a bool"),
        (v2(storage("0", 2, "LongStorage"), (2,), (1,), grad=TRUE), "requires grad"),
        (v2(storage("0", 4, "float32"), (4,), (1,)), "storage description"),
        (glob("torch._utils", "_rebuild_tensor_v2") + tup(storage("0", 4), num(0), ints((4,))) + b"R", "arguments"),
        (_raw_v2(storage("0", 4), uni("x"), ints((4,)), ints((1,))), "not a count"),
        (_raw_v2(storage("0", 4), num(0), b"}", ints((1,))), "not a tuple of counts"),
        (_raw_v2(storage("0", 4), num(0), ints((2, 2)), ints((1,))), "different lengths"),
        (_raw_v2(storage("0", 4), num(3), ints((4,)), ints((-1,))), "not a count"),
        (_raw_v2(storage("0", -1), num(0), ints((4,)), ints((1,))), "not a count"),
        (_raw_v2(uni("0"), num(0), ints((4,)), ints((1,))), "not a storage"),
    ],
    ids=[
        "grad-int",
        "grad-none",
        "int-requires-grad",
        "dtype-as-storage-type",
        "too-few-arguments",
        "offset-not-a-count",
        "size-not-a-tuple",
        "stride-shorter-than-size",
        "negative-stride",
        "negative-numel",
        "storage-not-a-storage",
    ],
)
def test_rebuild_arguments_torch_refuses_are_refused(tmp_path: Path, tensor: bytes, reason: str) -> None:
    data = archive(state_dict(w=tensor))
    assert isinstance(torch_load(data), Exception)
    assert reason in refusal(data, tmp_path)


def test_requires_grad_on_a_float_tensor_reads_as_torch_loads_it(tmp_path: Path) -> None:
    data = archive(state_dict(w=v2(storage("0", 4), (4,), (1,), grad=TRUE)))
    assert ours(data, tmp_path) == torch_digests(torch_load(data))


def test_a_storage_key_described_twice_differently_is_refused(tmp_path: Path) -> None:
    """torch loads a key once and reuses it whatever a later id claims (here: as F16, which it cannot resize)."""
    data = archive(state_dict(w=PLAIN, v=v2(storage("0", 8, "HalfStorage"), (8,), (1,))))
    assert isinstance(torch_load(data), Exception)
    assert "declared twice" in refusal(data, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# 2. Zip record names as torch's reader matches them


def test_storage_records_differing_in_case_are_refused(tmp_path: Path) -> None:
    pkl = state_dict(w=v2(storage("a", 4), (4,), (1,)))
    first, second = archive(pkl, {"a": FOUR, "A": OTHER}), archive(pkl, {"A": OTHER, "a": FOUR})
    assert torch_load(first)["w"].tolist() == [9.0, 8.0, 7.0, 6.0]  # torch reads data/A for key "a"
    assert torch_load(second)["w"].tolist() == [1.0, 2.0, 3.0, 4.0]
    for data in (first, second):
        assert "ignoring case" in refusal(data, tmp_path)


def test_a_second_pickle_differing_in_case_is_refused(tmp_path: Path) -> None:
    other = state_dict(w=v2(storage("0", 4), (2,), (1,)))
    data = archive(state_dict(w=PLAIN), extra={"archive/DATA.PKL": other})
    assert torch_load(data)["w"].tolist() == [1.0, 2.0]  # torch runs DATA.PKL
    assert "ignoring case" in refusal(data, tmp_path)


def test_records_named_in_another_case_are_read_as_torch_reads_them(tmp_path: Path) -> None:
    """A storage record and the byteorder record in upper case: torch finds them, and so does the reader."""
    pkl = state_dict(w=v2(storage("a", 4), (4,), (1,)))
    data = archive(pkl, {"A": struct.pack(">4f", 1, 2, 3, 4)}, byteorder=b"big")
    data = data.replace(b"archive/byteorder", b"archive/BYTEORDER").replace(b"archive/version", b"archive/VERSION")
    assert torch_load(data)["w"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert ours(data, tmp_path) == torch_digests(torch_load(data))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.replace(b"archive/version", b"archive/versiox"), "no version record"),
        (lambda d: _first_outside(d), "outside the archive's folder"),
        (lambda d: b"PK\x03\x04" + bytes(60) + d, "shifted"),
        (lambda d: d.replace(b"archive/data.pkl", b"ARCHIVE/data.pkl"), "outside the archive's folder"),
    ],
    ids=["no-version", "entry-outside-the-folder", "bytes-before-the-archive", "pickle-in-another-folder"],
)
def test_archives_torch_refuses_are_refused(tmp_path: Path, mutate: Callable[[bytes], bytes], reason: str) -> None:
    data = mutate(archive(state_dict(w=PLAIN)))
    assert isinstance(torch_load(data), Exception)
    assert reason in refusal(data, tmp_path)


def _first_outside(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        target.writestr("other/x", b"1")
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    return out.getvalue()


def test_verify_refuses_a_case_collision_against_the_genuine_manifest(run_cli: Run, tmp_path: Path) -> None:
    _genuine_and_manifest(run_cli, tmp_path)
    pkl = state_dict(w=v2(storage("a", 4), (4,), (1,)))
    _put_candidate(tmp_path, archive(pkl, {"A": OTHER, "a": FOUR}))
    assert _verify_code(run_cli, tmp_path) == (1, "modified")


# ---------------------------------------------------------------------------------------------------------
# 3. Stand-ins no BUILD can change


def test_build_on_a_tensor_is_refused(tmp_path: Path) -> None:
    """torch applies BUILD to a tensor as set_(): here it loads two elements of storage 1."""
    build = PLAIN + tup(storage("1", 4), num(0), ints((2,)), ints((1,))) + b"b"
    data = archive(state_dict(w=build), {"0": FOUR, "1": OTHER})
    assert torch_load(data)["w"].tolist() == [9.0, 8.0]
    assert "BUILD" in refusal(data, tmp_path)


@pytest.mark.parametrize(
    "build",
    [
        v2(storage("0", 4), (4,), (1,)) + tup(NONE, mapping([(uni("stride"), ints((2**62,)))])) + b"b",
        v2(storage("0", 4), (4,), (1,)) + tup(storage("0", 4), num(0), ints((4,)), tup(num(-1)), uni("F32")) + b"b",
        v2(storage("0", 4) + tup(uni("0"), uni("F64"), num(2**40)) + b"b", (4,), (1,)),
        glob("torch._utils", "_rebuild_tensor_v2") + mapping([(uni("__defaults__"), tup(NONE))]) + b"b" + PLAIN[33:],
        glob("torch._utils", "_rebuild_tensor_v2") + tup(NONE, mapping([(uni("_call"), NONE)])) + b"b" + PLAIN[33:],
    ],
    ids=["tensor-slots", "tensor-negative-stride", "storage-ref", "stand-in-function", "stand-in-slots"],
)
def test_build_on_any_stand_in_is_refused(tmp_path: Path, build: bytes) -> None:
    data = archive(state_dict(w=build))
    message = refusal(data, tmp_path)
    assert "BUILD" in message or "sets" in message, message


def test_a_hostile_file_cannot_poison_the_next_one(tmp_path: Path) -> None:
    """BUILD on the FloatStorage marker (once shared by every file) would make the next file's F32 read as F64."""
    poisoned = glob("torch", "FloatStorage") + tup(uni("F64")) + b"b"
    pid = tup(uni("storage"), poisoned, uni("0"), uni("cpu"), num(2)) + b"Q"
    hostile = archive(state_dict(w=v2(pid, (2,), (1,))))
    assert "BUILD" in refusal(hostile, tmp_path)
    genuine = archive(state_dict(w=PLAIN))
    assert ALLOWED[("torch", "FloatStorage")] == StorageType("F32")
    assert ours(genuine, tmp_path, "good.pt") == torch_digests(torch_load(genuine))


def test_a_real_module_state_dict_with_its_metadata_build_reads(tmp_path: Path) -> None:
    """torch.save(module.state_dict()) ends with BUILD of the OrderedDict's `_metadata`: that must keep working."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    torch.save(module.state_dict(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    assert b"_metadata" in data
    assert ours(data, tmp_path, "m.pt") == torch_digests(torch.load(tmp_path / "m.pt", weights_only=True))


def test_verify_refuses_a_build_rewritten_tensor_against_the_genuine_manifest(run_cli: Run, tmp_path: Path) -> None:
    _genuine_and_manifest(run_cli, tmp_path)
    build = PLAIN + tup(storage("0", 4), num(0), ints((4,)), ints((1,))) + b"b"
    _put_candidate(tmp_path, archive(state_dict(w=build)))
    assert _verify_code(run_cli, tmp_path) == (1, "modified")


def test_verify_refuses_negated_values_against_the_genuine_manifest(run_cli: Run, tmp_path: Path) -> None:
    _genuine_and_manifest(run_cli, tmp_path)
    _put_candidate(
        tmp_path, archive(state_dict(w=v2(storage("0", 4), (4,), (1,), metadata=mapping([(uni("neg"), TRUE)]))))
    )
    assert _verify_code(run_cli, tmp_path) == (1, "modified")


def _genuine_and_manifest(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "pytorch_model.bin").write_bytes(archive(state_dict(w=PLAIN)))
    assert run_cli("fingerprint", tmp_path / "ref", "-o", tmp_path / "m.json", "-q").code == 0


def _put_candidate(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "cand").mkdir()
    (tmp_path / "cand" / "pytorch_model.bin").write_bytes(data)


def _verify_code(run_cli: Run, tmp_path: Path) -> tuple[int, str]:
    """`verify --json` of the candidate against the genuine file's manifest: exit code and verdict, the refused
    file reported modified (a deliberate construct, not damage) with the reader's one line."""
    result = run_cli("verify", tmp_path / "cand", "--manifest", tmp_path / "m.json", "--json", "-q")
    report = json.loads(result.out)
    assert {f["name"]: f["status"] for f in report["files"]}["pytorch_model.bin"] == "modified"
    assert any(r.startswith("pytorch_model.bin refused: ") for r in report["reasons"]), report["reasons"]
    return result.code, report["verdict"]


# ---------------------------------------------------------------------------------------------------------
# 4. Bounded work: a subprocess under a 1 GiB address-space limit and a 60 s timeout

MEMORY = 1 << 30
TIMEOUT = 60


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def bounded_fingerprint(path: Path) -> subprocess.CompletedProcess[str]:
    """`provenance fingerprint PATH -q` in its own process, under the memory limit; killed after 60 s."""
    return subprocess.run(
        [sys.executable, "-c", "from cli.app import main; main()", "fingerprint", str(path), "-q"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=_limit,
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
        check=False,
    )


def _shared_lists(levels: int) -> bytes:
    """Each list holds the one below twice, through the memo: 2**levels leaves from a few hundred bytes."""
    body = b"]q\x00K\x01a"
    for level in range(1, levels + 1):
        body = b"]q" + bytes([level]) + b"(" + body + b"h" + bytes([level - 1]) + b"e"
    return body


def _legacy(tree: bytes, storages: dict[str, bytes]) -> bytes:
    import pickle

    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    head = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps(info, protocol=2) + tree + pickle.dumps(list(storages), protocol=2)
    return head + b"".join(struct.pack("<q", len(d) // 4) + d for d in storages.values())


def _stride0_views(count: int, numel: int, *, legacy: bool = False) -> bytes:
    """`count` tensors, each a stride-0 view of one storage three times its size (each under the per-tensor cap)."""
    pid = storage("0", numel)
    if legacy:  # the legacy persistent id has a sixth field, the (absent) view
        pid = pid[:-2] + NONE + b"tQ"
    views = [(uni(f"v{n}"), v2(pid, (numel * 3,), (0,))) for n in range(count)]
    return b"\x80\x02" + mapping(views) + b"."


def _long_key_nested(levels: int) -> bytes:
    """Dicts nested `levels` deep, each under the same 1 MiB key through the memo: names of gigabytes."""
    key = b"X" + struct.pack("<I", 1 << 20) + b"k" * (1 << 20) + b"q\x00"
    return b"\x80\x02}" + key + b"}h\x00" * (levels - 1) + b"K\x01" + b"s" * levels + b"."


HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "memo-shared-list-tree": (
        lambda: archive(b"\x80\x02}X\x01\x00\x00\x00x" + _shared_lists(60) + b"s."),
        "larger than",
    ),
    "memo-shared-list-tree-legacy": (
        lambda: _legacy(b"\x80\x02}X\x01\x00\x00\x00x" + _shared_lists(60) + b"s.", {}),
        "larger than",
    ),
    "stride-0-views-many-times": (
        lambda: archive(_stride0_views(4000, 1 << 18), {"0": bytes(1 << 20)}),
        "together",
    ),
    "stride-0-views-many-times-legacy": (
        lambda: _legacy(_stride0_views(4000, 1 << 18, legacy=True), {"0": bytes(1 << 20)}),
        "together",
    ),
    "integer-over-4300-digits": (
        lambda: archive(b"\x80\x02}X\x01\x00\x00\x00x\x8b" + struct.pack("<I", 4000) + b"\x7f" * 4000 + b"s."),
        "LONG4",
    ),
    "object-flood": (lambda: archive(b"\x80\x02}X\x01\x00\x00\x00x](" + b"\x8f" * (3 << 20) + b"es."), "MiB"),
    "long-key-shared-deep": (lambda: archive(_long_key_nested(60)), "larger than"),
    "opcode-flood": (lambda: archive(b"\x80\x02" + b"\x88" * (11 << 20) + b"."), "opcodes"),
    "tuples-nested-a-million-deep": (lambda: archive(b"\x80\x02}N" + b"\x85" * 1_000_000 + b"K\x01s."), "nests tuples"),
    "dict-keys-flood": (
        lambda: archive(b"\x80\x02}(" + b"".join(b"J" + struct.pack("<i", n) + b"N" for n in range(5 << 20)) + b"u."),
        "MiB of objects",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_work_is_bounded_and_one_line(tmp_path: Path, case: str) -> None:
    make, reason = HOSTILE[case]
    path = tmp_path / "w.pt"
    path.write_bytes(make())
    result = bounded_fingerprint(path)
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr[-2000:]
    assert reason in result.stderr, result.stderr


def _odd_leaves() -> bytes:
    deep_key = b"N" + b"\x85" * 90  # a tuple nested 90 deep, as a dict key
    huge = b"X" + struct.pack("<I", 32 << 20) + b"s" * (32 << 20)
    return b"\x80\x02}" + deep_key + b"K\x01s" + uni("text") + huge + b"sX\x01\x00\x00\x00w" + PLAIN + b"s."


def test_odd_leaves_give_a_bounded_summary_and_the_tensor(tmp_path: Path) -> None:
    """A deep tuple as a key and a 32 MiB string: the file reads (torch loads it too), its summary stays short."""
    data = archive(_odd_leaves())
    loaded = torch_load(data)
    assert loaded["w"].tolist() == [1.0, 2.0, 3.0, 4.0] and len(loaded["text"]) == 32 << 20
    path = tmp_path / "w.pt"
    path.write_bytes(data)
    result = bounded_fingerprint(path)
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["predicate"]["weights_provenance/v1"]["files"]
    assert [t["name"] for t in entry["tensors"]] == ["w"]
    assert len(result.stdout) < 64 << 10
    with open(path, "rb") as stream:
        layout = TorchReader().read_layout(stream, len(data), "w.pt")
    assert all(len(k) <= 80 and len(v) <= 120 for k, v in layout.metadata.items())
    assert layout.metadata["text"] == "str " + "s" * 80


def test_legacy_system_information_does_not_change_the_byte_order(tmp_path: Path) -> None:
    """torch ignores the legacy header's little_endian and reads storages as little-endian: so does the reader."""
    data = (GOLDEN / "checkpoint-legacy.pt").read_bytes()
    flag = b"little_endianq\x02\x88"
    assert flag in data
    patched = data.replace(flag, b"little_endianq\x02\x89")
    assert ours(patched, tmp_path) == torch_digests(torch_load(patched))


# ---------------------------------------------------------------------------------------------------------
# 5. Globals listed as they are


def test_pickle_globals_returns_names_as_the_pickle_spells_them(tmp_path: Path) -> None:
    name = ("os\x1b[2K\r", "sys\x07tem")
    pkl = b"\x80\x02" + glob(*name) + b")R."
    data = archive(pkl)
    with io.BytesIO(data) as stream:
        assert pickle_globals(stream, len(data), "w.pt") == [("os\x1b[2K\r.sys\x07tem", False)]


# ---------------------------------------------------------------------------------------------------------
# Nested object trees: a dotted path is not the flat name it spells


def test_a_nested_state_dict_is_not_the_flat_names_it_spells(run_cli: Run, tmp_path: Path) -> None:
    """`{"model": {"a.weight": t}}` and `{"model.a.weight": t}` join to one dotted name, but torch.load returns a
    nested dict for the first and a loader looking up "model.a.weight" finds nothing there."""
    torch = pytest.importorskip("torch", reason="torch writes the checkpoints and shows what torch.load returns")
    flat = {"model.a.weight": torch.arange(6.0).reshape(2, 3), "model.b.weight": torch.ones(3), "head": torch.zeros(2)}
    (tmp_path / "release").mkdir()
    torch.save(flat, tmp_path / "release" / "pytorch_model.bin")
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", tmp_path / "release", "-o", manifest, "-q").code == 0
    (tmp_path / "cand").mkdir()
    nested = {"model": {"a.weight": flat["model.a.weight"], "b.weight": flat["model.b.weight"]}, "head": flat["head"]}
    torch.save(nested, tmp_path / "cand" / "pytorch_model.bin")
    loaded = torch.load(tmp_path / "cand" / "pytorch_model.bin", weights_only=True)
    assert "model.a.weight" not in loaded and set(loaded) == {"model", "head"}
    result = run_cli("verify", tmp_path / "cand", "--manifest", manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    statuses = {t["name"]: (t["status"], t.get("detail")) for t in report["tensors"]}
    assert statuses["head"] == ("match", None)
    assert statuses["model.a.weight"] == (
        "modified",
        "the release's numbers nested under keys 'model' / 'a.weight' in the candidate's object tree, where the "
        "release has them as one key: a loader looking up 'model.a.weight' does not find them",
    )


def test_a_nested_checkpoint_against_its_own_manifest_is_identical(run_cli: Run, tmp_path: Path) -> None:
    """A training checkpoint nests its state dict: its manifest records the keys, and the same file matches."""
    torch = pytest.importorskip("torch", reason="torch writes the checkpoint")
    (tmp_path / "release").mkdir()
    tree = {"model_state_dict": {"layer.weight": torch.ones(2, 2)}, "epoch": 3}
    torch.save(tree, tmp_path / "release" / "checkpoint.pt")
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", tmp_path / "release", "-o", manifest, "-q").code == 0
    entry = json.loads(manifest.read_text())["predicate"]["weights_provenance/v1"]["files"][0]["tensors"][0]
    assert (entry["name"], entry["path"]) == ("model_state_dict.layer.weight", ["model_state_dict", "layer.weight"])
    result = run_cli("verify", tmp_path / "release", "--manifest", manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")
    (tmp_path / "flat").mkdir()
    torch.save({"model_state_dict.layer.weight": torch.ones(2, 2)}, tmp_path / "flat" / "checkpoint.pt")
    result = run_cli("verify", tmp_path / "flat", "--manifest", manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (1, "modified")


def test_a_list_is_not_a_dict_of_its_indexes(run_cli: Run, tmp_path: Path) -> None:
    """{"model": [t0, t1]} and {"model": {"0": t0, "1": t1}} spell the same dotted names, but torch.load's
    result["model"][0] is a tensor in one and a KeyError in the other: the path keeps a list's index as an int."""
    torch = pytest.importorskip("torch", reason="torch writes the checkpoints")
    t0, t1 = torch.ones(2), torch.zeros(3)
    (tmp_path / "release").mkdir()
    torch.save({"model": [t0, t1]}, tmp_path / "release" / "ckpt.pt")
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", tmp_path / "release", "-o", manifest, "-q").code == 0
    entry = json.loads(manifest.read_text())["predicate"]["weights_provenance/v1"]["files"][0]["tensors"][0]
    assert (entry["name"], entry["path"]) == ("model.0", ["model", 0])
    result = run_cli("verify", tmp_path / "release", "--manifest", manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")
    (tmp_path / "cand").mkdir()
    torch.save({"model": {"0": t0, "1": t1}}, tmp_path / "cand" / "ckpt.pt")
    with pytest.raises(KeyError):
        torch.load(tmp_path / "cand" / "ckpt.pt", weights_only=True)["model"][0]
    result = run_cli("verify", tmp_path / "cand", "--manifest", manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    assert report["summary"]["tensors"] == {"modified": 2}
