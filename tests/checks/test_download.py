"""`provenance download`: the real huggingface_hub client against the hub-compatible server (ranges, a range
damaged once, a mirror serving other bytes, a connection cut mid-file, a gated repo) and a plain HTTP folder
server with Range support; afterwards the real `snapshot_download(local_files_only=True)` finds exactly the
verified files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import provenance
from provenance import DownloadOptions
from tests.conftest import CliResult
from tests.support.httpfolder import FolderServer
from tests.support.hubserver import FakeHub

Run = Callable[..., CliResult]
REPO = "org/release"
SHARD = "model-00002-of-00003.safetensors"
SMALL = 16 << 10  # bytes per range request in the tests: several ranges per shard, arriving out of order


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _json(result: CliResult) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.out)
    return document


def _download(run_cli: Run, source: str, manifest: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    result = run_cli("download", source, "--manifest", manifest, *args, "--json", "-q")
    return result.code, _json(result)


def _snapshot(cache: Path, repo: str = REPO) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, cache_dir=cache, local_files_only=True))


def _unverified(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*.incomplete"))


def test_a_download_lands_in_the_cache_where_the_hub_client_finds_it_offline(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    repo = hub.add_repo(REPO, files_of(release_dir))
    cache = tmp_path / "cache"
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", cache)
    assert (code, document["verdict"]) == (0, "identical")
    facts = document["download"]
    assert (
        facts["files_committed"] == len(repo.files)
        and facts["files_rejected"] == 0
        and facts["ranges_fetched_again"] == 0
    )
    assert facts["bytes_received"] == sum(len(b) for b in files_of(release_dir).values())
    snapshot = _snapshot(cache)
    assert snapshot == cache / "models--org--release" / "snapshots" / repo.commit
    assert files_of(snapshot) == files_of(release_dir)
    assert (cache / "models--org--release" / "refs" / "main").read_text() == repo.commit
    blobs = {p.name for p in (cache / "models--org--release" / "blobs").iterdir()}
    assert blobs == {repo.etag(path) for path in repo.files}  # named as the hub client names them
    assert _unverified(cache) == []


def test_files_already_in_the_cache_and_matching_are_not_fetched_again(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    cache = tmp_path / "cache"
    assert _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", cache)[0] == 0
    hub.file_bytes = 0
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", cache)
    assert (code, document["verdict"]) == (0, "identical")
    assert document["download"]["files_already_there"] == len(files_of(release_dir))
    assert hub.file_bytes == 0


def test_a_range_damaged_once_is_fetched_again_alone(
    hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    hub.corrupt_once[(REPO, SHARD)] = 70_000
    cache = tmp_path / "cache"
    done = provenance.download(
        f"hf://{REPO}", release_manifest, options=DownloadOptions(cache_dir=cache, segment=SMALL, jobs=4)
    )
    assert (done.exit_code, done.report.verdict.value) == (0, "identical")
    assert done.refetched == 1
    total = sum(len(b) for b in files_of(release_dir).values())
    assert total < done.received < total + 64 << 10  # the damaged tensor's bytes again, not the shard
    assert hub.corrupt_once == {}  # the damage was served
    assert files_of(_snapshot(cache)) == files_of(release_dir)
    assert _unverified(cache) == []


def test_a_mirror_serving_other_bytes_has_nothing_of_them_committed(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    data = bytearray((release_dir / SHARD).read_bytes())
    data[70_000] ^= 0x01
    hub.add_repo(REPO, files_of(release_dir), served={SHARD: bytes(data)})
    cache, kept = tmp_path / "cache", tmp_path / "rejected"
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", cache, "--keep-rejected", kept)
    assert (code, document["verdict"]) == (1, "modified")
    changed = [t["name"] for t in document["tensors"] if t["status"] != "match"]
    assert len(changed) == 1
    assert document["download"]["rejected"] == [SHARD]
    assert document["download"]["ranges_fetched_again"] == 1  # fetched again once, the same bytes
    snapshot = cache / "models--org--release" / "snapshots"
    committed = files_of(next(snapshot.iterdir()))
    assert SHARD not in committed and len(committed) == len(files_of(release_dir)) - 1
    blobs = {p.read_bytes() for p in (cache / "models--org--release" / "blobs").iterdir()}
    assert bytes(data) not in blobs and _unverified(cache) == []
    assert (kept / SHARD).read_bytes() == bytes(data)


def test_an_interrupted_download_resumes_and_fetches_only_the_rest(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, {SHARD: (release_dir / SHARD).read_bytes()})
    cache = tmp_path / "cache"
    hub.budget = 50_000  # every connection drops once this many bytes of the file are sent
    options = DownloadOptions(cache_dir=cache, include=(SHARD,), jobs=1, segment=SMALL)
    with pytest.raises(provenance.HubError, match="run the same command again to resume"):
        provenance.download(f"hf://{REPO}", release_manifest, options=options)
    staged = list(cache.rglob("*.incomplete"))
    assert len(staged) == 1 and staged[0].stat().st_size == 3 * SMALL  # the whole ranges that arrived
    assert not (cache / "models--org--release" / "snapshots").exists()
    hub.budget, hub.file_bytes = None, 0
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", cache, "--include", SHARD)
    assert (code, document["verdict"]) == (0, "identical")
    assert hub.file_bytes == (release_dir / SHARD).stat().st_size - 3 * SMALL
    assert _unverified(cache) == []
    assert (_snapshot(cache) / SHARD).read_bytes() == (release_dir / SHARD).read_bytes()


def test_a_broken_download_is_one_line_and_exit_2(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    hub.budget = 0
    result = run_cli("download", f"hf://{REPO}", "-m", release_manifest, "--cache-dir", tmp_path / "c", "-j", "1")
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert "run the same command again to resume" in result.err


def test_a_gated_repository_needs_the_token_and_never_shows_it(
    run_cli: Run,
    hub: FakeHub,
    release_dir: Path,
    release_manifest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    hub.gated[REPO] = "hf_gatekeeper_secret"
    refused = run_cli("download", f"hf://{REPO}", "-m", release_manifest, "--cache-dir", tmp_path / "c", "-q")
    assert refused.code == 2 and refused.err.startswith("error: hf://org/release: ") and "gated" in refused.err
    monkeypatch.setenv("HF_TOKEN", "hf_gatekeeper_secret")
    result = run_cli("download", f"hf://{REPO}", "-m", release_manifest, "--cache-dir", tmp_path / "c", "--json")
    assert (result.code, _json(result)["verdict"]) == (0, "identical")
    assert "hf_gatekeeper_secret" not in result.out + result.err


def test_a_file_the_mirror_lacks_is_missing_and_the_rest_is_committed(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    files = files_of(release_dir)
    del files["config.json"]
    hub.add_repo(REPO, files)
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", tmp_path / "cache")
    assert (code, document["verdict"]) == (1, "incomplete")
    assert {f["name"]: f["status"] for f in document["files"]}["config.json"] == "missing"
    assert document["download"]["files_committed"] == len(files)


def test_a_file_of_another_size_is_not_fetched(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    files = files_of(release_dir)
    files[SHARD] += b"\0" * 10
    hub.add_repo(REPO, files)
    code, document = _download(
        run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", tmp_path / "cache", "--include", SHARD
    )
    assert (code, document["verdict"]) == (1, "modified")
    assert hub.file_bytes == 0


def test_include_downloads_part_of_the_release_and_says_so(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    code, document = _download(
        run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", tmp_path / "cache", "--include", "*.json"
    )
    assert (code, document["verdict"]) == (0, "identical")
    of = len(files_of(release_dir))
    assert document["reasons"][0] == f"checked 3 of {of} files of the release; the verdict is about these files only"
    assert sorted(files_of(_snapshot(tmp_path / "cache"))) == [
        "config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]


def test_a_plain_http_folder_with_a_signed_link(
    run_cli: Run, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    with FolderServer(files_of(release_dir), query="Policy=p0&Signature=s3cr3t") as server:
        code, document = _download(run_cli, server.url, release_manifest, "-o", tmp_path / "dl")
        assert (code, document["verdict"]) == (0, "identical")
        got = files_of(tmp_path / "dl")
        assert {k: v for k, v in got.items() if not k.startswith(".cache/")} == files_of(release_dir)
        assert _unverified(tmp_path / "dl") == []
        assert "s3cr3t" not in json.dumps(document)


def test_a_plain_http_folder_serving_other_bytes_leaves_no_file(
    hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    with FolderServer(files_of(release_dir)) as server:
        data = bytearray((release_dir / SHARD).read_bytes())
        data[10_000] ^= 0x40
        server.served[SHARD] = bytes(data)
        done = provenance.download(
            server.url, release_manifest, options=DownloadOptions(local_dir=tmp_path / "dl", segment=SMALL)
        )
        assert (done.exit_code, done.report.verdict.value) == (1, "modified")
        assert done.rejected == (SHARD,)
        assert not (tmp_path / "dl" / SHARD).exists() and _unverified(tmp_path / "dl") == []


def test_a_url_needs_a_folder_to_write_to(run_cli: Run, release_manifest: Path) -> None:
    result = run_cli("download", "https://cdn.example/llama/", "-m", release_manifest, "--json")
    assert result.code == 2
    assert _json(result)["error"]["message"].endswith("is a plain folder URL with no cache layout: give -o DIR")


def test_from_pretrained_offline_loads_exactly_the_verified_release(hub: FakeHub, tmp_path: Path, run_cli: Run) -> None:
    """A tiny Llama saved by save_pretrained, downloaded, then loaded by transformers from the cache alone;
    from a mirror that changed one shard, the cache holds no copy of it for from_pretrained to load."""
    pytest.importorskip("torch", reason="torch is not installed: from_pretrained is the loader checked")
    pytest.importorskip("transformers", reason="transformers is not installed: from_pretrained is the loader")
    import torch
    from transformers import LlamaForCausalLM

    from tests.conftest import write_release_manifest
    from tests.support import loaders

    release = tmp_path / "release"
    state = loaders.build_release(release)
    manifest = write_release_manifest(release, tmp_path / "release.json")
    hub.add_repo("meta/tiny", files_of(release))
    code, document = _download(run_cli, "hf://meta/tiny", manifest, "--cache-dir", tmp_path / "cache")
    assert (code, document["verdict"]) == (0, "identical")
    model = LlamaForCausalLM.from_pretrained("meta/tiny", cache_dir=tmp_path / "cache", local_files_only=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], values) for name, values in state.items())

    shard = sorted(p for p in files_of(release) if p.endswith(".safetensors"))[0]
    lying = files_of(release)
    lying[shard] = lying[shard][:-4] + bytes(b ^ 0x10 for b in lying[shard][-4:])
    hub.add_repo("mirror/tiny", files_of(release), served={shard: lying[shard]})
    code, document = _download(run_cli, "hf://mirror/tiny", manifest, "--cache-dir", tmp_path / "cache")
    assert (code, document["verdict"]) == (1, "modified")
    with pytest.raises(OSError):
        LlamaForCausalLM.from_pretrained("mirror/tiny", cache_dir=tmp_path / "cache", local_files_only=True)


def test_a_revision_given_as_a_commit_is_fetched_at_that_commit_without_a_ref(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    from huggingface_hub import snapshot_download

    old = hub.add_repo(REPO, files_of(release_dir))
    hub.add_repo(REPO, {"config.json": b"{}"})  # main moves on; the old commit stays reachable
    cache = tmp_path / "cache"
    code, document = _download(run_cli, f"hf://{REPO}@{old.commit}", release_manifest, "--cache-dir", cache)
    assert (code, document["verdict"]) == (0, "identical")
    assert not (cache / "models--org--release" / "refs").exists()
    found = snapshot_download(REPO, revision=old.commit, cache_dir=cache, local_files_only=True)
    assert files_of(Path(found)) == files_of(release_dir)


def test_a_copy_the_hub_client_fetched_before_is_unlinked_when_the_mirror_is_rejected(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    """`hf download` stored the mirror's shard unchecked; the verified download rejects it and takes the
    snapshot's link to it away, so that from_pretrained cannot load it."""
    from huggingface_hub import snapshot_download

    data = bytearray((release_dir / SHARD).read_bytes())
    data[70_000] ^= 0x01
    hub.add_repo(REPO, files_of(release_dir), served={SHARD: bytes(data)})
    cache = tmp_path / "cache"
    before = Path(snapshot_download(REPO, cache_dir=cache, endpoint=hub.endpoint))
    assert (before / SHARD).read_bytes() == bytes(data)
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "--cache-dir", cache)
    assert (code, document["verdict"]) == (1, "modified")
    assert not (before / SHARD).exists() and not (before / SHARD).is_symlink()
    assert (before / "config.json").read_bytes() == (release_dir / "config.json").read_bytes()


def test_two_files_of_the_same_bytes_are_both_committed(
    run_cli: Run, hub: FakeHub, release_dir: Path, tmp_path: Path
) -> None:
    """One staging name per SHA-256: a release holding a file twice (a copy under original/) must not have
    its two downloads lock each other out."""
    from tests.conftest import write_release_manifest

    release = tmp_path / "release"
    release.mkdir()
    for name in ("config.json", SHARD):
        (release / name).write_bytes((release_dir / name).read_bytes())
    (release / "original").mkdir()
    (release / "original" / SHARD).write_bytes((release_dir / SHARD).read_bytes())
    manifest = write_release_manifest(release, tmp_path / "twice.json")
    hub.add_repo(REPO, files_of(release))
    hub.latency = 0.3  # the first copy is still arriving when the second would start
    code, document = _download(run_cli, f"hf://{REPO}", manifest, "--cache-dir", tmp_path / "cache")
    hub.latency = 0.0
    assert (code, document["verdict"]) == (0, "identical")
    assert document["download"]["files_committed"] == 3
    assert files_of(_snapshot(tmp_path / "cache")) == files_of(release)


def test_a_server_that_ignores_ranges_is_one_line_and_commits_nothing(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    hub.ignore_range = True
    cache = tmp_path / "cache"
    result = run_cli("download", f"hf://{REPO}", "-m", release_manifest, "--cache-dir", cache, "--json")
    assert result.code == 2
    assert "ignored the Range request" in _json(result)["error"]["message"]
    assert not (cache / "models--org--release" / "snapshots").exists()


def test_a_symlink_planted_in_the_folder_is_replaced_not_written_through(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, files_of(release_dir))
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "config.json").symlink_to(victim)
    code, document = _download(run_cli, f"hf://{REPO}", release_manifest, "-o", folder)
    assert (code, document["verdict"]) == (0, "identical")
    assert victim.read_text() == "untouched"
    assert not (folder / "config.json").is_symlink()


def test_a_commit_that_is_not_one_never_names_a_cache_folder(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    """A hostile hub answering `../../escape` as the commit: refused before any path is made of it."""
    repo = hub.add_repo(REPO, files_of(release_dir))
    repo.commit = "../../../escape"
    cache = tmp_path / "cache"
    result = run_cli("download", f"hf://{REPO}", "-m", release_manifest, "--cache-dir", cache, "--json")
    assert result.code == 2
    assert "not 40 hex digits" in _json(result)["error"]["message"]
    assert not (tmp_path / "escape").exists() and not cache.exists()
