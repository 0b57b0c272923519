"""Hostile safetensors headers: every one ends in one clear error, never a traceback, hang or huge allocation.

Four parts:
- each hostile file, run through the real console entry point (`provenance fingerprint FILE`) in a child
  process whose wall time and peak RSS (from `os.wait4`) are measured: exit 2, one `error:` line on stderr
  naming the file and what is wrong, nothing on stdout;
- a few of them placed in a checkpoint next to a valid shard: `provenance verify --json` reports the file
  `corrupt` and the download `incomplete` (exit 1), with valid JSON on stdout;
- property-based fuzzing of `SafetensorsReader.read_layout`: it returns a Layout or raises
  MalformedContainer, nothing else, and it accepts exactly what the real `safetensors` package opens
  (except duplicate JSON keys, which it refuses on purpose), with the same tensor names and bytes.
- headers of ~99 MB built to cost time or memory, run under DESIGN.md's bound of 60 s and 1 GiB
  (tests/support/limits.py): refused in one line, or read when within the caps.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

from manifests.dtypes import DTYPE_BITS
from provenance._formats.interface import Layout
from provenance._formats.safetensors import SafetensorsReader
from provenance.errors import MalformedContainer
from tests.support.limits import bounded, refused

CAP = 100_000_000  # the header cap of the safetensors package, which the reader shares
TIME_LIMIT = 5.0  # seconds for one CLI run, interpreter start-up included
MEMORY_LIMIT = 100 << 20  # bytes of peak RSS a hostile file may add over fingerprinting a tiny valid file
ENTRY_POINT = "from cli.app import main; main()"  # what the `provenance` console script calls
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
NUMPY_DTYPES = frozenset({"BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "I64", "U64", "F64", "C64"})


# ---------------------------------------------------------------------------------------------------------
# Building raw files


def container(header: bytes | dict[str, Any] | list[Any], data: bytes = b"", *, length: int | None = None) -> bytes:
    """The raw bytes of a safetensors file: 8-byte little-endian header length, header, data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype: Any = "U8", shape: Any = (4,), offsets: Any = (0, 4)) -> dict[str, Any]:
    """One tensor's header entry; tuples become JSON arrays."""
    return {
        "dtype": dtype,
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets,
    }


def _sparse_over_cap(path: Path) -> None:
    """A file that really holds a header one byte over the cap: sparse, so it costs no disk or time."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", CAP + 1) + b'{"a":')
        f.truncate(8 + CAP + 1)


Writer = bytes | Callable[[Path], None]


@dataclass(frozen=True)
class Hostile:
    id: str
    content: Writer
    wrong: str  # regex (case-insensitive) for what the error line must say is wrong

    def write(self, path: Path) -> Path:
        if isinstance(self.content, bytes):
            path.write_bytes(self.content)
        else:
            self.content(path)
        return path


DUPLICATE = (
    b'{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, '
    b'"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}'
)
CAP_WORDS = r"cap|too large|exceeds"
DATA = b"\x01\x02\x03\x04"

HOSTILE = [
    # the 8-byte length
    Hostile("header-length-past-end-of-file", container(b"{}", length=1000), r"past the end|cut short|truncat"),
    Hostile("header-length-2**63", container(b"{}", length=2**63), CAP_WORDS),
    Hostile("header-length-cap+1-small-file", container(b"{}", length=CAP + 1), CAP_WORDS),
    Hostile("header-over-cap-sparse-file", _sparse_over_cap, CAP_WORDS),
    Hostile("file-shorter-than-8-bytes", b"\x02\x00\x00", r"too short|3 bytes"),
    Hostile("empty-file", b"", r"too short|0 bytes|empty"),
    # the JSON text
    Hostile("invalid-json", container(b'{"w": {"dtype": "U8",'), r"JSON"),
    Hostile("header-not-utf8", container(b'{"\xff\xfe": {}}'), r"UTF-8"),
    Hostile("json-list-not-object", container([entry()], DATA), r"object"),
    Hostile("deeply-nested-json", container(b"[" * 100_000), r"JSON|nest|deep"),
    Hostile("deeply-nested-json-in-entry", container(b'{"w": ' + b'{"a": ' * 100_000), r"JSON|nest|deep"),
    Hostile("lone-surrogate-name", container(b'{"\\ud800": ' + json.dumps(entry()).encode() + b"}", DATA), r"JSON"),
    # one tensor's entry
    Hostile("entry-not-object", container({"w": [1, 2]}), r"object|entry"),
    Hostile("unknown-dtype", container({"w": entry(dtype="F33")}, DATA), r"dtype"),
    Hostile("dtype-not-string", container({"w": entry(dtype=8)}, DATA), r"dtype"),
    Hostile("shape-negative-dimension", container({"w": entry(shape=(-4,))}, DATA), r"shape"),
    Hostile("shape-non-integer-dimension", container({"w": entry(shape=(4.0,))}, DATA), r"shape"),
    Hostile("shape-boolean-dimension", container({"w": entry(shape=(True, 4))}, DATA), r"shape"),
    Hostile("shape-not-a-list", container({"w": entry(shape="4")}, DATA), r"shape"),
    Hostile("data-offsets-one-number", container({"w": entry(offsets=(4,))}, DATA), r"data_offsets"),
    Hostile("data-offsets-three-numbers", container({"w": entry(offsets=(0, 2, 4))}, DATA), r"data_offsets"),
    Hostile("data-offsets-negative", container({"w": entry(offsets=(-4, 0))}, DATA), r"data_offsets"),
    Hostile("data-offsets-begin-after-end", container({"w": entry(offsets=(4, 0))}, DATA), r"data_offsets"),
    Hostile("data-offsets-not-integers", container({"w": entry(offsets=(0.0, 4.0))}, DATA), r"data_offsets"),
    # tensors against each other and against the file
    Hostile(
        "overlapping-tensors",
        container({"a": entry(offsets=(0, 4)), "b": entry(offsets=(2, 6))}, DATA + DATA[:2]),
        r"overlap",
    ),
    Hostile(
        "hole-between-tensors",
        container({"a": entry(offsets=(0, 4)), "b": entry(offsets=(6, 10))}, DATA * 2 + DATA[:2]),
        r"belong to no tensor|hole|gap",
    ),
    Hostile("hole-before-first-tensor", container({"a": entry(offsets=(2, 6))}, DATA + DATA[:2]), r"no tensor"),
    Hostile("bytes-after-last-tensor", container({"a": entry()}, DATA * 2), r"after the last tensor|no tensor"),
    Hostile(
        "data-offsets-far-beyond-file",
        container({"w": entry(shape=(2**40,), offsets=(0, 2**40))}, DATA),
        r"cut short|past the end|beyond|truncat",
    ),
    Hostile("byte-length-not-dtype-times-shape", container({"w": entry(dtype="F32", shape=(2,))}, DATA), r"needs"),
    Hostile(
        "sub-byte-F4-odd-element-count",
        container({"w": entry(dtype="F4", shape=(3,), offsets=(0, 2))}, DATA[:2]),
        r"whole number of bytes",
    ),
    Hostile("huge-shape-product", container({"w": entry(shape=(2**40, 2**40))}, DATA), r"needs|spans|elements"),
    Hostile("duplicate-tensor-names", container(DUPLICATE, DATA), r"twice|duplicate"),
    # the container's metadata
    Hostile("metadata-non-string-value", container({"__metadata__": {"format": 1}, "w": entry()}, DATA), r"metadata"),
    Hostile("metadata-not-an-object", container({"__metadata__": ["pt"], "w": entry()}, DATA), r"metadata"),
]


# ---------------------------------------------------------------------------------------------------------
# The console entry point in a child process, with its wall time and peak memory


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float
    peak_rss: int  # bytes


def run_entry_point(*args: str | Path, timeout: float = 4 * TIME_LIMIT) -> Run:
    """Run `provenance ARGS` as a user would, in its own process; kill it if it hangs."""
    # COLUMNS is dropped so the run sees what a script capturing stderr sees, whatever terminal runs pytest.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", ENTRY_POINT, *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                pytest.fail(f"`provenance {' '.join(map(str, args))}` still running after {timeout:.0f} s: killed")
            time.sleep(0.005)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            seconds,
            usage.ru_maxrss * RSS_UNIT,
        )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Fingerprinting a tiny valid file: the start-up cost every hostile run is measured against."""
    path = tmp_path_factory.mktemp("baseline") / "valid.safetensors"
    save_file({"w": np.arange(4, dtype=np.uint8)}, str(path))
    run = run_entry_point("fingerprint", path)
    assert run.code == 0, run.err
    json.loads(run.out)
    return run


@pytest.mark.parametrize("case", HOSTILE, ids=[case.id for case in HOSTILE])
def test_fingerprint_refuses_hostile_file(case: Hostile, tmp_path: Path, baseline: Run) -> None:
    path = case.write(tmp_path / f"{case.id.replace('*', '')}.safetensors")
    run = run_entry_point("fingerprint", path)

    assert "Traceback" not in run.out + run.err, run.err
    assert run.code == 2, f"exit {run.code}, stderr: {run.err!r}"
    assert run.out == "", "nothing (no manifest) may reach stdout"
    assert run.seconds < TIME_LIMIT, f"took {run.seconds:.1f} s"
    grown = run.peak_rss - baseline.peak_rss
    assert grown < MEMORY_LIMIT, f"peak RSS {run.peak_rss >> 20} MiB, {grown >> 20} MiB over a tiny valid file"
    text = " ".join(run.err.split())
    assert text.startswith("error:"), run.err
    assert path.name in text, f"the error does not name the file: {run.err!r}"
    assert re.search(case.wrong, text, re.IGNORECASE), f"the error does not say what is wrong: {run.err!r}"
    lines = run.err.splitlines()
    assert len(lines) == 1, f"stderr must be one line, got {len(lines)}: {run.err!r}"


# ---------------------------------------------------------------------------------------------------------
# A damaged shard inside a checkpoint, verified against the manifest of the intact checkpoint

SHARD_1 = "model-00001-of-00002.safetensors"
SHARD_2 = "model-00002-of-00002.safetensors"
IN_CHECKPOINT = [
    "header-length-past-end-of-file",
    "header-length-2**63",
    "empty-file",
    "invalid-json",
    "deeply-nested-json",
    "unknown-dtype",
    "data-offsets-begin-after-end",
    "overlapping-tensors",
    "bytes-after-last-tensor",
    "data-offsets-far-beyond-file",
    "huge-shape-product",
    "duplicate-tensor-names",
    "metadata-non-string-value",
]
BY_ID = {case.id: case for case in HOSTILE}


def _intact_checkpoint(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(7)
    save_file({"a.weight": rng.standard_normal((8, 4)).astype(np.float16)}, str(folder / SHARD_1))
    save_file(
        {"b.weight": rng.standard_normal((4, 4)).astype(np.float32), "b.bias": np.arange(4, dtype=np.int64)},
        str(folder / SHARD_2),
        metadata={"format": "pt"},
    )
    (folder / "config.json").write_text('{"hidden_size": 4}\n')
    return folder


@pytest.mark.parametrize("case_id", IN_CHECKPOINT)
def test_verify_reports_hostile_shard_corrupt(case_id: str, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    checkpoint = _intact_checkpoint(tmp_path / "checkpoint")
    manifest = tmp_path / "intact.manifest.json"
    made = run_cli("fingerprint", checkpoint, "-o", manifest, "--quiet")
    assert made.code == 0, made.err
    BY_ID[case_id].write(checkpoint / SHARD_2)

    result = run_cli("verify", checkpoint, "--manifest", manifest, "--json", "--quiet")

    assert "Traceback" not in result.out + result.err
    report = json.loads(result.out)
    statuses = {f["name"]: f["status"] for f in report["files"]}
    assert statuses[SHARD_2] == "corrupt", report["files"]
    assert statuses[SHARD_1] == "match", report["files"]
    assert statuses["config.json"] == "match", report["files"]
    assert report["verdict"] == "incomplete", report["reasons"]
    assert result.code == 1


# ---------------------------------------------------------------------------------------------------------
# Property-based: the reader's contract, and agreement with the real safetensors package

VALID_DTYPES = sorted(DTYPE_BITS)
JUNK_DTYPES = ["F33", "f32", "", "Q4_0", "F8", "bf16", "F32 ", "INT8", "__metadata__"]
HUGE = [2**31, 2**32, 2**40, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70]


def _duplicate_keys(raw: bytes) -> bool:
    """Whether the header JSON repeats a key anywhere (refused here on purpose, kept-last by safetensors)."""
    seen_duplicate = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal seen_duplicate
        keys = [k for k, _ in pairs]
        seen_duplicate |= len(keys) != len(set(keys))
        return dict(pairs)

    try:
        json.loads(raw.decode("utf-8"), object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return False
    return seen_duplicate


def _byte_length(dtype: Any, shape: Any) -> int | None:
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS or not isinstance(shape, list):
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return None
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    return bits // 8 if bits % 8 == 0 else None


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(json_leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c))
names = st.text(max_size=8) | st.sampled_from(["", "model.embed_tokens.weight", "__metadata__", "a" * 300])
dtypes = st.sampled_from(VALID_DTYPES) | st.sampled_from(JUNK_DTYPES) | st.integers(0, 9) | st.none()
dims = (
    st.integers(0, 6)
    | st.sampled_from(HUGE)
    | st.integers(-3, -1)
    | st.booleans()
    | st.sampled_from([1.0, 2.5, "3", None])
)
shapes = st.lists(dims, max_size=3) | st.sampled_from([None, 4, "4", {}])


@st.composite
def tensor_headers(draw: st.DrawFn, hostile: bool | None = None) -> tuple[bytes, bytes]:
    """A header JSON object of a few tensors, then their data.

    A clean file is consistent (offsets follow the byte lengths) so it is often accepted: its shapes may
    still hold huge dimensions next to a zero. A hostile one (a third of them) gets every kind of damage.
    """
    if hostile is None:
        hostile = not draw(st.integers(0, 2))

    def sometimes(odds: int) -> bool:  # one draw in `odds`, and only in hostile files
        return hostile and not draw(st.integers(0, odds - 1))

    header: dict[str, Any] = {}
    cursor = 0
    for name in draw(st.lists(names, max_size=4, unique=True)):
        dtype = draw(dtypes if sometimes(4) else st.sampled_from(VALID_DTYPES))
        shape = draw(shapes if sometimes(4) else st.lists(st.integers(0, 5) | st.sampled_from([0, *HUGE]), max_size=3))
        length = _byte_length(dtype, shape)
        if length is None or length > 256:
            length = draw(st.integers(0, 16))
        offsets: Any = [cursor, cursor + length]
        if sometimes(4):
            offsets = draw(
                st.lists(st.integers(-2, cursor + length + 2) | st.sampled_from(HUGE) | st.floats(0, 9), max_size=3)
                | st.sampled_from([None, "0,4", {"0": 4}])
            )
        info: dict[str, Any] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        if sometimes(8):
            del info[draw(st.sampled_from(sorted(info)))]
        if not draw(st.integers(0, 7)):  # an unknown key, ignored by both readers when its value is plain JSON
            info[draw(st.sampled_from(["extra", "offsets", "Dtype"]))] = draw(json_values)
        header[name] = draw(st.sampled_from([[], "x", 3])) if sometimes(8) else info
        cursor += length
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            st.dictionaries(st.text(max_size=5), json_values, max_size=2) | json_values
            if sometimes(2)
            else st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3) | st.none()
        )
    items = draw(st.permutations(list(header.items())))
    text = json.dumps(dict(items), ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))
    raw = text.encode() + b" " * draw(st.integers(0, 7))
    data = draw(st.binary(min_size=cursor, max_size=cursor))
    if sometimes(2):
        data += draw(st.sampled_from([b"\x00", b"\x00" * 8]))
    if data and sometimes(2):
        data = data[: draw(st.integers(0, len(data) - 1))]
    return container(raw), data


@st.composite
def mutated_headers(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A consistent file with a few bytes of its header replaced, inserted or deleted: JSON edge cases."""
    file, data = draw(tensor_headers(hostile=False))
    raw = bytearray(file[8:])
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(raw)))
        piece = draw(st.sampled_from([b"-", b"0", b"-0", b"1e3", b".5", b"\\", b"\\u00", b"\xff", b"[", b"{", b","]))
        cut = draw(st.integers(0, 2))
        raw[where : where + cut] = piece
    return container(bytes(raw)), data


raw_files = st.one_of(
    st.binary(max_size=64).map(lambda b: (b, b"")),  # anything at all, even shorter than 8 bytes
    st.tuples(st.binary(max_size=64), st.binary(max_size=16)).map(lambda p: (container(p[0]), p[1])),
    st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=32)).map(lambda p: (struct.pack("<Q", p[0]), p[1])),
)
files = st.one_of(tensor_headers(), tensor_headers(), mutated_headers(), raw_files)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # write nothing into the project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.safetensors"


def _write(path: Path, parts: tuple[bytes, bytes]) -> bytes:
    content = parts[0] + parts[1]
    path.write_bytes(content)
    return content


def _read_ours(path: Path) -> Layout:
    with open(path, "rb") as stream:
        return SafetensorsReader().read_layout(stream, path.stat().st_size, path.name)


@FUZZ
@given(parts=files)
@example(parts=(container(b"[" * 100_000), b""))
@example(parts=(container(b'{"w": ' * 50_000), b""))
@example(parts=(container(b"{}", length=2**64 - 1), b""))
@example(parts=(b"", b""))
def test_reader_returns_layout_or_raises_malformed(parts: tuple[bytes, bytes], scratch: Path) -> None:
    _write(scratch, parts)
    try:
        layout = _read_ours(scratch)
    except MalformedContainer:
        return
    assert isinstance(layout, Layout)


def _open_theirs(path: Path) -> tuple[list[str], dict[str, bytes]] | None:
    """The tensor names and the raw bytes of the tensors numpy can hold, or None if safetensors refuses."""
    try:
        handle = safe_open(str(path), "np")  # the package validates the whole header here
    except Exception:
        return None
    with handle as f:
        keys = list(f.keys())
        found = {}
        for name in keys:
            sliced = f.get_slice(name)
            if sliced.get_dtype() in NUMPY_DTYPES and all(d < 2**31 for d in sliced.get_shape()):
                found[name] = f.get_tensor(name).tobytes()
    return sorted(keys), found


def _agree(path: Path, content: bytes) -> None:
    why = ""
    try:
        layout: Layout | None = _read_ours(path)
    except MalformedContainer as exc:
        layout, why = None, exc.reason
    ours_accepts = layout is not None and layout.expected_size == len(content)
    theirs = _open_theirs(path)
    header_len = struct.unpack("<Q", content[:8])[0] if len(content) >= 8 else 0
    raw_header = content[8 : 8 + header_len]
    if ours_accepts:
        assert layout is not None
        assert theirs is not None, f"accepted here, refused by safetensors: header {raw_header!r}"
        names, tensor_bytes = theirs
        assert sorted(t.name for t in layout.tensors) == names
        for tensor in layout.tensors:
            if tensor.name in tensor_bytes:
                assert content[tensor.start : tensor.end] == tensor_bytes[tensor.name], tensor
    elif theirs is not None and not _duplicate_keys(raw_header):
        reason = "cut short" if layout is not None else why
        pytest.fail(f"refused here ({reason}), opened by safetensors: header {raw_header!r}")


@settings(FUZZ, max_examples=500)  # about 1 clean file in 130 hits a divergence known today
@given(parts=files)
@example(parts=(container({"w": entry()}), DATA))
@example(parts=(container({"__metadata__": {"k": "v"}, "w": entry("F4", (8,), (0, 4))}), DATA))
@example(parts=(container({"a": entry("C64", (1,), (0, 8)), "b": entry("U8", (0,), (8, 8))}), DATA * 2))
@example(parts=(container({"w": entry("F6_E2M3", (4,), (0, 3))}), DATA[:3]))
def test_reader_agrees_with_safetensors(parts: tuple[bytes, bytes], scratch: Path) -> None:
    _agree(scratch, _write(scratch, parts))


def test_reader_agrees_with_files_written_by_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "written.safetensors"
    rng = np.random.default_rng(3)
    tensors = {
        "f16": rng.standard_normal((3, 5)).astype(np.float16),
        "i64": np.arange(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float64),
        "c64": np.array([1 + 2j], dtype=np.complex64),
        "bool": np.array([True, False, True]),
    }
    save_file(tensors, str(path), metadata={"format": "np"})
    layout = _read_ours(path)
    assert layout.expected_size == path.stat().st_size
    assert layout.metadata == {"format": "np"}
    _agree(path, path.read_bytes())


# Headers the safetensors package refuses (its JSON parser is serde_json: no NaN or Infinity, no lone
# surrogates, integers only for sizes, nesting at most 128 deep; sizes are usize, checked for overflow) but
# that Python's json module and the reader's checks let through. Each must be refused here too.
ONE = json.dumps(entry("U8", (1,), (0, 1)))[:-1].encode()  # '{"dtype": ..., "data_offsets": [0, 1]'
REFUSED_BY_SAFETENSORS = {
    "NaN-in-entry": container(b'{"w": ' + ONE + b', "extra": NaN}}', b"x"),
    "Infinity-in-entry": container(b'{"w": ' + ONE + b', "extra": -Infinity}}', b"x"),
    "number-out-of-float-range-in-entry": container(b'{"w": ' + ONE + b', "extra": 1e400}}', b"x"),
    "lone-surrogate-tensor-name": container(b'{"\\ud800": ' + ONE + b"}}", b"x"),
    "lone-surrogate-in-metadata": container(b'{"__metadata__": {"k": "\\udc00"}, "w": ' + ONE + b"}}", b"x"),
    "negative-zero-dimension": container(b'{"w": {"dtype": "U8", "shape": [-0], "data_offsets": [0, 0]}}'),
    "negative-zero-offset": container(b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [-0, 1]}}', b"x"),
    "dimension-2**64-times-zero": container({"w": entry("U8", (2**64, 0), (0, 0))}),
    "shape-product-overflows-before-zero": container({"w": entry("U8", (2**32, 2**32, 0), (0, 0))}),
    "nesting-deeper-than-128-in-entry": container(b'{"w": ' + ONE + b', "x": ' + b"[" * 200 + b"]" * 200 + b"}}", b"x"),
}


@pytest.mark.parametrize("content", REFUSED_BY_SAFETENSORS.values(), ids=REFUSED_BY_SAFETENSORS.keys())
def test_reader_refuses_what_safetensors_refuses(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "refused.safetensors"
    path.write_bytes(content)
    assert _open_theirs(path) is None, "the safetensors package was expected to refuse this file"
    with pytest.raises(MalformedContainer):
        _read_ours(path)


# ---------------------------------------------------------------- within 60 s and 1 GiB (tests/support/limits.py)


def _safetensors(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


HEADER_BYTES = 99_000_000


SAFETENSORS_REFUSED = {
    "99MB-empty-list": (b"[]" + b" " * (HEADER_BYTES - 2), "header is not a JSON object"),
    "99MB-list-of-objects": (b"[" + b"{}," * (HEADER_BYTES // 3 - 1) + b"{}]", "header is not a JSON object"),
    "99MB-object-of-tiny-entries": (
        b"{" + b",".join(b'"%08d":{}' % i for i in range(HEADER_BYTES // 14)) + b"}",
        "too many JSON values",
    ),
    "99MB-metadata-of-tiny-strings": (
        b'{"__metadata__":{' + b",".join(b'"%07d":""' % i for i in range(HEADER_BYTES // 13)) + b"}}",
        "too many JSON values",
    ),
    "99MB-deep-list-in-object": (b'{"a":' + b"[" * (HEADER_BYTES - 5), "too many JSON values"),
}


@pytest.mark.parametrize("case", sorted(SAFETENSORS_REFUSED))
def test_huge_safetensors_header_is_refused_within_bounds(case: str, tmp_path: Path) -> None:
    header, wrong = SAFETENSORS_REFUSED[case]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(_safetensors(header))
    refused(bounded("fingerprint", path, "-o", tmp_path / "m.json"), "hostile.safetensors", wrong)


def test_large_safetensors_metadata_within_budget_is_read(tmp_path: Path) -> None:
    """A header of a million metadata entries (~30 MB) is parsed, as the safetensors package parses it."""
    metadata = {f"k{i:07d}": f"v{i}" for i in range(1_000_000)}
    path = tmp_path / "large.safetensors"
    save_file({"w": np.arange(4, dtype=np.uint8)}, str(path), metadata=metadata)
    run = bounded("fingerprint", path, "-o", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert "1 file, 1 tensor" in run.err, run.err
