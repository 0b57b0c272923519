"""Attacks on partial checks, zero-filled ranges, cache-snapshot symlinks, signatures on stdin and --json
errors: each asserts the safe behaviour exactly."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from provenance._sample import _tensor_range, flip_bit
from tests.conftest import CliResult
from tests.support.references import registry_of

Run = Callable[..., CliResult]
SHARD1 = "model-00001-of-00003.safetensors"
SHARD2 = "model-00002-of-00003.safetensors"
EMBED = "model.embed_tokens.weight"
BLOCK = 16 << 10


def _json(result: CliResult) -> dict[str, object]:
    document: dict[str, object] = json.loads(result.out)  # exactly one document
    return document


def _zero_block(path: Path, tensor: str) -> None:
    """Zero the first whole 16 KiB block (file offsets) inside a tensor, as an unfinished torrent leaves it."""
    start, end = _tensor_range(path, tensor)
    first = -(-start // BLOCK) * BLOCK
    assert first + BLOCK <= end
    with open(path, "r+b") as stream:
        stream.seek(first)
        stream.write(bytes(BLOCK))


# --- part of a release ---------------------------------------------------------------------------------


def test_a_single_shard_reads_as_a_part_in_json(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    (copy_of_release / SHARD2).write_bytes(b"garbage")  # another shard is broken: not checked, and said so
    result = run_cli("verify", copy_of_release / SHARD1, "-m", release_manifest, "--json", "-q")
    document = _json(result)
    assert result.code == 0
    assert document["verdict"] == "identical"
    assert document["part"] == {"checked": "1 of 7 files of the release", "files": [SHARD1]}
    assert str(document["evidence"]).endswith("part of the release: 1 of 7 files")
    assert document["reasons"][0] == (  # type: ignore[index]
        "checked 1 of 7 files of the release; the verdict is about these files only"
    )


def test_only_every_file_does_not_hide_an_extra_weights_file(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """`--only '*'` names every release file: the check must still see a file the release does not have, as
    the whole-release check does."""
    (copy_of_release / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not the release")
    whole = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    only = run_cli("verify", copy_of_release, "-m", release_manifest, "--only", "*", "--json", "-q")
    assert whole.code == 1
    assert (only.code, _json(only)["verdict"]) == (whole.code, _json(whole)["verdict"])


def test_only_cannot_escape_the_folder(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--only", "../*", "--json", "-q")
    assert result.code == 2
    assert _json(result)["error"]["code"] == "unreadable_input"  # type: ignore[index]


def test_a_part_with_a_modified_shard_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    flip_bit(copy_of_release / SHARD1, EMBED)
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--only", SHARD1, "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (1, "modified")


def test_a_part_whose_file_is_missing_is_not_green(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    (copy_of_release / SHARD1).unlink()
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--only", SHARD1, "--json", "-q")
    assert result.code == 2
    assert _json(result)["error"] == {  # not "holds no files": the folder holds the other files
        "code": "unreadable_input",
        "message": f"{copy_of_release} holds none of the files asked about ({SHARD1}): not downloaded, or under "
        "another name; the part cannot be checked",
    }


def test_a_part_with_one_of_two_files_missing_is_incomplete(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / SHARD1).unlink()
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--only", "*.safetensors", "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (1, "incomplete")


def test_a_single_file_renamed_to_another_shard_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """Shard 2's bytes under shard 1's name, checked alone: the entry of that name decides, not a match."""
    (copy_of_release / SHARD1).write_bytes((copy_of_release / SHARD2).read_bytes())
    result = run_cli("verify", copy_of_release / SHARD1, "-m", release_manifest, "--json", "-q")
    assert result.code == 1
    assert _json(result)["verdict"] not in ("identical", "equivalent", "converted")


# --- zero-filled ranges ----------------------------------------------------------------------------------


def test_zeros_in_one_shard_do_not_hide_a_modified_shard(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    _zero_block(copy_of_release / SHARD1, EMBED)
    flip_bit(copy_of_release / SHARD2, "model.layers.2.mlp.up_proj.weight")
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    document = _json(result)
    assert (result.code, document["verdict"]) == (1, "modified")


def test_zeros_do_not_hide_a_changed_tensor_in_the_same_file(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    _zero_block(copy_of_release / SHARD1, EMBED)
    flip_bit(copy_of_release / SHARD1, "model.layers.0.self_attn.q_proj.weight")
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    document = _json(result)
    assert (result.code, document["verdict"]) == (1, "modified")
    changed = [t["name"] for t in document["tensors"] if t["status"] == "modified"]  # type: ignore[attr-defined]
    assert changed == ["model.layers.0.self_attn.q_proj.weight"]


def test_zeros_where_the_sketch_says_the_release_has_none_of_them_against_a_sketch_manifest(
    run_cli: Run, copy_of_release: Path, release_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import write_release_manifest

    manifest = write_release_manifest(release_dir, tmp_path / "sk.json", sketches=True)
    _zero_block(copy_of_release / SHARD1, EMBED)
    flip_bit(copy_of_release / SHARD2, "model.layers.2.mlp.up_proj.weight")
    result = run_cli("verify", copy_of_release, "-m", manifest, "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (1, "modified")


def test_zeros_plus_one_changed_byte_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    path = copy_of_release / SHARD1
    _zero_block(path, EMBED)
    start, _ = _tensor_range(path, EMBED)
    first = -(-start // BLOCK) * BLOCK
    with open(path, "r+b") as stream:
        stream.seek(first + 100)
        stream.write(b"\x01")
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (1, "modified")


def test_zeros_alone_are_incomplete_and_name_the_tensor(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    _zero_block(copy_of_release / SHARD1, EMBED)
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (1, "incomplete")
    assert EMBED in result.out


# --- cache snapshot symlinks -----------------------------------------------------------------------------


def _cache(tmp: Path, release: Path, repo: str = "models--acme--release") -> Path:
    """A hand-made HF cache repo: blobs/NAME holding each file, snapshots/REV/NAME -> ../../blobs/NAME."""
    blobs = tmp / "hub" / repo / "blobs"
    snap = tmp / "hub" / repo / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(release.iterdir()):
        (blobs / f.name).write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../../blobs") / f.name)
    return snap


def test_a_hand_made_snapshot_is_identical(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    snap = _cache(tmp_path, release_dir)
    result = run_cli("verify", snap, "-m", release_manifest, "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (0, "identical")


@pytest.mark.parametrize("how", ["dotdot", "absolute", "other_repo", "blobs_dir_link", "loop"])
def test_snapshot_links_that_leave_the_repo_are_refused(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path, how: str
) -> None:
    snap = _cache(tmp_path, release_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / SHARD1).write_bytes((release_dir / SHARD1).read_bytes())
    link = snap / SHARD1
    link.unlink()
    if how == "dotdot":
        link.symlink_to(Path("../../../../../outside") / SHARD1)
    elif how == "absolute":
        link.symlink_to(outside / SHARD1)
    elif how == "other_repo":
        other = _cache(tmp_path, release_dir, "models--evil--other")
        link.symlink_to(Path("../../../models--evil--other/blobs") / SHARD1)
        assert other.is_dir()
    elif how == "blobs_dir_link":
        blobs = snap.parent.parent / "blobs"
        for f in blobs.iterdir():
            (outside / f.name).write_bytes(f.read_bytes())
            f.unlink()
        blobs.rmdir()
        blobs.symlink_to(outside)
        link.symlink_to(Path("../../blobs") / SHARD1)
    else:
        link.symlink_to(SHARD1)
    assert link.is_symlink()
    result = run_cli("verify", snap, "-m", release_manifest, "--json", "-q")
    assert result.code == 2
    document = _json(result)
    assert "error" in document
    assert "Traceback" not in result.err


# --- signatures and stdin --------------------------------------------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_require_signature_on_an_unsigned_manifest_exits_3(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--require-signature", "--json", "-q")
    assert result.code == 3
    assert _json(result)["error"]["code"] == "signature_error"  # type: ignore[index]


def test_require_signature_on_stdin_unsigned_exits_3(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, release_manifest.read_bytes())
    result = run_cli("verify", copy_of_release, "-m", "-", "--require-signature", "--json", "-q")
    assert result.code == 3
    assert _json(result)["error"]["code"] == "signature_error"  # type: ignore[index]


def test_a_bundle_signed_by_an_untrusted_key_on_stdin_exits_3(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("keygen", tmp_path / "mallory").code == 0
    assert run_cli("keygen", tmp_path / "alice").code == 0
    bundle = tmp_path / "m.sig"
    assert run_cli("sign", release_manifest, "--key", tmp_path / "mallory.key", "-o", bundle).code == 0
    _stdin(monkeypatch, bundle.read_bytes())
    result = run_cli("verify", copy_of_release, "-m", "-", "--key", tmp_path / "alice.pub", "--json", "-q")
    assert result.code == 3
    assert _json(result)["error"]["code"] == "signature_error"  # type: ignore[index]


def test_a_tampered_bundle_on_stdin_exits_3(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("keygen", tmp_path / "alice").code == 0
    bundle = tmp_path / "m.sig"
    assert run_cli("sign", release_manifest, "--key", tmp_path / "alice.key", "-o", bundle).code == 0
    document = json.loads(bundle.read_text())
    sig = document["dsseEnvelope"]["signatures"][0]
    sig["sig"] = ("A" if sig["sig"][0] != "A" else "B") + sig["sig"][1:]
    _stdin(monkeypatch, json.dumps(document).encode())
    result = run_cli("verify", copy_of_release, "-m", "-", "--key", tmp_path / "alice.pub", "--json", "-q")
    assert result.code == 3
    assert _json(result)["error"]["code"] == "signature_error"  # type: ignore[index]


@pytest.mark.parametrize("data", [b"", b"\x00\xff\xfe" * 1000, b"{" * 100_000, b'{"a": 1}'])
def test_hostile_stdin_manifest_is_one_json_error(
    run_cli: Run, copy_of_release: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    _stdin(monkeypatch, data)
    result = run_cli("verify", copy_of_release, "-m", "-", "--json", "-q")
    assert result.code == 2
    assert set(_json(result)) == {"error", "version"}
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_a_huge_stdin_to_verify_is_refused_bounded(
    run_cli: Run, copy_of_release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import provenance._checks.common as common

    monkeypatch.setattr(common, "STDIN_LIMIT", 1000)
    _stdin(monkeypatch, b" " * 5000)
    result = run_cli("verify", copy_of_release, "-m", "-", "--json", "-q")
    assert result.code == 2
    assert "more than 1,000 bytes" in _json(result)["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("data", [b"", b"\x00\xff\xfe" * 1000])
def test_hostile_stdin_to_sign_is_one_line(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    assert run_cli("keygen", tmp_path / "alice").code == 0
    _stdin(monkeypatch, data)
    result = run_cli("sign", "-", "--key", tmp_path / "alice.key")
    assert result.code == 2
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert result.err.startswith("error: ")


def test_a_huge_stdin_to_sign_is_refused_bounded(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import provenance._checks.common as common

    assert run_cli("keygen", tmp_path / "alice").code == 0
    monkeypatch.setattr(common, "STDIN_LIMIT", 1000)
    _stdin(monkeypatch, b" " * 5000)
    result = run_cli("sign", "-", "--key", tmp_path / "alice.key")
    assert result.code == 2
    assert "more than 1,000 bytes" in result.err


# --- --json errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "manifest",
    [b"not json", b"[]", b'{"_type": "https://in-toto.io/Statement/v1"}', b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
)
def test_bad_manifests_are_one_json_error(run_cli: Run, copy_of_release: Path, tmp_path: Path, manifest: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(manifest)
    result = run_cli("verify", copy_of_release, "-m", path, "--json", "-q")
    assert result.code == 2
    assert set(_json(result)) == {"error", "version"}
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HF_HUB_OFFLINE", "1"), ("HF_ENDPOINT", "http://no-such-host.invalid")],
    ids=["offline", "unresolvable"],
)
def test_audit_of_an_unreachable_hub_is_one_json_error(
    run_cli: Run, release_manifest: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = run_cli("audit", "hf://acme/release", "-m", release_manifest, "--json", "-q")
    assert result.code == 2
    assert set(_json(result)) == {"error", "version"}
    assert "Traceback" not in result.err


def test_verify_of_a_hub_name_is_one_json_error(run_cli: Run, release_manifest: Path) -> None:
    result = run_cli("verify", "hf://acme/release", "-m", release_manifest, "--json", "-q")
    assert result.code == 2
    assert _json(result)["error"]["code"] == "unreadable_input"  # type: ignore[index]


def test_identify_missing_path_is_one_json_error(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("identify", tmp_path / "nothere", "--json", "-q")
    assert result.code == 2
    assert set(_json(result)) == {"error", "version"}


def test_diff_missing_path_is_one_json_error(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    result = run_cli("diff", tmp_path / "nothere", release_manifest, "--json")
    assert result.code == 2
    assert set(_json(result)) == {"error", "version"}


assert os.sep == "/"


def test_an_extra_file_the_only_glob_matches_is_seen(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / "model-00004-of-00003.safetensors").write_bytes((copy_of_release / SHARD1).read_bytes())
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--only", "model-*", "--json", "-q")
    whole = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    assert (result.code, _json(result)["verdict"]) == (whole.code, _json(whole)["verdict"])
    listed = {f["name"]: f["status"] for f in _json(result)["files"]}  # type: ignore[attr-defined]
    assert listed["model-00004-of-00003.safetensors"] == "extra"


def _sha_cache(tmp: Path, release: Path) -> Path:
    """A cache laid out as huggingface_hub does: blobs named by their digest, not the file's name."""
    import hashlib

    blobs = tmp / "hub" / "models--acme--release" / "blobs"
    snap = tmp / "hub" / "models--acme--release" / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(release.iterdir()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        (blobs / digest).write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../../blobs") / digest)
    return snap


def test_one_file_of_a_snapshot_is_a_part_not_a_whole_release(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    snap = _sha_cache(tmp_path, release_dir)
    result = run_cli("verify", snap / SHARD1, "-m", release_manifest, "--json", "-q")
    document = _json(result)
    assert (result.code, document["verdict"]) == (0, "identical")
    assert document["part"] == {"checked": "1 of 7 files of the release", "files": [SHARD1]}


def test_a_snapshot_link_repointed_after_listing_is_refused(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOCTOU: the link is listed pointing at its blob, then swapped to a file outside the repository."""
    import provenance._hashing.scan as scan

    snap = _sha_cache(tmp_path, release_dir)
    outside = tmp_path / "evil.safetensors"
    outside.write_bytes((release_dir / SHARD1).read_bytes())
    listed = scan.list_files

    def list_then_swap(*args: object, **kwargs: object) -> tuple[Path, list[str]]:
        found = listed(*args, **kwargs)  # type: ignore[arg-type]
        (snap / SHARD1).unlink()
        (snap / SHARD1).symlink_to(outside)
        return found

    monkeypatch.setattr(scan, "list_files", list_then_swap)
    result = run_cli("verify", snap, "-m", release_manifest, "--json", "-q")
    assert result.code == 2
    assert _json(result)["error"]["code"] == "unsafe_path"  # type: ignore[index]


def test_a_changed_tensor_that_also_holds_zeros_is_never_green_and_is_fetched_again(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """Against a plain manifest, zeros plus a change elsewhere in the same tensor cannot be told from an
    unfinished download: the verdict is not green and the file is named to fetch again."""
    path = copy_of_release / SHARD1
    _zero_block(path, EMBED)
    flip_bit(path, EMBED, byte=2)
    result = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    document = _json(result)
    assert (result.code, document["verdict"]) == (1, "incomplete")
    start, end = _tensor_range(path, EMBED)
    # the whole tensor is to be fetched again, the changed byte with it: a refetch from the release restores it
    assert document["refetch"] == [
        {
            "file": SHARD1,
            "ranges": [[start, end]],
            "bytes": end - start,
            "detail": "tensors and container bytes that differ",
        }
    ]
    damaged = [t["name"] for t in document["tensors"] if t["status"] != "match"]  # type: ignore[attr-defined]
    assert damaged == [EMBED]


def test_diff_of_a_folder_and_an_unsigned_manifest_honours_require_signature(
    run_cli: Run, release_dir: Path, release_manifest: Path
) -> None:
    """The manifest is B: it is still the one --require-signature holds to a signature, not skipped."""
    result = run_cli("diff", release_dir, release_manifest, "--require-signature", "--json")
    assert result.code == 3
    assert _json(result)["error"]["code"] == "signature_error"  # type: ignore[index]


def test_diff_of_a_folder_and_a_manifest_signed_by_another_key_exits_3(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    assert run_cli("keygen", tmp_path / "mallory").code == 0
    assert run_cli("keygen", tmp_path / "alice").code == 0
    bundle = tmp_path / "m.sig"
    assert run_cli("sign", release_manifest, "--key", tmp_path / "mallory.key", "-o", bundle).code == 0
    result = run_cli("diff", release_dir, bundle, "--key", tmp_path / "alice.pub", "--json")
    assert result.code == 3
    assert _json(result)["error"]["code"] == "signature_error"  # type: ignore[index]


def test_identify_honours_require_signature(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    """Every entry unsigned (the bundled checksum lists and the user's manifest): nothing is left to rank."""
    registry = registry_of(release_manifest, tmp_path / "registry")
    result = run_cli("identify", release_dir, "--registry", registry, "--require-signature", "--json", "-q")
    assert result.code == 3
    error = _json(result)["error"]
    assert error["code"] == "signature_error"  # type: ignore[index]
    assert "no registry entry is signed by a trusted key" in error["message"]  # type: ignore[index]


def test_identify_with_a_key_ranks_only_entries_that_key_signed(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    """The release signed by alice is compared; mallory's bundle of it and every unsigned entry are skipped."""
    for who in ("alice", "mallory"):
        assert run_cli("keygen", tmp_path / who).code == 0
    registry = tmp_path / "registry"
    registry.mkdir()
    assert run_cli("sign", release_manifest, "--key", tmp_path / "alice.key", "-o", registry / "alice.sig").code == 0
    assert run_cli("sign", release_manifest, "--key", tmp_path / "mallory.key", "-o", registry / "m.sig").code == 0
    (registry / "unsigned.json").write_bytes(release_manifest.read_bytes())
    result = run_cli("identify", release_dir, "--registry", registry, "--key", tmp_path / "alice.pub", "--json", "-q")
    assert result.code == 0
    document = _json(result)
    sources = [m["source"] for m in document["matches"]]  # type: ignore[attr-defined]
    assert sources == [str(registry / "alice.sig")]
    assert document["matches"][0]["verdict"] == "identical"  # type: ignore[index]
    skipped = document["skipped"]
    assert any(str(registry / "m.sig") in line for line in skipped)  # type: ignore[attr-defined]
    assert any(str(registry / "unsigned.json") in line for line in skipped)  # type: ignore[attr-defined]
    assert all(line.startswith("skipped ") for line in skipped)  # type: ignore[attr-defined]


def test_identify_without_a_signature_requirement_still_ranks_unsigned_entries(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    registry = registry_of(release_manifest, tmp_path / "registry")
    result = run_cli("identify", release_dir, "--registry", registry, "--json", "-q")
    assert result.code == 0
    document = _json(result)
    assert document["skipped"] == []
    assert document["matches"][0]["verdict"] == "identical"  # type: ignore[index]


def test_zeros_in_a_shard_do_not_hide_a_changed_config(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    _zero_block(copy_of_release / SHARD1, EMBED)
    config = json.loads((copy_of_release / "config.json").read_text())
    config["rope_theta"] = 1.0
    (copy_of_release / "config.json").write_text(json.dumps(config))
    whole = run_cli("verify", copy_of_release, "-m", release_manifest, "--json", "-q")
    listed = {f["name"]: f["status"] for f in _json(whole)["files"]}  # type: ignore[attr-defined]
    assert listed["config.json"] == "modified"
    assert (whole.code, _json(whole)["verdict"]) == (1, "modified")


def test_a_bundle_signed_by_the_given_key_on_stdin_passes(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusals above are not a stdin that refuses everything: the right key's bundle is accepted."""
    assert run_cli("keygen", tmp_path / "alice").code == 0
    bundle = tmp_path / "m.sig"
    assert run_cli("sign", release_manifest, "--key", tmp_path / "alice.key", "-o", bundle).code == 0
    _stdin(monkeypatch, bundle.read_bytes())
    result = run_cli(
        "verify", copy_of_release, "-m", "-", "--key", tmp_path / "alice.pub", "--require-signature", "--json", "-q"
    )
    document = _json(result)
    assert (result.code, document["verdict"]) == (0, "identical")
    assert document["signature"]["status"] == "valid"  # type: ignore[index]
