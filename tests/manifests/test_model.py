"""The manifest document: OMS structure, schema, round trip, hostile contents, and safe writing."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import provenance
from manifests import EXTENSION_KEY, build_manifest, manifest_from_statement
from manifests.io import dump_json
from provenance.errors import ManifestError, UnsafePath
from tests.conftest import CliResult, write_release_manifest
from tests.support.references import json_error_or_nothing, one_error_line

Run = Callable[..., CliResult]
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "manifests" / "schema.json").read_text())


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_statement_is_oms_v1_with_one_extension(release_manifest: Path, release_dir: Path) -> None:
    statement = load(release_manifest)
    jsonschema.validate(statement, SCHEMA)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    predicate = statement["predicate"]
    assert set(predicate) == {"serialization", "resources", EXTENSION_KEY}
    assert predicate["serialization"]["method"] == "files" and predicate["serialization"]["hash_type"] == "sha256"
    names = [r["name"] for r in predicate["resources"]]
    assert names == sorted(p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*") if p.is_file())
    for resource in predicate["resources"]:
        data = (release_dir / resource["name"]).read_bytes()
        assert resource == {"algorithm": "sha256", "digest": hashlib.sha256(data).hexdigest(), "name": resource["name"]}
    expected_subject = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in predicate["resources"]))
    assert statement["subject"] == [{"name": "sample-release", "digest": {"sha256": expected_subject.hexdigest()}}]


def test_round_trip_keeps_every_fingerprint(release_dir: Path) -> None:
    checkpoint = provenance.fingerprint(release_dir)
    manifest = build_manifest(checkpoint, "r")
    again = manifest_from_statement(json.loads(json.dumps(manifest.statement())))
    assert again.checkpoint.files == checkpoint.files
    assert again.release == manifest.release
    assert again.statement() == manifest.statement()


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None], str]]:
    def ext_file(s: dict[str, Any], i: int = 0) -> dict[str, Any]:
        weights = [f for f in s["predicate"][EXTENSION_KEY]["files"] if f["role"] == "weights"]
        result: dict[str, Any] = weights[i]
        return result

    def set_resource_name(name: str) -> Callable[[dict[str, Any]], None]:
        def mutate(s: dict[str, Any]) -> None:
            s["predicate"]["resources"][0]["name"] = name

        return mutate

    def swap_digest(s: dict[str, Any]) -> None:
        r = s["predicate"]["resources"]
        r[0]["digest"], r[1]["digest"] = r[1]["digest"], r[0]["digest"]

    def drop_resource(s: dict[str, Any]) -> None:
        s["predicate"]["resources"].pop()

    def overlap(s: dict[str, Any]) -> None:
        tensors = ext_file(s)["tensors"]
        tensors[1]["begin"] = tensors[0]["begin"]

    def beyond(s: dict[str, Any]) -> None:
        ext_file(s)["tensors"][-1]["end"] = 10**12

    def bad_dtype(s: dict[str, Any]) -> None:
        ext_file(s)["tensors"][0]["dtype"] = "F128"

    def bad_hex(s: dict[str, Any]) -> None:
        ext_file(s)["tensors"][0]["blake3"] = "Z" * 64

    def bad_type(s: dict[str, Any]) -> None:
        s["predicateType"] = "https://example.com/other"

    def extension_disagrees(s: dict[str, Any]) -> None:
        ext_file(s)["digests"]["sha256"] = "0" * 64

    def duplicate_resource(s: dict[str, Any]) -> None:
        s["predicate"]["resources"].append(dict(s["predicate"]["resources"][0]))

    def not_an_object(s: dict[str, Any]) -> None:
        s["predicate"][EXTENSION_KEY]["files"] = "everything"

    return [
        ("absolute-path", set_resource_name("/etc/passwd"), "absolute"),
        ("dotdot-path", set_resource_name("../outside.txt"), "climbs out"),
        ("inner-dotdot", set_resource_name("a/../../b"), "climbs out"),
        ("unnormalized", set_resource_name("a//b"), "not normalized"),
        ("dot-part", set_resource_name("./config.json"), "not normalized"),
        ("backslash", set_resource_name("..\\x"), "backslash"),
        ("digest-swapped", swap_digest, "subject digest does not match"),
        ("resource-dropped", drop_resource, "subject digest does not match"),
        ("overlapping-tensors", overlap, "overlaps"),
        ("tensor-beyond-file", beyond, "outside the file"),
        ("unknown-dtype", bad_dtype, "unknown dtype"),
        ("bad-hex", bad_hex, "lowercase hex"),
        ("other-predicate", bad_type, "predicateType"),
        ("extension-disagrees", extension_disagrees, "disagrees with the signed resources"),
        ("duplicate-resource", duplicate_resource, "listed twice"),
        ("files-not-a-list", not_an_object, "must be a list"),
    ]


@pytest.mark.parametrize(
    ("mutate", "message"), [(m, msg) for _, m, msg in _mutations()], ids=[name for name, _, _ in _mutations()]
)
def test_hostile_manifests_are_refused_with_one_line(
    run_cli: Run,
    release_manifest: Path,
    copy_of_release: Path,
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    statement = load(release_manifest)
    mutate(statement)
    with pytest.raises((ManifestError, UnsafePath), match=message):
        manifest_from_statement(copy.deepcopy(statement))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(statement))
    result = run_cli("verify", copy_of_release, "--manifest", bad, "--json")
    assert result.code == 2
    assert result.out != ""
    json_error_or_nothing(result)  # --json: the error as JSON
    assert result.err.startswith("error: ") and result.err.count("\n") == 1 and "Traceback" not in result.err


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b"\xff\xfe", b"null", b'{"_type": 1}', b"[" * 100_000],
    ids=["empty", "cut", "list", "not-utf8", "null", "wrong-type", "nesting-bomb"],
)
def test_manifest_that_is_not_a_statement(run_cli: Run, copy_of_release: Path, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    result = run_cli("verify", copy_of_release, "--manifest", bad)
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1


def test_missing_manifest_and_missing_checkpoint(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", copy_of_release / "nope.json")
    assert (result.code, result.err.count("\n")) == (2, 1) and "does not exist" in result.err
    result = run_cli("verify", copy_of_release / "nope", "--manifest", release_manifest)
    assert (result.code, result.err.count("\n")) == (2, 1) and "does not exist" in result.err


def test_model_signing_style_statement_verifies_at_file_level(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, tmp_path: Path
) -> None:
    statement = load(release_manifest)
    del statement["predicate"][EXTENSION_KEY]
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(statement))
    result = run_cli("verify", copy_of_release, "--manifest", plain, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (0, "identical")
    assert report["tensors"] == [] and "whole-file" in report["evidence"]
    (copy_of_release / "config.json").write_text("{}")
    result = run_cli("verify", copy_of_release, "--manifest", plain, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"]) == (1, "modified")
    assert {f["name"]: f["status"] for f in report["files"]}["config.json"] == "modified"


def test_fingerprint_never_overwrites_without_force(run_cli: Run, release_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    out.write_text("precious")
    result = run_cli("fingerprint", release_dir, "-o", out, "-q")
    assert (result.code, out.read_text()) == (2, "precious")
    assert "--force" in result.err and result.err.count("\n") == 1
    result = run_cli("fingerprint", release_dir, "-o", out, "-q", "--force")
    assert result.code == 0
    assert load(out)["subject"][0]["name"] == "release"
    assert sorted(os.listdir(tmp_path)) == ["m.json"]  # no temporary file left behind
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_fingerprint_to_stdout_and_release_name(run_cli: Run, release_dir: Path) -> None:
    result = run_cli("fingerprint", release_dir, "--name", "llama-sample", "-q")
    assert result.code == 0
    statement = json.loads(result.out)
    assert statement["subject"][0]["name"] == "llama-sample"
    assert statement["predicate"][EXTENSION_KEY]["release"]["name"] == "llama-sample"


def test_symlink_leaving_the_checkpoint_is_refused(run_cli: Run, copy_of_release: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    (copy_of_release / "link.txt").symlink_to(outside)
    result = run_cli("fingerprint", copy_of_release, "-q")
    assert result.code == 2 and "leaves the checkpoint" in result.err and result.err.count("\n") == 1
    result = run_cli("fingerprint", copy_of_release, "-q", "--allow-symlinks")
    assert result.code == 0
    assert "link.txt" in [r["name"] for r in json.loads(result.out)["predicate"]["resources"]]


def test_symlink_inside_the_checkpoint_is_followed(run_cli: Run, copy_of_release: Path) -> None:
    (copy_of_release / "alias.json").symlink_to(copy_of_release / "config.json")
    result = run_cli("fingerprint", copy_of_release, "-q")
    assert result.code == 0
    resources = {r["name"]: r["digest"] for r in json.loads(result.out)["predicate"]["resources"]}
    assert resources["alias.json"] == resources["config.json"]


def test_git_files_are_ignored_as_model_signing_does(run_cli: Run, copy_of_release: Path) -> None:
    (copy_of_release / ".git").mkdir()
    (copy_of_release / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (copy_of_release / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    result = run_cli("fingerprint", copy_of_release, "-q")
    statement = json.loads(result.out)
    assert not [r for r in statement["predicate"]["resources"] if r["name"].startswith(".git")]
    assert ".git" in statement["predicate"]["serialization"]["ignore_paths"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_dump_json_round_trips(value: Any) -> None:
    assert json.loads(dump_json(value)) == value


def test_manifest_listing_no_files_is_refused(run_cli: Run, copy_of_release: Path, tmp_path: Path) -> None:
    import hashlib as h

    empty = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "nothing", "digest": {"sha256": h.sha256(b"").hexdigest()}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False, "ignore_paths": []},
            "resources": [],
            EXTENSION_KEY: {"files": []},
        },
    }
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    result = run_cli("verify", copy_of_release, "--manifest", tmp_path / "empty.json")
    assert (result.code, result.err.count("\n")) == (2, 1) and "no files" in result.err


def test_non_utf8_file_name_is_one_clear_line(run_cli: Run, copy_of_release: Path) -> None:
    os.rename(copy_of_release / "config.json", os.path.join(os.fsencode(copy_of_release), b"conf\xffig.json"))
    result = run_cli("fingerprint", copy_of_release, "-q")
    assert (result.code, result.err.count("\n")) == (2, 1) and "UTF-8" in result.err


def test_output_that_is_a_directory_is_one_clear_line(run_cli: Run, release_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    result = run_cli("fingerprint", release_dir, "-o", tmp_path / "out", "--force", "-q")
    assert (result.code, result.err.count("\n")) == (2, 1) and "directory" in result.err


def test_symlinked_directory_is_refused_not_skipped(run_cli: Run, copy_of_release: Path, tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extra.json").write_text("{}")
    (copy_of_release / "more").symlink_to(tmp_path / "more", target_is_directory=True)
    for flags in ((), ("--allow-symlinks",)):
        result = run_cli("fingerprint", copy_of_release, "-q", *flags)
        assert (result.code, result.err.count("\n")) == (2, 1) and "symlinked directory" in result.err


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
