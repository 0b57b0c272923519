"""Partial downloads: a half-downloaded release (whole shards, a zero-filled one, a short one, a missing
one) gets exact statuses and the byte ranges to fetch again; fetching them makes it identical."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manifests import manifest_from_statement
from provenance.errors import ManifestError
from tests.conftest import CliResult, write_release_manifest

Run = Callable[..., CliResult]
PIECE = 16 << 10
ZEROED = "model-00002-of-00003.safetensors"
SHORT = "model-00003-of-00003.safetensors"
WHOLE = "model-00001-of-00003.safetensors"
GONE = "tokenizer.json"
HOLE = (32768, 65536)  # two 16 KiB blocks, as a torrent client leaves pieces it has not fetched
CUT = 50_000
BLOCK_SIZE = 16 << 10


@pytest.fixture(scope="session")
def chunk_manifest(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release's manifest with chunk hashes: the BEP 52 piece layer at 16 KiB."""
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("chunks") / "release.chunks.json", PIECE)


@pytest.fixture
def half_downloaded(copy_of_release: Path) -> Path:
    """What an interrupted torrent leaves: one shard whole, one with a zero-filled hole, one short, one missing."""
    with (copy_of_release / ZEROED).open("r+b") as stream:
        stream.seek(HOLE[0])
        stream.write(bytes(HOLE[1] - HOLE[0]))
    os.truncate(copy_of_release / SHORT, CUT)
    (copy_of_release / GONE).unlink()
    return copy_of_release


def tensor_table(path: Path) -> list[tuple[str, int, int]]:
    """(name, begin, end) of each tensor, in file offsets, read with the safetensors package's own header."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as handle:
        names = list(handle.keys())
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    base = 8 + header_len
    return sorted(
        ((n, base + header[n]["data_offsets"][0], base + header[n]["data_offsets"][1]) for n in names),
        key=lambda t: t[1],
    )


def overlapping(path: Path, start: int, end: int) -> set[str]:
    return {name for name, a, b in tensor_table(path) if a < end and b > start}


def fetch(ranges: list[dict[str, Any]], release: Path, download: Path) -> None:
    """What a downloader does with the report: write each range from the source into the copy."""
    for entry in ranges:
        source = (release / entry["file"]).read_bytes()
        target = download / entry["file"]
        if not target.exists():
            target.write_bytes(b"")
        with target.open("r+b") as stream:
            for start, end in entry["ranges"]:
                stream.seek(start)
                stream.write(source[start:end])


def test_half_downloaded_release_with_chunk_hashes(
    run_cli: Run, release_dir: Path, chunk_manifest: Path, half_downloaded: Path
) -> None:
    result = run_cli("verify", half_downloaded, "--manifest", chunk_manifest, "--json")
    assert result.code == 1
    document = json.loads(result.out)
    assert document["verdict"] == "incomplete"
    files = {f["name"]: (f["status"], f.get("detail")) for f in document["files"]}
    assert files[WHOLE] == ("match", None)
    assert files[ZEROED] == ("corrupt", "32,768 bytes zero-filled: not downloaded yet")
    assert files[SHORT] == ("corrupt", f"cut short: {CUT:,} of {(release_dir / SHORT).stat().st_size:,} bytes")
    assert files[GONE] == ("missing", None)

    tensors = {t["name"]: (t["status"], t.get("detail")) for t in document["tensors"]}
    holed = overlapping(release_dir / ZEROED, *HOLE)
    cut = {name for name, _, end in tensor_table(release_dir / SHORT) if end > CUT}
    assert holed and cut
    for name, (status, detail) in tensors.items():
        if name in holed:
            assert (status, detail) == ("corrupt", "zero-filled: not downloaded yet"), name
        elif name in cut:
            assert (status, detail) == ("corrupt", "cut short"), name
        else:
            assert status == "match", name

    short_size = (release_dir / SHORT).stat().st_size
    assert document["refetch"] == [
        {
            "file": ZEROED,
            "ranges": [list(HOLE)],
            "bytes": HOLE[1] - HOLE[0],
            "detail": "chunks of 16,384 bytes that differ",
        },
        {
            "file": SHORT,
            "ranges": [[CUT // PIECE * PIECE, short_size]],
            "bytes": short_size - CUT // PIECE * PIECE,
            "detail": "chunks of 16,384 bytes that differ",
        },
        {
            "file": GONE,
            "ranges": [[0, (release_dir / GONE).stat().st_size]],
            "bytes": (release_dir / GONE).stat().st_size,
            "detail": "missing: the whole file",
        },
    ]
    table = run_cli("verify", half_downloaded, "--manifest", chunk_manifest)
    assert f"  {ZEROED}  32,768 bytes: 32768-65535  chunks of 16,384 bytes that differ" in table.out

    fetch(document["refetch"], release_dir, half_downloaded)
    again = run_cli("verify", half_downloaded, "--manifest", chunk_manifest, "--json")
    assert again.code == 0, again.out
    assert json.loads(again.out)["verdict"] == "identical"
    assert json.loads(again.out)["refetch"] == []


def test_half_downloaded_release_without_chunk_hashes(
    run_cli: Run, release_dir: Path, release_manifest: Path, half_downloaded: Path
) -> None:
    """The unit is then the tensor: a tensor that is partly zeros cannot be told from a change."""
    result = run_cli("verify", half_downloaded, "--manifest", release_manifest, "--json")
    assert result.code == 1
    document = json.loads(result.out)
    assert document["verdict"] == "modified"
    tensors = {t["name"]: t["status"] for t in document["tensors"]}
    holed = overlapping(release_dir / ZEROED, *HOLE)
    table = {name: (a, b) for name, a, b in tensor_table(release_dir / ZEROED)}
    inside = {n for n in holed if HOLE[0] <= table[n][0] and table[n][1] <= HOLE[1]}
    assert inside, "the hole covers at least one whole tensor"
    for name in holed:
        assert tensors[name] == ("corrupt" if name in inside else "modified"), name
    refetch = {r["file"]: r for r in document["refetch"]}
    first = min(table[n][0] for n in holed)
    last = max(table[n][1] for n in holed)
    assert refetch[ZEROED]["ranges"] == [[first, last]]
    assert refetch[ZEROED]["detail"] == "tensors and container bytes that differ"
    assert refetch[GONE]["ranges"] == [[0, (release_dir / GONE).stat().st_size]]
    fetch(document["refetch"], release_dir, half_downloaded)
    again = run_cli("verify", half_downloaded, "--manifest", release_manifest, "--json")
    assert again.code == 0, again.out
    assert json.loads(again.out)["verdict"] == "identical"


def test_a_real_change_is_not_taken_for_a_hole(
    run_cli: Run, release_dir: Path, chunk_manifest: Path, copy_of_release: Path
) -> None:
    shard = copy_of_release / ZEROED
    data = bytearray(shard.read_bytes())
    data[70_000] ^= 0x01
    shard.write_bytes(bytes(data))
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", chunk_manifest, "--json").out)
    assert document["verdict"] == "modified"
    (changed,) = overlapping(release_dir / ZEROED, 70_000, 70_001)
    assert {t["name"]: t["status"] for t in document["tensors"]}[changed] == "modified"
    assert document["refetch"][0]["ranges"] == [[65536, 81920]]


def test_whole_files_short_and_zero_filled(
    run_cli: Run, release_dir: Path, release_manifest: Path, copy_of_release: Path
) -> None:
    """Files the manifest records whole: a zero-filled one needs all of it; a short config is not taken for
    one cut short (a small text file is rewritten, not left unfinished): modified, fetched whole."""
    os.truncate(copy_of_release / "config.json", 100)
    size = (copy_of_release / "tokenizer.json").stat().st_size
    (copy_of_release / "tokenizer.json").write_bytes(bytes(size))
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json").out)
    assert document["verdict"] == "modified"
    config_size = (release_dir / "config.json").stat().st_size
    files = {f["name"]: (f["status"], f.get("detail")) for f in document["files"]}
    assert files["tokenizer.json"] == ("corrupt", f"all {size:,} bytes zero-filled: not downloaded yet")
    assert files["config.json"] == ("modified", f"100 bytes, expected {config_size:,} (rewritten, not cut short)")
    refetch = {r["file"]: (r["ranges"], r["detail"]) for r in document["refetch"]}
    assert refetch == {
        "config.json": ([[0, config_size]], "the whole file (no finer evidence in the manifest)"),
        "tokenizer.json": ([[0, size]], "the whole file (no finer evidence in the manifest)"),
    }
    fetch(document["refetch"], release_dir, copy_of_release)
    again = json.loads(run_cli("verify", copy_of_release, "--manifest", release_manifest, "--json").out)
    assert again["verdict"] == "identical"


def test_checksum_list_without_sizes(run_cli: Run, release_dir: Path, copy_of_release: Path, tmp_path: Path) -> None:
    """A sha256sum list knows no sizes: a zero-filled file is still told apart, a missing one is fetched whole."""
    import subprocess

    names = sorted(p.name for p in release_dir.iterdir())
    listing = subprocess.run(["sha256sum", *names], cwd=release_dir, capture_output=True, text=True, check=True)
    (tmp_path / "SHA256SUMS").write_text(listing.stdout)
    manifest = tmp_path / "list.json"
    assert run_cli("import", tmp_path / "SHA256SUMS", "-o", manifest).code == 0
    size = (copy_of_release / "tokenizer.json").stat().st_size
    (copy_of_release / "tokenizer.json").write_bytes(bytes(size))
    (copy_of_release / "config.json").unlink()
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", manifest, "--json").out)
    assert document["verdict"] == "incomplete"
    files = {f["name"]: (f["status"], f.get("detail")) for f in document["files"]}
    assert files["tokenizer.json"] == ("corrupt", f"all {size:,} bytes zero-filled: not downloaded yet")
    assert files["config.json"] == ("missing", None)
    refetch = {r["file"]: (r["ranges"], r["detail"]) for r in document["refetch"]}
    assert refetch == {
        "config.json": ([], "the whole file (the manifest records no size)"),
        "tokenizer.json": ([], "the whole file (the manifest records no size)"),
    }


def _btv2_mutations() -> dict[str, tuple[Callable[[dict[str, Any]], None], str]]:
    def multi(s: dict[str, Any]) -> dict[str, Any]:
        files = s["predicate"]["weights_provenance/v1"]["files"]
        entry: dict[str, Any] = next(f for f in files if "piece_layer" in f.get("btv2", {}))
        return entry

    def single(s: dict[str, Any]) -> dict[str, Any]:
        files = s["predicate"]["weights_provenance/v1"]["files"]
        entry: dict[str, Any] = next(f for f in files if "btv2" in f and "piece_layer" not in f["btv2"])
        return entry

    def flip_layer(s: dict[str, Any]) -> None:
        layer = multi(s)["btv2"]["piece_layer"]
        layer[0] = ("0" if layer[0][0] != "0" else "1") + layer[0][1:]

    def drop_layer(s: dict[str, Any]) -> None:
        multi(s)["btv2"]["piece_layer"].pop()

    def layer_on_one_piece(s: dict[str, Any]) -> None:
        single(s)["btv2"]["piece_layer"] = [single(s)["btv2"]["pieces_root"]]

    def odd_length(s: dict[str, Any]) -> None:
        multi(s)["btv2"]["piece_length"] = 20000

    def bad_root(s: dict[str, Any]) -> None:
        multi(s)["btv2"]["pieces_root"] = "xyz"

    return {
        "layer-not-hashing-to-root": (flip_layer, "does not hash to pieces_root"),
        "layer-too-short": (drop_layer, "piece_layer holds"),
        "layer-on-a-one-piece-file": (layer_on_one_piece, "no piece_layer"),
        "piece-length-not-power-of-two": (odd_length, "power of two"),
        "root-not-hex": (bad_root, "lowercase hex"),
    }


@pytest.mark.parametrize("case", sorted(_btv2_mutations()))
def test_hostile_chunk_hashes_in_a_manifest(
    run_cli: Run, chunk_manifest: Path, copy_of_release: Path, tmp_path: Path, case: str
) -> None:
    mutate, message = _btv2_mutations()[case]
    statement = json.loads(chunk_manifest.read_text())
    mutate(statement)
    with pytest.raises(ManifestError, match=message):
        manifest_from_statement(copy.deepcopy(statement))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(statement))
    result = run_cli("verify", copy_of_release, "--manifest", bad)
    assert result.code == 2
    assert result.err.startswith("error: manifest is not valid: ") and result.err.count("\n") == 1


def test_a_change_beside_a_zeroed_block_is_still_a_change(
    run_cli: Run, release_dir: Path, chunk_manifest: Path, copy_of_release: Path
) -> None:
    """Zeroing one block next to a changed byte must not pass the change off as an unfinished download."""
    with (copy_of_release / ZEROED).open("r+b") as stream:
        stream.seek(HOLE[0])
        stream.write(bytes(BLOCK_SIZE))  # half of chunk 2 zeroed ...
        stream.seek(HOLE[0] + BLOCK_SIZE + 100)
        stream.write(b"\x01")  # ... and a byte changed in chunk 3
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", chunk_manifest, "--json").out)
    assert document["verdict"] == "modified"
    files = {f["name"]: (f["status"], f.get("detail")) for f in document["files"]}
    assert files[ZEROED] == ("modified", "bytes differ")
    changed = overlapping(release_dir / ZEROED, HOLE[0] + BLOCK_SIZE + 100, HOLE[0] + BLOCK_SIZE + 101)
    statuses = {t["name"]: t["status"] for t in document["tensors"]}
    assert {statuses[name] for name in changed} == {"modified"}


def test_zero_filled_small_file_with_chunk_hashes(
    run_cli: Run, release_dir: Path, chunk_manifest: Path, copy_of_release: Path
) -> None:
    size = (copy_of_release / "config.json").stat().st_size
    (copy_of_release / "config.json").write_bytes(bytes(size))
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", chunk_manifest, "--json").out)
    assert document["verdict"] == "incomplete"
    files = {f["name"]: (f["status"], f.get("detail")) for f in document["files"]}
    assert files["config.json"] == ("corrupt", f"all {size:,} bytes zero-filled: not downloaded yet")
    assert document["refetch"] == [
        {"file": "config.json", "ranges": [[0, size]], "bytes": size, "detail": "chunks of 16,384 bytes that differ"}
    ]


@pytest.mark.parametrize("manifest_kind", ["chunks", "plain"])
def test_longer_files_are_cut_back(
    run_cli: Run,
    release_dir: Path,
    chunk_manifest: Path,
    release_manifest: Path,
    copy_of_release: Path,
    manifest_kind: str,
) -> None:
    manifest = chunk_manifest if manifest_kind == "chunks" else release_manifest
    for name in (WHOLE, "tokenizer.json"):
        with (copy_of_release / name).open("ab") as stream:
            stream.write(b"\x07" * 1000)
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", manifest, "--json").out)
    assert document["verdict"] == "modified"
    refetch = {r["file"]: r for r in document["refetch"]}
    assert set(refetch) == {WHOLE, "tokenizer.json"}
    for name, entry in refetch.items():
        assert entry["truncate"] == (release_dir / name).stat().st_size
    for entry in document["refetch"]:
        fetch([entry], release_dir, copy_of_release)
        os.truncate(copy_of_release / entry["file"], entry["truncate"])
    assert json.loads(run_cli("verify", copy_of_release, "--manifest", manifest, "--json").out)["verdict"] == (
        "identical"
    )


def test_a_missing_empty_file_is_created(run_cli: Run, copy_of_release: Path, tmp_path: Path) -> None:
    (copy_of_release / "added_tokens.json").write_bytes(b"")
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", copy_of_release, "--torrent-v2", "-o", manifest, "-q").code == 0
    (copy_of_release / "added_tokens.json").unlink()
    document = json.loads(run_cli("verify", copy_of_release, "--manifest", manifest, "--json").out)
    assert document["verdict"] == "incomplete"
    assert document["refetch"] == [
        {"file": "added_tokens.json", "ranges": [], "bytes": 0, "detail": "missing: create it empty"}
    ]
