"""Smaller holes: a reference named ambiguously, rollback held by every command that opens a signed
reference, control characters in `--list-globals`, names that collide under case folding, and hostile
manifests that must end in one line."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, write_release_manifest

Run = Callable[..., CliResult]


def user_dir(kind: str) -> Path:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def one_error_line(result: CliResult, code: int) -> str:
    assert (result.code, result.out) == (code, ""), (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ---------------------------------------------------------------- --manifest NAME: a file or a registry entry


@pytest.fixture
def registered(release_manifest: Path) -> str:
    """The sample release in the user's registry, as `sample`."""
    shutil.copyfile(release_manifest, user_dir("registry") / "sample.json")
    return "sample"


def test_a_bare_name_that_is_both_a_file_and_a_registry_entry_is_refused(
    run_cli: Run, registered: str, copy_of_release: Path, release_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_release_manifest(release_dir, work / registered, name="shadow")
    line = one_error_line(run_cli("verify", copy_of_release, "--manifest", registered, "--json", "-q"), 2)
    assert line == (
        "error: sample names both the file ./sample and the registry entry sample; "
        "give ./sample for the file or registry:sample for the registry entry"
    )
    for spec, reference in (("./sample", "shadow (./sample)"), ("registry:sample", "sample-release (registry:sample)")):
        result = run_cli("verify", copy_of_release, "--manifest", spec, "--json", "-q")
        report = json.loads(result.out)
        assert (result.code, report["verdict"], report["reference"]) == (0, "identical", reference)
    for command in (["torrent", work / "none.torrent"], ["audit", "hf://org/repo"]):
        assert "registry:sample" in one_error_line(run_cli(*command, "--manifest", registered), 2)


def test_a_bare_name_without_a_file_is_the_registry_entry_and_a_file_named_is_left_out_of_the_scan(
    run_cli: Run, registered: str, copy_of_release: Path, release_manifest: Path, monkeypatch: Any
) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", registered, "--json", "-q")
    assert (result.code, json.loads(result.out)["reference"]) == (0, "sample-release (sample)")
    shutil.copyfile(release_manifest, copy_of_release / "release.manifest")  # named as a path: not a candidate file
    monkeypatch.chdir(copy_of_release)
    result = run_cli("verify", ".", "--manifest", "./release.manifest", "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (0, "identical")
    assert "release.manifest" not in {f["name"] for f in report["files"]}
    line = one_error_line(run_cli("verify", ".", "--manifest", "registry:nothing-such"), 2)
    assert "nothing-such" in line and "sample" in line


def test_help_says_how_to_name_a_file_or_a_registry_entry(run_cli: Run) -> None:
    result = run_cli("verify", "--help")
    assert result.code == 0
    text = " ".join(result.out.replace("\u2502", " ").split())  # rich draws the options in a box
    assert "./NAME is always a file, registry:NAME always a registry entry" in text


def test_identify_is_not_shadowed_by_a_file_named_like_a_registry_entry(
    run_cli: Run, registered: str, copy_of_release: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / registered).write_text("not a manifest")
    (work / "llama-1").write_text("not a manifest either")
    monkeypatch.chdir(work)
    result = run_cli("identify", copy_of_release, "--json", "-q")
    assert result.code == 0, result.err
    best = json.loads(result.out)["matches"][0]
    assert (best["release"], best["verdict"]) == ("sample-release", "identical")


# ---------------------------------------------------------------- rollback: the line verify holds, everywhere


@pytest.fixture
def dated(run_cli: Run, release_manifest: Path, tmp_path: Path) -> dict[str, Path]:
    """An old and a new signed manifest of the release, by a key in the trusted-keys folder."""
    assert run_cli("keygen", tmp_path / "alice").code == 0
    shutil.copyfile(tmp_path / "alice.pub", user_dir("trusted_keys") / "alice.pub")
    signed = {}
    for label, date in (("old", "2025-01-01T00:00:00Z"), ("new", "2026-06-01T00:00:00Z")):
        statement = json.loads(release_manifest.read_text())
        statement["predicate"]["weights_provenance/v1"]["release"]["created"] = date
        (tmp_path / f"{label}.json").write_text(json.dumps(statement))
        signed[label] = tmp_path / label / "release.sig"
        signed[label].parent.mkdir()
        result = run_cli("sign", tmp_path / f"{label}.json", "--key", tmp_path / "alice.key", "-o", signed[label])
        assert result.code == 0, result.err
    return signed


def _refused_as_older(result: CliResult) -> None:
    line = one_error_line(result, 3)
    assert "2025-01-01T00:00:00Z" in line and "2026-06-01T00:00:00Z" in line and "--allow-older" in line


def test_diff_refuses_an_older_signed_manifest_as_verify_does(
    run_cli: Run, dated: dict[str, Path], release_dir: Path
) -> None:
    result = run_cli("diff", dated["new"], release_dir, "--json", "-q")
    assert (result.code, json.loads(result.out)["signature"]["status"]) == (0, "valid")
    _refused_as_older(run_cli("diff", dated["old"], release_dir, "--json", "-q"))
    _refused_as_older(run_cli("diff", release_dir, dated["old"], "--json", "-q"))
    _refused_as_older(run_cli("diff", dated["new"], dated["old"], "--json", "-q"))
    result = run_cli("diff", dated["old"], release_dir, "--json", "-q", "--allow-older")
    report = json.loads(result.out)
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "valid")
    assert "checking against the older one as asked" in result.err


def test_identify_refuses_an_older_signed_manifest(run_cli: Run, dated: dict[str, Path], release_dir: Path) -> None:
    result = run_cli("identify", release_dir, "--registry", dated["new"].parent, "--json", "-q")
    assert (result.code, json.loads(result.out)["matches"][0]["verdict"]) == (0, "identical")
    _refused_as_older(run_cli("identify", release_dir, "--registry", dated["old"].parent, "--json", "-q"))
    result = run_cli("identify", release_dir, "--registry", dated["old"].parent, "--json", "-q", "--allow-older")
    assert (result.code, json.loads(result.out)["matches"][0]["verdict"]) == (0, "identical")


def test_torrent_and_verify_refuse_an_older_signed_manifest(
    run_cli: Run, dated: dict[str, Path], release_dir: Path, tmp_path: Path
) -> None:
    from tests.checks.test_torrent import write_torrent

    torrent = write_torrent(tmp_path, release_dir, "v2")
    assert run_cli("verify", release_dir, "--manifest", dated["new"], "-q").code == 0
    _refused_as_older(run_cli("verify", release_dir, "--manifest", dated["old"], "-q"))
    _refused_as_older(run_cli("torrent", torrent, "--manifest", dated["old"]))


def _state() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "weights-provenance" / "seen-releases.json"


@pytest.mark.parametrize(
    "content",
    [b'{"sample-release": {"abc": "2026', b"\xff\xfe", b"[]", b'{"sample-release": "2026-01-01"}', b'{"r": {"k": 5}}'],
    ids=["cut-short", "not-utf8", "a-list", "entry-not-a-map", "date-not-a-string"],
)
def test_a_damaged_rollback_record_stops_the_run_and_is_never_reset(
    run_cli: Run, dated: dict[str, Path], release_dir: Path, content: bytes
) -> None:
    _state().parent.mkdir(parents=True, exist_ok=True)
    _state().write_bytes(content)
    for command in (
        ["verify", release_dir, "--manifest", dated["old"], "-q"],
        ["diff", dated["old"], release_dir, "-q"],
        ["identify", release_dir, "--registry", dated["old"].parent, "-q"],
    ):
        line = one_error_line(run_cli(*command), 2)
        assert str(_state()) in line and "restore it, or delete it to start a new record" in line
    assert _state().read_bytes() == content


def test_an_unreadable_rollback_record_stops_the_run(run_cli: Run, dated: dict[str, Path], release_dir: Path) -> None:
    _state().mkdir(parents=True)  # a folder where the record should be: reading it fails
    line = one_error_line(run_cli("verify", release_dir, "--manifest", dated["new"], "-q"), 2)
    assert str(_state()) in line and "cannot be read" in line


def test_a_missing_rollback_record_starts_one(run_cli: Run, dated: dict[str, Path], release_dir: Path) -> None:
    assert not _state().exists()
    assert run_cli("verify", release_dir, "--manifest", dated["new"], "-q").code == 0
    assert json.loads(_state().read_text())["sample-release"] != {}


# ---------------------------------------------------------------- control characters in --list-globals


def test_list_globals_escapes_control_characters_in_a_pickle_global(run_cli: Run, tmp_path: Path) -> None:
    """A global whose name carries `\\r` and an erase-line escape cannot redraw its REFUSED line as allowed."""
    forged = b"\r\x1b[2Kraw.bin: allowed  torch._utils._rebuild_tensor_v2"
    (tmp_path / "raw.bin").write_bytes(b"\x80\x02cos\nsystem" + forged + b"\n)R.")
    result = run_cli("fingerprint", tmp_path, "--list-globals")
    assert result.code == 0
    assert result.out.splitlines() == [
        "raw.bin: REFUSED  os.system\\r\\x1b[2Kraw.bin: allowed  torch._utils._rebuild_tensor_v2"
    ]
    assert "\r" not in result.out and "\x1b" not in result.out


def test_list_globals_escapes_control_characters_in_a_file_name(run_cli: Run, tmp_path: Path) -> None:
    name = "evil\x1b[1G.bin"
    (tmp_path / name).write_bytes(pickle.dumps({"x": 1}, protocol=2))
    (tmp_path / "bad\r.bin").write_bytes(b"\x80\x02cposix\nsystem\n)R.")
    result = run_cli("fingerprint", tmp_path, "--list-globals")
    assert result.code == 0
    assert "bad\\r.bin: REFUSED  posix.system" in result.out.splitlines()
    assert "\r" not in result.out and "\x1b" not in result.out


# ---------------------------------------------------------------- names colliding under case folding


PIECE = 32 << 10


@pytest.fixture(scope="module")
def v2_reference(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("v2ref") / "release.json", PIECE)


@pytest.mark.parametrize(
    ("added", "other"),
    [
        ("CONFIG.JSON", "config.json"),
        ("Config.json", "config.json"),
        ("Tokenizer.JSON", "tokenizer.json"),
    ],
)
def test_a_v2_torrent_with_names_colliding_under_case_folding_is_modified(
    run_cli: Run, copy_of_release: Path, v2_reference: Path, tmp_path: Path, added: str, other: str
) -> None:
    from tests.checks.test_torrent import write_torrent

    (copy_of_release / added).write_text('{"architectures": ["SomethingElse"]}\n')
    result = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_reference, "--json")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (1, "modified")
    files = {f["name"]: f for f in document["files"]}
    assert (files[other]["status"], files[added]["status"]) == ("modified", "extra")
    assert files[other]["detail"] == f"its name and {added}'s are one file on a case-insensitive file system"
    assert document["reasons"][0].startswith(f"names that differ only in case or Unicode form ({added} and {other})")


def test_a_v2_torrent_with_names_colliding_under_unicode_normalization_is_modified(
    run_cli: Run, copy_of_release: Path, v2_reference: Path, tmp_path: Path
) -> None:
    """macOS stores names decomposed (NFD): café.md (NFC) and café.md (NFD) land on one file there."""
    from tests.checks.test_torrent import write_torrent

    nfc, nfd = unicodedata.normalize("NFC", "café.md"), unicodedata.normalize("NFD", "café.md")
    (copy_of_release / nfc).write_text("one\n")
    (copy_of_release / nfd).write_text("two\n")
    result = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_reference, "--json")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (1, "modified")
    assert {f["name"]: f["status"] for f in document["files"]}[nfc] == "extra"
    assert "differ only in case or Unicode form" in document["reasons"][0]


def test_a_v2_torrent_without_collisions_stays_identical(
    run_cli: Run, release_dir: Path, v2_reference: Path, tmp_path: Path
) -> None:
    from tests.checks.test_torrent import write_torrent

    result = run_cli("torrent", write_torrent(tmp_path, release_dir, "v2"), "--manifest", v2_reference, "--json")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")


def test_colliding_paths_covers_files_folders_case_and_unicode_forms() -> None:
    from manifests.names import colliding_paths

    assert colliding_paths(["config.json", "model.safetensors", "sub/config.json"]) == []
    assert colliding_paths(["config.json", "CONFIG.JSON"]) == [("CONFIG.JSON", "config.json")]
    assert colliding_paths(["Model", "model/x.bin"]) == [("Model", "model/x.bin")]
    assert colliding_paths(["a/b", "A/c"]) == []  # two folders merge, no file is replaced
    assert colliding_paths(["stra\u00dfe", "STRASSE"]) == [("STRASSE", "stra\u00dfe")]
    assert colliding_paths(["\ufb01le", "file"]) == [("file", "\ufb01le")]


def _manifest_with_both(release_manifest: Path, out: Path, upper: str) -> Path:
    """The release's manifest listing config.json a second time under another case, signed resources and all."""
    from manifests.model import subject_digest

    statement = json.loads(release_manifest.read_text())
    predicate = statement["predicate"]
    entry = next(f for f in predicate["weights_provenance/v1"]["files"] if f["name"] == "config.json")
    predicate["weights_provenance/v1"]["files"].append({**entry, "name": upper})
    resource = next(r for r in predicate["resources"] if r["name"] == "config.json")
    predicate["resources"] = sorted([*predicate["resources"], {**resource, "name": upper}], key=lambda r: r["name"])
    statement["subject"][0]["digest"]["sha256"] = subject_digest(predicate["resources"])
    out.write_text(json.dumps(statement))
    return out


def test_a_manifest_listing_names_that_collide_under_case_folding_is_refused(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, tmp_path: Path
) -> None:
    bad = _manifest_with_both(release_manifest, tmp_path / "both.json", "CONFIG.JSON")
    line = one_error_line(run_cli("verify", copy_of_release, "--manifest", bad, "--json"), 2)
    assert line == (
        "error: manifest is not valid: CONFIG.JSON and config.json differ only in case or Unicode form, "
        "so on Windows or macOS one replaces the other"
    )
    statement = json.loads(bad.read_text())
    statement["predicate"].pop("weights_provenance/v1")  # model_signing's own form: resources only
    (tmp_path / "oms.json").write_text(json.dumps(statement))
    assert "differ only in case" in one_error_line(
        run_cli("verify", copy_of_release, "--manifest", tmp_path / "oms.json"), 2
    )


def test_fingerprint_refuses_a_checkpoint_whose_names_collide_under_case_folding(
    run_cli: Run, copy_of_release: Path, tmp_path: Path
) -> None:
    shutil.copyfile(copy_of_release / "config.json", copy_of_release / "Config.json")
    line = one_error_line(run_cli("fingerprint", copy_of_release, "-o", tmp_path / "m.json", "-q"), 2)
    assert "Config.json and config.json differ only in case" in line and "rename one" in line
    assert not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------- hostile manifests: one line, exit 2


def _first_tensor(statement: dict[str, Any]) -> dict[str, Any]:
    files = statement["predicate"]["weights_provenance/v1"]["files"]
    tensor: dict[str, Any] = next(f for f in files if f.get("tensors"))["tensors"][0]
    return tensor


def _set_sketch(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(statement: dict[str, Any]) -> None:
        _first_tensor(statement)["sketch"][key] = value

    return mutate


def _extension_not_an_object(statement: dict[str, Any]) -> None:
    from manifests.model import subject_digest

    statement["predicate"]["resources"] = []
    statement["predicate"]["weights_provenance/v1"] = [1]
    statement["subject"][0]["digest"]["sha256"] = subject_digest([])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set_sketch("mean", 10**400), "mean is out of the range of a float"),
        (_set_sketch("max_abs", -(10**400)), "max_abs is out of the range of a float"),
        (_set_sketch("sample", [10**400]), "sample is out of the range of a float"),
        (_extension_not_an_object, "weights_provenance/v1 must be an object"),
    ],
    ids=["huge-mean", "huge-max-abs", "huge-sample", "extension-a-list"],
)
def test_hostile_manifest_fields_are_one_line(
    run_cli: Run, release_dir: Path, copy_of_release: Path, tmp_path: Path, mutate: Any, message: str
) -> None:
    source = write_release_manifest(release_dir, tmp_path / "sketched.json", sketches=True)
    statement = json.loads(source.read_text())
    mutate(statement)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(statement))
    for command in (["verify", copy_of_release, "--manifest", bad], ["diff", bad, source]):
        line = one_error_line(run_cli(*command, "--json", "-q"), 2)
        assert line.startswith("error: manifest is not valid: ") and message in line, line


# ---------------------------------------------------------------- hostile torrents within 60 s and 1 GiB

BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cli.app import main
sys.argv = ["provenance", "torrent", sys.argv[1], "--manifest", sys.argv[2], "--json"]
main()
"""


def _bounded_torrent(torrent: Path, manifest: Path) -> CliResult:
    """`provenance torrent` in a child process held to 1 GiB of address space and 60 s."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", BOUNDED, str(torrent), str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def _shared_layer_bomb() -> bytes:
    """2,000 files naming one 8 MiB piece layer: checked once per file, it costs minutes and gigabytes."""
    import bencode2

    from manifests.pieces import layer_root

    count = 1 << 18
    nodes = [bytes(32)] * count
    root = layer_root(nodes, 16384)
    tree = {b"f%05d" % i: {b"": {b"length": count * 16384, b"pieces root": root}} for i in range(2000)}
    info = {b"file tree": tree, b"meta version": 2, b"name": b"release", b"piece length": 16384}
    return bytes(bencode2.bencode({b"info": info, b"piece layers": {root: b"".join(nodes)}}))


def _many_files() -> bytes:
    import bencode2

    root = bytes(range(32))
    tree = {b"%06d" % i: {b"": {b"length": 1, b"pieces root": root}} for i in range(50_001)}
    info = {b"file tree": tree, b"meta version": 2, b"name": b"release", b"piece length": 16384}
    return bytes(bencode2.bencode({b"info": info}))


def _value_flood() -> bytes:
    """3 million empty lists beside a valid info dictionary: 6 MB on disk, 200 bytes each once decoded."""
    return (
        b"d4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:"
        + bytes(20)
        + b"e1:xl"
        + b"le" * 3_000_000
        + b"ee"
    )


def test_a_piece_layer_named_by_many_files_is_checked_once(release_manifest: Path, tmp_path: Path) -> None:
    torrent = tmp_path / "shared.torrent"
    torrent.write_bytes(_shared_layer_bomb())
    result = _bounded_torrent(torrent, release_manifest)
    assert (result.code, json.loads(result.out)["verdict"]) == (1, "modified"), result.err[-400:]  # files added


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_many_files, "it lists more than 50,000 files, more than any release holds"),
        (_value_flood, "it holds more than 2,000,000 bencode values, more than any release needs"),
    ],
    ids=["many-files", "value-flood"],
)
def test_torrent_floods_are_refused_within_the_bound(
    release_manifest: Path, tmp_path: Path, build: Callable[[], bytes], message: str
) -> None:
    torrent = tmp_path / "flood.torrent"
    torrent.write_bytes(build())
    result = _bounded_torrent(torrent, release_manifest)
    assert (result.code, result.out) == (2, "")
    assert result.err.strip().splitlines() == [
        f"error: {torrent} is not a valid torrent: {message}; get the .torrent again from its publisher"
    ]


def test_a_download_with_names_colliding_under_case_folding_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """On a case-sensitive disk both are there; copied to Windows or macOS, either may be the config."""
    (copy_of_release / "CONFIG.JSON").write_text('{"architectures": ["SomethingElse"]}\n')
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    files = {f["name"]: f["status"] for f in report["files"]}
    assert (files["config.json"], files["CONFIG.JSON"]) == ("modified", "extra")
    assert report["reasons"] == [
        "names that differ only in case or Unicode form (CONFIG.JSON and config.json): on a case-insensitive "
        "file system (Windows, macOS) one silently replaces the other, so what loads is not what was checked",
        "1 file added: CONFIG.JSON",
    ]
    (copy_of_release / "CONFIG.JSON").unlink()
    (copy_of_release / "notes.md").write_text("a different name is no collision\n")
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")  # an inert file beside the release


@pytest.mark.parametrize(
    ("added", "verdict", "code"),
    [
        ("modeling_llama.py", "modified", 1),
        ("chat_template.jinja", "modified", 1),
        ("optimizer.pkl", "modified", 1),
        ("extra.safetensors", "undecided", 1),
        ("NOTES.md", "identical", 0),
    ],
)
def test_a_v2_torrent_adding_files_follows_the_extra_file_rule(
    run_cli: Run, copy_of_release: Path, v2_reference: Path, tmp_path: Path, added: str, verdict: str, code: int
) -> None:
    """Code, templates and pickles a loader may pick up: modified; weights whose content only the download can
    show: undecided; an inert file is listed only."""
    from tests.checks.test_torrent import write_torrent

    (copy_of_release / added).write_bytes(b"payload\n")
    result = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_reference, "--json")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (code, verdict)
    assert {f["name"]: f["status"] for f in document["files"]}[added] == "extra"
    if verdict == "modified":
        assert document["reasons"] == [f"the torrent adds 1 file(s) a loader may pick up: {added}"]
