"""Published checksum lists as manifests, and the bundled LLaMA registry, checked with the real tools' output."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REAL_TOKENIZER, CliResult, needs_shared
from tests.support.limits import bounded, fifo, refused

Run = Callable[..., CliResult]


def checksum_output(tool: str, folder: Path, *flags: str) -> str:
    """What `tool` prints for every file below `folder`, paths relative to it (sub-folders included)."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install -y {'b3sum' if tool == 'b3sum' else 'coreutils'})")
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return subprocess.run([tool, *flags, *names], cwd=folder, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def nested_release(copy_of_release: Path) -> Path:
    (copy_of_release / "original").mkdir()
    shutil.move(copy_of_release / "config.json", copy_of_release / "original" / "config.json")
    return copy_of_release


@pytest.mark.parametrize(
    ("tool", "flags", "listname"),
    [
        ("md5sum", (), "checklist.chk"),
        ("md5sum", ("-b",), "checklist.chk"),
        ("sha256sum", (), "SHA256SUMS"),
        ("b3sum", (), "B3SUMS"),
    ],
)
def test_imported_list_verifies_the_release_and_catches_a_changed_byte(
    run_cli: Run, nested_release: Path, tmp_path: Path, tool: str, flags: tuple[str, ...], listname: str
) -> None:
    listing = tmp_path / listname
    listing.write_text(checksum_output(tool, nested_release, *flags))
    manifest = tmp_path / "imported.json"
    result = run_cli("import", listing, "-o", manifest)
    assert result.code == 0, result.err
    statement = json.loads(manifest.read_text())
    files = statement["predicate"]["weights_provenance/v1"]["files"]
    algorithm = {"md5sum": "md5", "sha256sum": "sha256", "b3sum": "blake3"}[tool]
    assert {tuple(f["digests"]) for f in files} == {(algorithm,)}
    assert "original/config.json" in [f["name"] for f in files]
    assert len(statement["predicate"]["resources"]) == (len(files) if algorithm == "sha256" else 0)
    result = run_cli("verify", nested_release, "--manifest", manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")
    assert ("weak evidence" in result.err) == (algorithm == "md5")
    config = nested_release / "original" / "config.json"
    config.write_bytes(config.read_bytes().replace(b"4", b"5", 1))
    result = run_cli("verify", nested_release, "--manifest", manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    assert {f["name"]: f["status"] for f in report["files"]}["original/config.json"] == "modified"


def test_md5_and_sha256_lists_merge_and_both_are_checked(run_cli: Run, nested_release: Path, tmp_path: Path) -> None:
    (tmp_path / "checklist.chk").write_text(checksum_output("md5sum", nested_release))
    (tmp_path / "SHA256SUMS").write_text(checksum_output("sha256sum", nested_release))
    manifest = tmp_path / "both.json"
    assert run_cli("import", tmp_path / "checklist.chk", tmp_path / "SHA256SUMS", "-o", manifest).code == 0
    files = json.loads(manifest.read_text())["predicate"]["weights_provenance/v1"]["files"]
    assert {tuple(f["digests"]) for f in files} == {("md5", "sha256")}
    result = run_cli("verify", nested_release, "--manifest", manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")
    assert "weak evidence" not in result.err


@needs_shared
def test_real_tokenizer_against_the_bundled_llama_registry(run_cli: Run, tmp_path: Path) -> None:
    download = tmp_path / "LLaMA"
    download.mkdir()
    shutil.copyfile(REAL_TOKENIZER, download / "tokenizer.model")
    result = run_cli("verify", download, "--manifest", "llama-1", "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "incomplete")
    files = {f["name"]: f["status"] for f in report["files"]}
    assert files.pop("tokenizer.model") == "match"
    assert set(files.values()) == {"missing"} and "7B/consolidated.00.pth" in files
    data = bytearray((download / "tokenizer.model").read_bytes())
    data[1000] ^= 1
    (download / "tokenizer.model").write_bytes(bytes(data))
    report = json.loads(run_cli("verify", download, "--manifest", "llama-1-7b", "--json", "-q").out)
    assert report["verdict"] == "modified"
    tokenizer = next(f for f in report["files"] if f["name"] == "tokenizer.model")
    assert tokenizer["status"] == "modified" and tokenizer["detail"] == "md5/sha256 differs"


def test_registry_names_and_unknown_names(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("verify", tmp_path, "--manifest", "llama-9")
    assert result.code == 2 and "llama-1-7b" in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"d41d8cd98f00b204e9800998ecf8427e  ../outside.txt\n", "climbs out"),
        (b"d41d8cd98f00b204e9800998ecf8427e  /etc/passwd\n", "absolute"),
        (b"not a checksum line\n", "line 1"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"d41d8cd98f00b204e9800998ecf8427e  a.bin\nffffffffffffffffffffffffffffffff  a.bin\n", "another md5"),
        (b"abc  short.bin\n", "neither md5 nor sha256"),
        (b"# only a comment\n\n", "no checksums"),
    ],
    ids=["dotdot", "absolute", "malformed", "not-utf8", "conflicting-duplicate", "odd-length", "empty"],
)
def test_hostile_checksum_lists_are_one_clear_line(run_cli: Run, tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "checklist.chk").write_bytes(content)
    result = run_cli("import", tmp_path / "checklist.chk", "-o", tmp_path / "m.json")
    assert (result.code, result.err.count("\n")) == (2, 1) and message in result.err, result.err
    assert not (tmp_path / "m.json").exists()


def test_every_registry_manifest_loads_and_follows_the_schema() -> None:
    import jsonschema

    from manifests.model import manifest_from_statement
    from manifests.reference import registry_names, registry_path

    schema = json.loads((Path(__file__).resolve().parents[2] / "manifests" / "schema.json").read_text())
    names = registry_names()
    assert {"llama-1", "llama-1-7b", "llama-1-13b", "llama-1-30b", "llama-1-65b"} <= set(names)
    for name in names:
        statement = json.loads(registry_path(name).read_text())
        jsonschema.validate(statement, schema)
        manifest = manifest_from_statement(statement)
        assert manifest.release.sources and all(set(f.digests) == {"md5", "sha256"} for f in manifest.checkpoint.files)


def test_prefix_places_a_per_model_checklist(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "checklist.chk").write_text("6efc8dab194ab59e49cd24be5574d85e  consolidated.00.pth\n")
    assert run_cli("import", tmp_path / "checklist.chk", "--prefix", "7B", "-o", tmp_path / "m.json").code == 0
    files = json.loads((tmp_path / "m.json").read_text())["predicate"]["weights_provenance/v1"]["files"]
    assert [f["name"] for f in files] == ["7B/consolidated.00.pth"]


# ---------------------------------------------------------------- within 60 s and 1 GiB (tests/support/limits.py)


MD5_LINE = b"d41d8cd98f00b204e9800998ecf8427e  f%d\n"


CHECKSUM_LISTS = {
    "lines-over-cap": (b"\n" * (16 << 20), "over 1,000,000 lines"),
    "files-over-cap": (b"".join(MD5_LINE % i for i in range(400_000)), "over 100,000"),
    "over-16-MiB": (b"d41d8cd98f00b204e9800998ecf8427e  " + b"a" * (64 << 20) + b"\n", "over 16,777,216 bytes"),
}


@pytest.mark.parametrize("case", sorted(CHECKSUM_LISTS))
def test_hostile_checksum_list_is_refused_within_bounds(case: str, tmp_path: Path) -> None:
    data, wrong = CHECKSUM_LISTS[case]
    path = tmp_path / "checklist.chk"
    path.write_bytes(data)
    refused(bounded("import", path, "-o", tmp_path / "m.json"), "checklist.chk", wrong)


def test_checksum_list_within_caps_is_imported_within_bounds(tmp_path: Path) -> None:
    path = tmp_path / "checklist.chk"
    path.write_bytes(b"".join(MD5_LINE % i for i in range(99_000)))
    run = bounded("import", path, "-o", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert "99000 files" in run.err, run.err


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_import_of_a_device_or_pipe_is_one_line(kind: str, tmp_path: Path) -> None:
    path = Path("/dev/zero") if kind == "dev-zero" else fifo(tmp_path / "checklist.chk")
    run = bounded("import", path, "-o", tmp_path / "m.json")
    refused(run, str(path), "is not a regular file")
    assert run.err == f"error: checksum list {path} is not a regular file\n"
