"""`provenance torrent`: torrents made by libtorrent (v1, v2, hybrid) checked against manifests before any
download, BEP 52 pieces roots computed here compared with libtorrent's, and hostile torrents refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bencode2
import libtorrent as lt
import pytest

from provenance._hashing.merkle import PiecesHasher
from tests.conftest import REAL_TOKENIZER, CliResult, needs_shared, write_release_manifest
from tests.support.references import json_error_or_nothing, refused_as_older
from tests.support.torrents import PIECE, make_torrent, write_torrent

Run = Callable[..., CliResult]


@pytest.fixture(scope="session")
def v2_manifest(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample release fingerprinted with BEP 52 pieces roots and a piece layer of PIECE bytes."""
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("v2") / "release.v2.manifest.json", PIECE)


def as_json(result: CliResult) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.out)
    return document


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["status"] for f in document["files"]}


# ---------------------------------------------------------------- BEP 52 hashing against libtorrent's


@pytest.mark.parametrize("piece_length", [16 << 10, 64 << 10])
def test_pieces_roots_and_layers_equal_libtorrents(tmp_path: Path, piece_length: int) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    sizes = [1, 16383, 16384, 16385, 65535, 65536, 65537, 200_000, 1 << 20]
    rng = __import__("random").Random(7)
    for i, size in enumerate(sizes):
        (folder / f"f{i}.bin").write_bytes(rng.randbytes(size))
    document = bencode2.bdecode(make_torrent(folder, "v2", piece_length))
    tree = document[b"info"][b"file tree"]
    assert len(tree) == len(sizes)
    for key, node in tree.items():
        leaf = node[b""]
        hasher = PiecesHasher(piece_length)
        data = (folder / key.decode()).read_bytes()
        for start in range(0, len(data), 10_000):  # slices that do not line up with 16 KiB blocks
            hasher.update(data[start : start + 10_000])
        pieces = hasher.finish()
        assert pieces is not None
        assert pieces.root == leaf[b"pieces root"].hex(), key
        layer = document.get(b"piece layers", {}).get(leaf[b"pieces root"], b"")
        assert pieces.layer == tuple(layer[i : i + 32].hex() for i in range(0, len(layer), 32)), key
        assert bool(pieces.layer) == (len(data) > piece_length)


def test_fingerprint_torrent_v2_writes_roots_that_follow_the_schema(
    run_cli: Run, release_dir: Path, tmp_path: Path
) -> None:
    import jsonschema

    out = tmp_path / "m.json"
    result = run_cli("fingerprint", release_dir, "--torrent-v2", "--piece-length", "32KiB", "-o", out, "-q")
    assert result.code == 0, result.err
    statement = json.loads(out.read_text())
    schema = json.loads((Path(__file__).parents[2] / "manifests" / "schema.json").read_text())
    jsonschema.validate(statement, schema)
    files = statement["predicate"]["weights_provenance/v1"]["files"]
    torrent = bencode2.bdecode(make_torrent(release_dir, "v2"))
    roots = {k.decode(): v[b""][b"pieces root"].hex() for k, v in torrent[b"info"][b"file tree"].items()}
    assert {f["name"]: f["btv2"]["pieces_root"] for f in files} == roots
    assert all(f["btv2"]["piece_length"] == PIECE for f in files)
    plain = run_cli("fingerprint", release_dir, "-q")
    assert "btv2" not in plain.out


@pytest.mark.parametrize("value", ["1000", "8KiB", "3MiB", "2GiB", "four", "-16KiB", ""])
def test_bad_piece_length_is_one_clear_line(run_cli: Run, release_dir: Path, value: str) -> None:
    result = run_cli("fingerprint", release_dir, "--torrent-v2", "--piece-length", value, "-q")
    assert result.code == 2
    assert result.err.startswith("error: ") and "--piece-length" in result.err
    assert len(result.err.strip().splitlines()) == 1


# ---------------------------------------------------------------- the matching release


def test_v2_and_hybrid_torrents_of_the_release_are_identical(
    run_cli: Run, release_dir: Path, v2_manifest: Path, tmp_path: Path
) -> None:
    for kind in ("v2", "hybrid"):
        path = write_torrent(tmp_path, release_dir, kind)
        result = run_cli("torrent", path, "--manifest", v2_manifest, "--json")
        assert result.code == 0, result.err
        document = as_json(result)
        assert document["verdict"] == "identical"
        assert set(statuses(document).values()) == {"match"}
        assert len(document["files"]) == len(list(release_dir.iterdir()))
        assert document["tensors"] == []
        assert document["signature"]["status"] == "unsigned"
        assert "pieces roots" in document["evidence"]
        info = lt.torrent_info(str(path)).info_hashes()
        assert document["torrent"]["version"] == kind
        assert document["torrent"]["infohash_v2"] == str(info.v2)
        assert document["torrent"]["infohash_v1"] == (str(info.v1) if kind == "hybrid" else None)
        assert document["torrent"]["name"] == release_dir.name
        assert document["torrent"]["size"] == sum(p.stat().st_size for p in release_dir.iterdir())
        if kind == "hybrid":
            assert "v1-only client" in result.err
        else:
            assert "v1-only client" not in result.err


def test_v1_torrent_of_the_release_is_undecided_and_says_why(
    run_cli: Run, release_dir: Path, v2_manifest: Path, tmp_path: Path
) -> None:
    path = write_torrent(tmp_path, release_dir, "v1")
    result = run_cli("torrent", path, "--manifest", v2_manifest, "--json")
    assert result.code == 1
    document = as_json(result)
    assert document["verdict"] == "undecided"
    assert set(statuses(document).values()) == {"undecided"}
    assert document["torrent"]["version"] == "v1"
    assert document["torrent"]["infohash_v1"] == str(lt.torrent_info(str(path)).info_hashes().v1)
    assert document["torrent"]["infohash_v2"] is None
    assert any("only the download can prove the content" in r for r in document["reasons"])
    table = run_cli("torrent", path, "--manifest", v2_manifest)
    assert table.code == 1
    assert "verdict: undecided" in table.out and "only the download can prove" in table.out


def test_v2_torrent_against_a_manifest_without_roots_is_undecided(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    path = write_torrent(tmp_path, release_dir, "v2")
    result = run_cli("torrent", path, "--manifest", release_manifest, "--json")
    assert result.code == 1
    document = as_json(result)
    assert document["verdict"] == "undecided"
    assert any("--torrent-v2" in r for r in document["reasons"])


# ---------------------------------------------------------------- a modified release


@pytest.fixture
def modified_release(copy_of_release: Path) -> Path:
    """The release with one byte changed in the middle of the second shard (same size)."""
    shard = copy_of_release / "model-00002-of-00003.safetensors"
    data = bytearray(shard.read_bytes())
    data[70_000] ^= 0x01
    shard.write_bytes(bytes(data))
    return copy_of_release


@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_torrent_of_a_modified_release_fails_on_the_right_file_and_piece(
    run_cli: Run, modified_release: Path, v2_manifest: Path, tmp_path: Path, kind: str
) -> None:
    path = write_torrent(tmp_path, modified_release, kind)
    result = run_cli("torrent", path, "--manifest", v2_manifest, "--json")
    assert result.code == 1
    document = as_json(result)
    assert document["verdict"] == "modified"
    files = statuses(document)
    assert files.pop("model-00002-of-00003.safetensors") == "modified"
    assert set(files.values()) == {"match"}
    (changed,) = [f for f in document["files"] if f["status"] == "modified"]
    pieces = -(-changed["size"] // PIECE)
    assert changed["detail"] == f"pieces root differs: 1 of {pieces} pieces differ ({70_000 // PIECE})"


def test_v1_torrent_of_a_modified_release_fails_on_size_or_says_it_cannot_know(
    run_cli: Run, modified_release: Path, v2_manifest: Path, tmp_path: Path
) -> None:
    same_size = run_cli("torrent", write_torrent(tmp_path, modified_release, "v1"), "--manifest", v2_manifest, "--json")
    assert same_size.code == 1
    assert as_json(same_size)["verdict"] == "undecided"  # a flipped byte: only the download can show it

    with (modified_release / "config.json").open("a") as stream:
        stream.write(" ")
    grown = run_cli(
        "torrent", write_torrent(tmp_path, modified_release, "v1", "grown"), "--manifest", v2_manifest, "--json"
    )
    assert grown.code == 1
    document = as_json(grown)
    assert document["verdict"] == "modified"
    (changed,) = [f for f in document["files"] if f["status"] == "modified"]
    assert changed["name"] == "config.json"
    assert changed["detail"] == f"the torrent has {changed['size']:,} bytes, the release {changed['size'] - 1:,}"


def test_missing_and_extra_files_in_a_torrent(
    run_cli: Run, copy_of_release: Path, v2_manifest: Path, tmp_path: Path
) -> None:
    (copy_of_release / "tokenizer.json").unlink()
    (copy_of_release / "README.md").write_text("notes\n")
    lacking = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_manifest, "--json")
    assert lacking.code == 1
    document = as_json(lacking)
    assert document["verdict"] == "incomplete"
    files = statuses(document)
    assert files["tokenizer.json"] == "missing" and files["README.md"] == "extra"
    assert sum(1 for s in files.values() if s == "match") == len(list(copy_of_release.iterdir())) - 1  # not README

    shutil.copyfile(copy_of_release / "model-00001-of-00003.safetensors", copy_of_release / "extra.safetensors")
    added = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2", "added"), "--manifest", v2_manifest)
    assert added.code == 1
    assert "verdict: undecided" in added.out
    assert "adds 1 weights or index file the release does not have, whose content only the download can show: " + (
        "extra.safetensors"
    ) in added.out.replace("\n", " ")


def test_single_file_torrent_against_a_single_file_manifest(run_cli: Run, release_dir: Path, tmp_path: Path) -> None:
    shard = tmp_path / "model.safetensors"
    shutil.copyfile(release_dir / "model-00001-of-00003.safetensors", shard)
    manifest = tmp_path / "single.json"
    assert run_cli("fingerprint", shard, "--torrent-v2", "-o", manifest, "-q").code == 0
    result = run_cli("torrent", write_torrent(tmp_path, shard, "v2"), "--manifest", manifest, "--json")
    assert result.code == 0, result.err
    assert statuses(as_json(result)) == {"model.safetensors": "match"}


# ---------------------------------------------------------------- hostile torrents


def _info_v1(files: list[dict[bytes, Any]], piece_length: int = PIECE) -> dict[bytes, Any]:
    total = sum(f[b"length"] for f in files if isinstance(f.get(b"length"), int))
    return {
        b"files": files,
        b"name": b"release",
        b"piece length": piece_length,
        b"pieces": bytes(20 * max(0, -(-total // piece_length))),
    }


def _file(path: list[bytes], length: int = 10, **extra: Any) -> dict[bytes, Any]:
    return {b"length": length, b"path": path, **extra}


def _torrent(info: Any, **top: Any) -> bytes:
    return bytes(bencode2.bencode({b"info": info, **top}))


def _v2_info(tree: dict[bytes, Any]) -> dict[bytes, Any]:
    return {b"file tree": tree, b"meta version": 2, b"name": b"release", b"piece length": 16384}


def _hostile() -> dict[str, tuple[bytes, str]]:
    root = hashlib.sha256(b"x").digest()
    long_root = hashlib.sha256(b"y").digest()
    return {
        "list-nesting-bomb": (b"l" * 200_000 + b"e" * 200_000, "bencode"),
        "dict-nesting-bomb": (b"d1:a" * 100_000 + b"i0e" + b"e" * 100_000, "bencode"),
        "huge-integer-digits": (b"d4:infod6:lengthi" + b"9" * 5000 + b"e4:name1:aee", "bencode"),
        "integer-beyond-range": (
            _torrent({b"length": 1 << 80, b"name": b"a", b"piece length": 16384, b"pieces": b""}),
            "out of range",
        ),
        "negative-length": (_torrent(_info_v1([_file([b"a"], -5)])), "negative"),
        "negative-piece-length": (
            _torrent({b"length": 1, b"name": b"a", b"piece length": -1, b"pieces": bytes(20)}),
            "piece length",
        ),
        "dot-dot-path": (_torrent(_info_v1([_file([b"..", b"etc", b"passwd"])])), "'..'"),
        "absolute-path-component": (_torrent(_info_v1([_file([b"/etc/passwd"])])), "separator"),
        "backslash-path": (_torrent(_info_v1([_file([b"..\\evil"])])), "separator"),
        "empty-path-component": (_torrent(_info_v1([_file([b"a", b""])])), "empty"),
        "dot-dot-name": (
            _torrent({b"length": 1, b"name": b"..", b"piece length": 16384, b"pieces": bytes(20)}),
            "'..'",
        ),
        "duplicate-names": (_torrent(_info_v1([_file([b"a"]), _file([b"a"])])), "twice"),
        "file-and-folder": (_torrent(_info_v1([_file([b"a"]), _file([b"a", b"b"])])), "both a file and a folder"),
        "non-utf8-name": (_torrent(_info_v1([_file([b"caf\xe9"])])), "not UTF-8"),
        "non-utf8-v2-name": (
            _torrent(_v2_info({b"\xff\xfe": {b"": {b"length": 1, b"pieces root": root}}})),
            "not UTF-8",
        ),
        "unsorted-keys": (b"d4:infod4:name1:a6:lengthi1eee", "bencode"),
        "duplicate-keys": (b"d4:infod6:lengthi1e6:lengthi2eee", "bencode"),
        "trailing-garbage": (_torrent(_info_v1([_file([b"a"])])) + b"junk", "bencode"),
        "truncated": (_torrent(_info_v1([_file([b"a"]), _file([b"b"])]))[:-20], "bencode"),
        "not-a-dictionary": (b"li1ei2ee", "not a dictionary"),
        "no-info": (bytes(bencode2.bencode({b"announce": b"x"})), "info is not a dictionary"),
        "wrong-piece-count": (
            _torrent({b"length": 100_000, b"name": b"a", b"piece length": 16384, b"pieces": bytes(20)}),
            "piece hashes",
        ),
        "symlink-entry": (_torrent(_info_v1([_file([b"a"], attr=b"l")])), "symlink"),
        "v2-piece-length-not-power-of-two": (
            _torrent({**_v2_info({b"a": {b"": {b"length": 1, b"pieces root": root}}}), b"piece length": 20000}),
            "power of two",
        ),
        "v2-bad-root-length": (_torrent(_v2_info({b"a": {b"": {b"length": 5, b"pieces root": b"short"}}})), "32-byte"),
        "v2-missing-piece-layer": (
            _torrent(_v2_info({b"a": {b"": {b"length": 40000, b"pieces root": long_root}}})),
            "piece layer",
        ),
        "v2-layer-not-hashing-to-root": (
            _torrent(
                _v2_info({b"a": {b"": {b"length": 40000, b"pieces root": long_root}}}),
                **{"piece layers": {long_root: bytes(96)}},
            ),
            "does not hash",
        ),
        "v2-file-and-folder-node": (
            _torrent(
                _v2_info(
                    {
                        b"a": {
                            b"": {b"length": 1, b"pieces root": root},
                            b"b": {b"": {b"length": 1, b"pieces root": root}},
                        }
                    }
                )
            ),
            "both a file and a folder",
        ),
        "v2-deep-folders": (_torrent(_v2_info(_deep_tree(100, root))), "nested"),
        "v1-deep-path": (_torrent(_info_v1([_file([b"a"] * 40_000)])), "nested more than 64 deep"),
        "v2-meta-version-3": (_torrent({**_v2_info({}), b"meta version": 3}), "meta version"),
        "hybrid-parts-disagree": (
            _torrent(
                {
                    **_v2_info({b"a": {b"": {b"length": 1, b"pieces root": root}}}),
                    **_info_v1([_file([b"b"], 1)]),
                    b"piece length": 16384,
                    b"name": b"release",
                }
            ),
            "different files",
        ),
    }


def _deep_tree(depth: int, root: bytes) -> dict[bytes, Any]:
    tree: dict[bytes, Any] = {b"f": {b"": {b"length": 1, b"pieces root": root}}}
    for _ in range(depth):
        tree = {b"d": tree}
    return tree


HOSTILE = _hostile()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_torrents_end_in_exit_2_with_one_line(
    run_cli: Run, release_manifest: Path, tmp_path: Path, case: str
) -> None:
    content, message = HOSTILE[case]
    path = tmp_path / f"{case}.torrent"
    path.write_bytes(content)
    result = run_cli("torrent", path, "--manifest", release_manifest)
    assert result.code == 2, (result.out, result.err)
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} is not a valid torrent: "), lines
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.err


def test_oversized_torrent_is_refused_before_reading(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "huge.torrent"
    with path.open("wb") as stream:
        stream.truncate(65 << 20)  # sparse: nothing is written, the size alone must refuse it
    result = run_cli("torrent", path, "--manifest", release_manifest)
    assert result.code == 2
    assert "larger than the 64 MiB a torrent may take" in result.err


def test_missing_torrent_file_is_one_clear_line(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    result = run_cli("torrent", tmp_path / "absent.torrent", "--manifest", release_manifest)
    assert result.code == 2
    assert result.err.startswith("error: cannot read") and "absent.torrent" in result.err


def test_padding_files_of_a_hybrid_torrent_are_not_release_files(release_dir: Path) -> None:
    from provenance._sources.torrent_file import parse_torrent

    raw = make_torrent(release_dir, "hybrid")
    v1_entries = bencode2.bdecode(raw)[b"info"][b"files"]
    assert any(b"p" in entry.get(b"attr", b"") for entry in v1_entries)  # libtorrent aligns files with pads
    torrent = parse_torrent(raw)
    assert sorted(f.path for f in torrent.files) == sorted(p.name for p in release_dir.iterdir())
    assert not any(".pad" in f.path for f in torrent.files)
    assert os.path.basename(str(release_dir)) == torrent.name


@needs_shared
def test_torrent_of_the_llama_layout_against_the_registry(run_cli: Run, tmp_path: Path) -> None:
    """The registry records digests and the sizes that were published, no roots: names and sizes only."""
    folder = tmp_path / "LLaMA"
    (folder / "7B").mkdir(parents=True)
    shutil.copyfile(REAL_TOKENIZER, folder / "tokenizer.model")
    (folder / "7B" / "params.json").write_text("{}")
    (folder / "llama.sh").write_text("#!/bin/sh\n")
    result = run_cli("torrent", write_torrent(tmp_path, folder, "v1"), "--manifest", "llama-1-7b", "--json")
    assert result.code == 1
    document = as_json(result)
    assert document["verdict"] == "modified"  # the download script is code the release's manifest does not list
    assert document["reasons"][0] == "the torrent adds 1 file a loader may pick up: llama.sh"
    files = {f["name"]: (f["status"], f.get("detail")) for f in document["files"]}
    assert files["tokenizer.model"] == ("undecided", "same size; content unknown until downloaded")
    assert files["7B/params.json"] == ("undecided", "the reference records no size; name only")
    assert files["7B/consolidated.00.pth"] == ("missing", None)
    assert files["llama.sh"] == ("extra", None)
    (folder / "llama.sh").unlink()
    plain = write_torrent(tmp_path, folder, "v1", "no-script")
    result = run_cli("torrent", plain, "--manifest", "llama-1-7b", "--json")
    document = as_json(result)
    assert (result.code, document["verdict"]) == (1, "undecided")
    assert any("in size where the manifest records one" in r for r in document["reasons"])
    assert any(r == "the torrent lacks 1 file of the release: 7B/consolidated.00.pth" for r in document["reasons"]), (
        document["reasons"]
    )


def test_a_device_or_pipe_is_not_read_as_a_torrent(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.torrent"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        result = run_cli("torrent", path, "--manifest", release_manifest)
        assert result.code == 2
        assert result.err == f"error: {path} is not a regular file; give the .torrent file\n"


def test_empty_files_in_a_torrent_against_a_list_without_sizes(run_cli: Run, release_dir: Path, tmp_path: Path) -> None:
    """A length of zero proves an empty file, and nothing else: it cannot pass for a release file."""
    import subprocess

    names = sorted(p.name for p in release_dir.iterdir())
    listing = subprocess.run(["sha256sum", *names], cwd=release_dir, capture_output=True, text=True, check=True)
    (tmp_path / "SHA256SUMS").write_text(listing.stdout)
    manifest = tmp_path / "list.json"
    assert run_cli("import", tmp_path / "SHA256SUMS", "-o", manifest).code == 0
    tree = {name.encode(): {b"": {b"length": 0}} for name in names}
    path = tmp_path / "empty.torrent"
    path.write_bytes(_torrent(_v2_info(tree)))
    result = run_cli("torrent", path, "--manifest", manifest, "--json")
    assert result.code == 1
    document = as_json(result)
    assert document["verdict"] == "modified"
    assert {f["status"] for f in document["files"]} == {"modified"}
    assert document["files"][0]["detail"] == "the torrent's file is empty, the release's is not"
    assert document["evidence"] == (
        "names and sizes from the torrent (no content downloaded; the manifest has no pieces roots)"
    )


def test_signed_manifest_and_required_key(run_cli: Run, release_dir: Path, v2_manifest: Path, tmp_path: Path) -> None:
    """`torrent` checks the manifest's signature exactly as `verify` does."""
    assert run_cli("keygen", tmp_path / "alice").code == 0
    assert run_cli("keygen", tmp_path / "mallory").code == 0
    bundle = tmp_path / "release.sig"
    assert run_cli("sign", v2_manifest, "--key", tmp_path / "alice.key", "-o", bundle).code == 0
    path = write_torrent(tmp_path, release_dir, "v2")
    good = run_cli("torrent", path, "--manifest", bundle, "--key", tmp_path / "alice.pub", "--json")
    assert good.code == 0, good.err
    assert as_json(good)["signature"]["status"] == "valid"
    wrong = run_cli("torrent", path, "--manifest", bundle, "--key", tmp_path / "mallory.pub", "--json")
    assert wrong.code == 3
    assert wrong.err.startswith("error: ") and wrong.out != ""
    json_error_or_nothing(wrong)  # --json: the error as JSON


def test_torrent_and_verify_refuse_an_older_signed_manifest(
    run_cli: Run, dated: dict[str, Path], release_dir: Path, tmp_path: Path
) -> None:
    torrent = write_torrent(tmp_path, release_dir, "v2")
    assert run_cli("verify", release_dir, "--manifest", dated["new"], "-q").code == 0
    refused_as_older(run_cli("verify", release_dir, "--manifest", dated["old"], "-q"))
    refused_as_older(run_cli("torrent", torrent, "--manifest", dated["old"]))


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
    (copy_of_release / added).write_bytes(b"payload\n")
    result = run_cli("torrent", write_torrent(tmp_path, copy_of_release, "v2"), "--manifest", v2_reference, "--json")
    document = json.loads(result.out)
    assert (result.code, document["verdict"]) == (code, verdict)
    assert {f["name"]: f["status"] for f in document["files"]}[added] == "extra"
    if verdict == "modified":
        assert document["reasons"] == [f"the torrent adds 1 file a loader may pick up: {added}"]
