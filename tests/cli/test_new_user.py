"""What a new user meets: partial checks, words of the report, and pointers to the right command."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.conftest import CliResult

Run = Callable[..., CliResult]
SHARD2 = "model-00002-of-00003.safetensors"
SHARD3 = "model-00003-of-00003.safetensors"


def test_a_single_file_of_the_release_is_checked_alone_and_said_to_be_a_part(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    total = len(list(copy_of_release.iterdir()))
    result = run_cli("verify", copy_of_release / SHARD2, "--manifest", release_manifest, "-q")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "verdict: identical (unsigned manifest: nothing proves who published it)"
    assert lines[4].endswith(f"; part of the release: 1 of {total} files")
    assert f"part checked: 1 of {total} files of the release" in lines
    assert f"  - checked 1 of {total} files of the release; the verdict is about these files only" in lines
    assert "missing" not in result.out


def test_only_globs_check_those_files_and_damage_elsewhere_is_not_seen(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    total = len(list(copy_of_release.iterdir()))
    (copy_of_release / SHARD3).unlink()
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "*.json", "--json", "-q")
    document = json.loads(result.out)
    assert result.code == 0 and document["verdict"] == "identical"
    assert document["part"]["checked"] == f"3 of {total} files of the release"
    assert sorted(f["name"] for f in document["files"]) == [
        "config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]


def test_only_a_changed_shard_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    data = bytearray((copy_of_release / SHARD2).read_bytes())
    data[-1] ^= 1
    (copy_of_release / SHARD2).write_bytes(bytes(data))
    total = len(list(copy_of_release.iterdir()))
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "model-0000[23]*", "-q")
    assert result.code == 1
    assert result.out.splitlines()[0] == "verdict: modified (unsigned manifest: nothing proves who published it)"
    assert (
        f"  - checked 2 of {total} files of the release; the verdict is about these files only"
        in result.out.splitlines()
    )


def test_an_extra_file_matching_only_is_not_hidden(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    save_file({"lm_head.extra": np.ones(4, dtype=np.float32)}, str(copy_of_release / "model-extra.safetensors"))
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "model-*", "--json", "-q")
    assert result.code == 1 and json.loads(result.out)["verdict"] != "identical"


def test_only_matching_nothing_is_one_line_exit_2(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--only", "nothing*", "-q")
    assert result.code == 2
    assert result.err.splitlines()[-1].startswith("error: no file of the release matches --only nothing*;")


def test_missing_rows_have_no_trailing_spaces_and_counts_agree(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / SHARD3).unlink()
    lines = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q").out.splitlines()
    assert f"  missing   {SHARD3}" in lines
    assert all(line == line.rstrip() for line in lines)
    assert f"  missing   13 tensors of {SHARD3}, which is missing" in lines
    assert any(line.startswith("fetch again (109,072 bytes in 1 file;") for line in lines)


def test_a_corrupt_file_is_said_unreadable_not_lost(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    shard = copy_of_release / SHARD3
    shard.write_bytes(shard.read_bytes()[:100])
    lines = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q").out.splitlines()
    assert f"  missing   13 tensors of {SHARD3}, which cannot be read" in lines
    assert any(line.startswith(f"  - {SHARD3} cannot be read: header of ") for line in lines)


def test_verify_of_a_hub_name_points_to_audit(run_cli: Run, release_manifest: Path) -> None:
    result = run_cli("verify", "hf://acme/model", "--manifest", release_manifest, "-q")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "error: hf://acme/model is a hub repository and verify reads files on disk: "
        "`provenance audit` checks a hub repository against the manifest without downloading it"
    )


def test_version_and_completion_are_offered(run_cli: Run) -> None:
    result = run_cli("--version")
    assert result.code == 0 and result.out.startswith("provenance ") and result.out.count("\n") == 1
    assert "--install-completion" in run_cli("--help").out


def test_verify_help_lists_the_seven_verdicts_and_registry_names(run_cli: Run) -> None:
    text = " ".join(run_cli("verify", "--help").out.replace("\u2502", " ").split())
    for verdict in ("identical", "equivalent", "converted", "incomplete", "undecided", "modified", "unrelated"):
        assert verdict in text
    assert "a registry name (registry:NAME) or - for standard input" in text


def test_usage_lines_name_arguments_in_one_style(run_cli: Run) -> None:
    for command in ("fingerprint", "verify", "torrent", "identify", "import", "keygen", "sign", "diff"):
        usage = next(line for line in run_cli(command, "--help").out.splitlines() if "Usage:" in line)
        placeholders = usage.split("[OPTIONS]", 1)[1].split()
        assert placeholders and all(p.strip("{}[].") == p.strip("{}[].").upper() for p in placeholders), usage


def test_a_manifest_on_standard_input(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(release_manifest.read_bytes())))
    result = run_cli("verify", copy_of_release, "-m", "-", "-q")
    assert result.code == 0
    assert result.out.splitlines()[:2] == [
        "verdict: identical (unsigned manifest: nothing proves who published it)",
        "reference: sample-release (stdin)",
    ]
    assert "warning: the manifest on standard input is unsigned" in result.err


def test_an_empty_standard_input_is_one_line(
    run_cli: Run, copy_of_release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    result = run_cli("verify", copy_of_release, "-m", "-", "-q")
    assert result.code == 2
    assert result.err == "error: standard input is empty; pipe a manifest or signature bundle into `-m -`\n"


def test_sign_reads_standard_input_and_writes_the_bundle_to_stdout(
    run_cli: Run, release_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("keygen", tmp_path / "k").code == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(release_manifest.read_bytes())))
    result = run_cli("sign", "-", "--key", tmp_path / "k.key")
    assert result.code == 0
    (tmp_path / "m.sig").write_text(result.out)
    checked = run_cli("verify", tmp_path / "none", "-m", tmp_path / "m.sig", "--key", tmp_path / "k.pub", "-q")
    assert checked.code == 2  # the bundle opens and its signature checks; the folder is what is missing
    assert checked.err.endswith("does not exist; give the checkpoint's directory or file\n")


def test_import_without_output_writes_the_manifest_to_stdout(run_cli: Run, tmp_path: Path) -> None:
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("0" * 64 + "  model.safetensors\n")
    result = run_cli("import", sums)
    assert result.code == 0
    assert json.loads(result.out)["subject"][0]["name"] == "SHA256SUMS"


def test_audit_without_a_target_says_so(run_cli: Run, release_manifest: Path) -> None:
    result = run_cli("audit", "--manifest", release_manifest)
    assert result.code == 2
    assert result.err == "error: audit needs a target: hf://ORG/REPO mirrors, `cache`, or --search TEXT\n"


def _sums(release: Path, tmp_path: Path) -> Path:
    """A sha256sum list of the release's weights and config, turned into a file-level manifest."""
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(release.iterdir())
        if p.suffix == ".safetensors" or p.name == "config.json"
    ]
    (tmp_path / "SHA256SUMS").write_text("".join(lines))
    return tmp_path / "SHA256SUMS"


def test_a_checksum_list_manifest_asks_for_whole_files_not_0_bytes(
    run_cli: Run, copy_of_release: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "sums.json"
    assert run_cli("import", _sums(copy_of_release, tmp_path), "-o", manifest).code == 0
    data = bytearray((copy_of_release / SHARD2).read_bytes())
    data[-1] ^= 1
    (copy_of_release / SHARD2).write_bytes(bytes(data))
    lines = run_cli("verify", copy_of_release, "--manifest", manifest, "-q").out.splitlines()
    assert (
        "fetch again (1 whole file of a size the manifest does not record; byte ranges first-last, --json has all):"
        in lines
    )
    assert f"  {SHARD2}  the whole file (the manifest records no size)" in lines


def test_diff_of_two_manifests_says_no_byte_was_read(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "sums.json"
    assert run_cli("import", _sums(copy_of_release, tmp_path), "-o", manifest).code == 0
    lines = run_cli("diff", manifest, release_manifest).out.splitlines()
    assert "evidence:  no byte read: the two manifests' recorded digests compared (sha256)" in lines
    lines = run_cli("diff", release_manifest, release_manifest).out.splitlines()
    assert (
        "evidence:  no byte read: the two manifests' recorded digests compared (blake3, sha256 and per-tensor digests)"
        in lines
    )


def _file_level_registry(release: Path, tmp_path: Path) -> Path:
    """A registry folder holding one checksum-list entry of the release (weights, config, tokenizer)."""
    folder = tmp_path / "registry"
    folder.mkdir()
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(release.iterdir())]
    (tmp_path / "SUMS").write_text("".join(lines))
    return folder


def _identify_row(run_cli: Run, candidate: Path, release: Path, tmp_path: Path) -> dict[str, object]:
    folder = tmp_path / "registry"
    if not folder.exists():
        _file_level_registry(release, tmp_path)
        assert run_cli("import", tmp_path / "SUMS", "-o", folder / "sums.json", "--name", "sums-release").code == 0
    result = run_cli("identify", candidate, "--registry", folder, "--json", "-q")
    row: dict[str, object] = next(m for m in json.loads(result.out)["matches"] if m["release"] == "sums-release")
    return row


def test_identify_file_level_entry_without_weights_evidence_is_never_modified(
    run_cli: Run, release_dir: Path, tmp_path: Path
) -> None:
    only_side = tmp_path / "side"
    only_side.mkdir()
    (only_side / "tokenizer.json").write_bytes((release_dir / "tokenizer.json").read_bytes())
    (only_side / "config.json").write_text('{"other": true}')
    assert _identify_row(run_cli, only_side, release_dir, tmp_path)["verdict"] == "undecided"
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "config.json").write_text('{"other": true}')
    assert _identify_row(run_cli, nothing, release_dir, tmp_path)["verdict"] == "unrelated"
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / SHARD2).write_bytes((release_dir / SHARD2).read_bytes())
    (weights / "config.json").write_text('{"other": true}')
    row = _identify_row(run_cli, weights, release_dir, tmp_path)
    assert row["verdict"] == "modified" and row["source"] == str(tmp_path / "registry" / "sums.json")


def _big_release(tmp_path: Path) -> tuple[Path, Path, int]:
    """One safetensors file with three 256 KiB random tensors, its plain manifest, and the offset of the
    first piece-aligned (16 KiB) block inside tensor `a`."""
    from tests.conftest import write_release_manifest

    release = tmp_path / "big"
    release.mkdir(parents=True)
    rng = np.random.default_rng(5)
    tensors = {n: rng.standard_normal(65536).astype(np.float32) for n in ("a", "b", "c")}
    save_file(tensors, str(release / "model.safetensors"))
    manifest = write_release_manifest(release, tmp_path / "big.json", name="big")
    header = 8 + int.from_bytes((release / "model.safetensors").read_bytes()[:8], "little")
    return release, manifest, -(-header // (16 << 10)) * (16 << 10)


def _zero(path: Path, start: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    data[start : start + length] = bytes(length)
    path.write_bytes(bytes(data))


def test_a_zero_filled_piece_reads_not_downloaded_yet_against_a_plain_manifest(run_cli: Run, tmp_path: Path) -> None:
    release, manifest, block = _big_release(tmp_path)
    _zero(release / "model.safetensors", block, 16 << 10)
    result = run_cli("verify", release, "--manifest", manifest, "--json", "-q")
    document = json.loads(result.out)
    assert result.code == 1 and document["verdict"] == "incomplete"
    rows = {t["name"]: (t["status"], t.get("detail")) for t in document["tensors"]}
    assert rows["a"] == ("corrupt", "zero-filled ranges at piece-aligned offsets: looks not downloaded yet")
    assert rows["b"] == rows["c"] == ("match", None)
    assert [r["file"] for r in document["refetch"]] == ["model.safetensors"]


def test_the_releases_own_zero_block_beside_a_change_is_modified_not_unfinished(run_cli: Run, tmp_path: Path) -> None:
    """A sketched manifest counts the release's zeros (over every 16th element): a block of zeros the release
    itself has, kept by a copy that changed another value of the tensor, is no sign of an unfinished download."""
    from tests.conftest import write_release_manifest

    release, _, block = _big_release(tmp_path)
    _zero(release / "model.safetensors", block, 32 << 10)  # the release's own zeros, two blocks of them
    manifest = write_release_manifest(release, tmp_path / "sketched.json", sketches=True, name="big")
    data = bytearray((release / "model.safetensors").read_bytes())
    data[block + (64 << 10)] ^= 0x40  # a value of `a` after its zeros
    (release / "model.safetensors").write_bytes(bytes(data))
    document = json.loads(run_cli("verify", release, "--manifest", manifest, "--json", "-q").out)
    assert document["verdict"] == "modified"
    assert {t["name"]: t["status"] for t in document["tensors"]}["a"] == "modified"


def test_zeros_off_piece_bounds_or_beside_a_change_stay_modified(run_cli: Run, tmp_path: Path) -> None:
    release, manifest, block = _big_release(tmp_path)
    _zero(release / "model.safetensors", block + 100, 8 << 10)  # not a whole aligned block
    assert json.loads(run_cli("verify", release, "--manifest", manifest, "--json", "-q").out)["verdict"] == "modified"
    release, manifest, block = _big_release(tmp_path / "second")
    _zero(release / "model.safetensors", block, 16 << 10)
    data = bytearray((release / "model.safetensors").read_bytes())
    data[block + (256 << 10) + 64] ^= 0x40  # a value of `b` changed besides the hole in `a`
    (release / "model.safetensors").write_bytes(bytes(data))
    assert json.loads(run_cli("verify", release, "--manifest", manifest, "--json", "-q").out)["verdict"] == "modified"
