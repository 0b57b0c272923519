"""The fake Hub in tests/support/hubserver.py, driven by the real huggingface_hub client (no mocks): metadata, downloads
and the cache layout, ranged reads through the CDN redirect, 404s, dropped connections and ignored ranges."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    get_session,
    hf_hub_download,
    hf_hub_url,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import hf_raise_for_status, http_backoff

from tests.support.hubserver import FakeHub, Repo, git_blob_oid, lfs_pointer

REPO_ID = "acme/tiny"
CONFIG = b'{"architectures": ["Tiny"], "hidden_size": 8}\n'
WEIGHTS = bytes(range(256)) * 12  # 3072 bytes: LFS by extension
TOKENIZER = b"\x0a\x05hello" * 10  # .model: LFS by extension
EXACTLY_10K = b"a" * 10240  # 10 KiB of text: still a regular git blob
OVER_10K = b"b" * 10241  # one byte more: LFS by size
README = b"# tiny\n"
FILES = {
    "config.json": CONFIG,
    "model.safetensors": WEIGHTS,
    "tokenizer.model": TOKENIZER,
    "notes/ten.txt": EXACTLY_10K,
    "notes/deep/eleven.txt": OVER_10K,
    "README.md": README,
}
LFS_FILES = {"model.safetensors", "tokenizer.model", "notes/deep/eleven.txt"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def no_agent_registry_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """What HF_HUB_DISABLE_TELEMETRY=1 does when set before import: the client otherwise fetches
    {HF_ENDPOINT}/api/agent-harnesses (the real huggingface.co by default) the first time it builds a user-agent."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def repo(hub: FakeHub) -> Repo:
    return hub.add_repo(REPO_ID, FILES)


@pytest.fixture
def api(hub: FakeHub) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=False)


def expected_blob_oid(path: str) -> str:
    data = FILES[path]
    return git_blob_oid(lfs_pointer(sha256(data), len(data)) if path in LFS_FILES else data)


# -- the repo model -----------------------------------------------------------------------------------------------


def test_lfs_pointer_and_oids_are_what_git_computes(repo: Repo, tmp_path: Path) -> None:
    assert {p for p in FILES if repo.is_lfs(p)} == LFS_FILES
    assert repo.pointer("model.safetensors") == (
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256(WEIGHTS).encode() + b"\nsize 3072\n"
    )
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    # Check out the repo as git stores it (pointers in place of LFS files) in a throwaway repository under tmp_path.
    work = tmp_path / "checkout"
    for path in FILES:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(repo.pointer(path) if repo.is_lfs(path) else FILES[path])
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

    def run(*args: str) -> str:
        return subprocess.run([git, "-C", str(work), *args], env=env, check=True, capture_output=True, text=True).stdout

    run("init", "-q")
    run("add", "-A")
    for path in FILES:
        assert run("hash-object", path).strip() == repo.blob_oid(path) == expected_blob_oid(path)
    assert run("write-tree").strip() == repo.tree_oid("")
    assert run("rev-parse", ":notes/deep/eleven.txt").strip() == repo.blob_oid("notes/deep/eleven.txt")
    tree = run("write-tree").strip()
    assert run("rev-parse", f"{tree}:notes").strip() == repo.tree_oid("notes")
    assert run("rev-parse", f"{tree}:notes/deep").strip() == repo.tree_oid("notes/deep")


def test_commit_is_deterministic_and_revisions_resolve(hub: FakeHub) -> None:
    first = hub.add_repo(REPO_ID, FILES)
    assert len(first.commit) == 40 and int(first.commit, 16) >= 0
    assert hub.add_repo(REPO_ID, dict(FILES)).commit == first.commit
    assert hub.add_repo("acme/other", FILES).commit != first.commit
    assert hub.add_repo(REPO_ID, {**FILES, "README.md": b"changed\n"}, revision="dev").commit != first.commit
    with pytest.raises(ValueError, match="org/name"):
        hub.add_repo("no-namespace", FILES)
    with pytest.raises(ValueError, match="not in files"):
        hub.add_repo(REPO_ID, FILES, served={"missing.bin": b""})


# -- metadata through the real client -----------------------------------------------------------------------------


def test_model_info_files_metadata(api: HfApi, repo: Repo) -> None:
    info = api.model_info(REPO_ID, files_metadata=True)
    assert info.id == REPO_ID
    assert info.sha == repo.commit
    assert info.siblings is not None
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(FILES)
    for path, data in FILES.items():
        sibling = siblings[path]
        assert sibling.size == len(data)
        assert sibling.blob_id == expected_blob_oid(path)
        if path in LFS_FILES:
            assert sibling.lfs is not None
            assert sibling.lfs.sha256 == sha256(data)
            assert sibling.lfs.size == len(data)
            assert sibling.lfs.pointer_size == len(lfs_pointer(sha256(data), len(data)))
        else:
            assert sibling.lfs is None
    # Without files_metadata the Hub sends names only; the revision form of the endpoint gives the same commit.
    plain = api.model_info(REPO_ID, revision=repo.commit)
    assert plain.sha == repo.commit
    assert plain.siblings is not None
    assert {(s.rfilename, s.size, s.lfs) for s in plain.siblings} == {(p, None, None) for p in FILES}
    assert api.model_info(REPO_ID, expand=["sha"]).sha == repo.commit
    assert api.model_info(REPO_ID, expand=["sha"]).siblings is None


def test_list_repo_tree_and_get_paths_info(api: HfApi, repo: Repo) -> None:
    entries = list(api.list_repo_tree(REPO_ID, recursive=True))
    files = {e.path: e for e in entries if isinstance(e, RepoFile)}
    folders = {e.path: e.tree_id for e in entries if isinstance(e, RepoFolder)}
    assert folders == {"notes": repo.tree_oid("notes"), "notes/deep": repo.tree_oid("notes/deep")}
    assert set(files) == set(FILES)
    for path, data in FILES.items():
        entry = files[path]
        assert (entry.size, entry.blob_id) == (len(data), expected_blob_oid(path))
        assert (entry.lfs.sha256 if entry.lfs else None) == (sha256(data) if path in LFS_FILES else None)
        assert entry.xet_hash is None

    top = sorted((e.path, type(e).__name__) for e in api.list_repo_tree(REPO_ID))
    assert top == [
        ("README.md", "RepoFile"),
        ("config.json", "RepoFile"),
        ("model.safetensors", "RepoFile"),
        ("notes", "RepoFolder"),
        ("tokenizer.model", "RepoFile"),
    ]
    nested = [(e.path, type(e).__name__) for e in api.list_repo_tree(REPO_ID, "notes")]
    assert sorted(nested) == [("notes/deep", "RepoFolder"), ("notes/ten.txt", "RepoFile")]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(REPO_ID, "no/such/dir"))

    expanded = list(api.list_repo_tree(REPO_ID, "notes/deep", expand=True))
    assert [(e.path, e.last_commit.oid if e.last_commit else None) for e in expanded] == [
        ("notes/deep/eleven.txt", repo.commit)
    ]

    info = api.get_paths_info(REPO_ID, ["model.safetensors", "notes", "config.json", "absent.txt"])
    assert [e.path for e in info] == ["model.safetensors", "notes", "config.json"]
    weights, notes, config = info
    assert isinstance(weights, RepoFile) and isinstance(config, RepoFile) and isinstance(notes, RepoFolder)
    assert (weights.size, weights.blob_id, weights.lfs) == (
        files["model.safetensors"].size,
        files["model.safetensors"].blob_id,
        files["model.safetensors"].lfs,
    )
    assert weights.lfs is not None and weights.lfs.sha256 == sha256(WEIGHTS)
    assert (config.size, config.blob_id, config.lfs) == (len(CONFIG), git_blob_oid(CONFIG), None)
    assert notes.tree_id == folders["notes"]


def test_tree_and_model_list_follow_pagination(hub: FakeHub, api: HfApi, repo: Repo) -> None:
    hub.page_size = 3
    hub.reset_stats()
    paths = sorted(e.path for e in api.list_repo_tree(REPO_ID, recursive=True))
    assert paths == sorted([*FILES, "notes", "notes/deep"])  # 8 entries: pages of 3, 3 and 2
    tree_requests = [entry.path for entry in hub.log]
    assert len(tree_requests) == 3
    assert "cursor=3" in tree_requests[1] and "cursor=6" in tree_requests[2]
    assert all("recursive=true" in path for path in tree_requests)

    for name in ("acme/tiny-b", "acme/tiny-c", "acme/tiny-d", "other/unrelated"):
        hub.add_repo(name, {"config.json": CONFIG})
    found = [m.id for m in api.list_models(search="TINY")]
    assert found == ["acme/tiny", "acme/tiny-b", "acme/tiny-c", "acme/tiny-d"]
    assert [m.id for m in api.list_models(search="tiny", limit=2)] == ["acme/tiny", "acme/tiny-b"]
    assert [m.id for m in api.list_models(author="other")] == ["other/unrelated"]
    assert [m.id for m in api.list_models(filter="safetensors")] == ["acme/tiny"]
    assert [m.id for m in api.list_models(search="nothing-matches")] == []
    short = next(iter(api.list_models(search="acme/tiny")))
    assert (short.id, short.sha, short.siblings) == (REPO_ID, None, None)
    full = next(iter(api.list_models(search="acme/tiny", full=True)))
    assert full.sha == repo.commit
    assert full.siblings is not None and sorted(s.rfilename for s in full.siblings) == sorted(FILES)


# -- downloads and the cache --------------------------------------------------------------------------------------


def test_hf_hub_download_cache_layout(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    storage = cache / "models--acme--tiny"
    for path in ("model.safetensors", "config.json", "notes/deep/eleven.txt", "notes/ten.txt"):
        local = Path(hf_hub_download(REPO_ID, path, endpoint=hub.endpoint, cache_dir=cache, token=False))
        etag = sha256(FILES[path]) if path in LFS_FILES else git_blob_oid(FILES[path])
        assert etag == repo.etag(path)
        assert local == storage / "snapshots" / repo.commit / path
        assert local.is_symlink()
        assert os.readlink(local) == os.path.relpath(storage / "blobs" / etag, local.parent)
        assert local.read_bytes() == FILES[path]
    assert (storage / "refs" / "main").read_text() == repo.commit
    assert sorted(p.name for p in (storage / "blobs").iterdir()) == sorted(
        [sha256(WEIGHTS), git_blob_oid(CONFIG), sha256(OVER_10K), git_blob_oid(EXACTLY_10K)]
    )

    meta = get_hf_file_metadata(hf_hub_url(REPO_ID, "model.safetensors", endpoint=hub.endpoint), token=False)
    assert (meta.commit_hash, meta.etag, meta.size, meta.xet_file_data) == (
        repo.commit,
        sha256(WEIGHTS),
        len(WEIGHTS),
        None,
    )
    assert meta.location == f"{hub.cdn_endpoint}/lfs/{REPO_ID}/{repo.commit}/model.safetensors"
    meta = get_hf_file_metadata(hf_hub_url(REPO_ID, "config.json", endpoint=hub.endpoint), token=False)
    assert (meta.etag, meta.size) == (git_blob_oid(CONFIG), len(CONFIG))
    assert meta.location == f"{hub.endpoint}/{REPO_ID}/resolve/main/config.json"


def test_snapshot_download_and_scan_cache_dir(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = Path(snapshot_download(REPO_ID, endpoint=hub.endpoint, cache_dir=cache, token=False))
    assert folder == cache / "models--acme--tiny" / "snapshots" / repo.commit
    on_disk = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if not p.is_dir()}
    assert on_disk == FILES
    assert all((folder / p).is_symlink() for p in FILES)
    assert (cache / "models--acme--tiny" / "refs" / "main").read_text() == repo.commit
    # The client also caches the tree listing of the commit it downloaded.
    listing = json.loads((cache / "models--acme--tiny" / "trees" / f"{repo.commit}.json").read_text())
    assert listing["files"]["model.safetensors"] == {
        "size": len(WEIGHTS),
        "blob_id": expected_blob_oid("model.safetensors"),
        "lfs_sha256": sha256(WEIGHTS),
        "lfs_size": len(WEIGHTS),
    }

    report = scan_cache_dir(cache)
    assert report.warnings == []
    (cached,) = report.repos
    assert (cached.repo_id, cached.repo_type, cached.nb_files) == (REPO_ID, "model", len(FILES))
    assert cached.size_on_disk == sum(len(b) for b in FILES.values())
    (revision,) = cached.revisions
    assert (revision.commit_hash, revision.refs, revision.nb_files) == (repo.commit, frozenset({"main"}), len(FILES))
    blobs = {f.file_path.relative_to(revision.snapshot_path).as_posix(): f.blob_path.name for f in revision.files}
    assert blobs == {p: repo.etag(p) for p in FILES}


def test_the_cache_read_as_revisions_and_blobs(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    """provenance's reading of the cache: each revision's files with their blobs, and each blob against the
    ETag it is stored under (a git blob id or an LFS sha256), hashed once however often it is asked for."""
    from provenance._sources.hub_cache import BlobCheck, read_cache

    cache = tmp_path / "cache"
    folder = Path(snapshot_download(REPO_ID, endpoint=hub.endpoint, cache_dir=cache, token=False))
    contents = read_cache(cache)
    assert contents.damaged == ()
    (revision,) = contents.revisions
    assert (revision.repo_id, revision.repo_type, revision.commit, revision.refs) == (
        REPO_ID,
        "model",
        repo.commit,
        ("main",),
    )
    assert revision.path == folder and revision.files == tuple(sorted(FILES))
    assert [b.name for b in revision.blobs] == [repo.etag(p) for p in sorted(FILES)]
    blobs = BlobCheck()
    assert blobs.corrupt(revision) == ()
    for name in ("config.json", "model.safetensors"):  # one kept in git, one in LFS
        blob = (folder / name).resolve()
        data = bytearray(blob.read_bytes())
        data[0] ^= 0xFF
        os.chmod(blob, 0o644)
        blob.write_bytes(bytes(data))
    assert blobs.corrupt(revision) == ()  # each blob was hashed once: the answer is remembered
    found = dict(BlobCheck().corrupt(revision))
    assert sorted(found) == ["config.json", "model.safetensors"]
    assert found["config.json"].startswith("its bytes hash to git blob ")
    assert found["model.safetensors"].startswith("its bytes hash to sha256 ")


def test_branches_and_commits_as_revisions(hub: FakeHub, api: HfApi, repo: Repo, tmp_path: Path) -> None:
    dev = hub.add_repo(REPO_ID, {**FILES, "config.json": b"{}\n"}, revision="dev")
    assert api.model_info(REPO_ID, revision="dev").sha == dev.commit
    assert api.model_info(REPO_ID, revision=repo.commit).sha == repo.commit
    assert api.model_info(REPO_ID, revision=repo.commit[:10]).sha == repo.commit
    cache = tmp_path / "cache"
    on_dev = hf_hub_download(REPO_ID, "config.json", revision="dev", endpoint=hub.endpoint, cache_dir=cache)
    pinned = hf_hub_download(REPO_ID, "config.json", revision=repo.commit, endpoint=hub.endpoint, cache_dir=cache)
    assert Path(on_dev).read_bytes() == b"{}\n"
    assert Path(pinned).read_bytes() == CONFIG
    refs = cache / "models--acme--tiny" / "refs"
    assert sorted(p.name for p in refs.iterdir()) == ["dev"]  # a commit sha is not a ref
    assert (refs / "dev").read_text() == dev.commit
    # Moving main: the old commit stays reachable by its sha.
    moved = hub.add_repo(REPO_ID, {"config.json": b"[]\n"})
    assert api.model_info(REPO_ID).sha == moved.commit
    assert api.model_info(REPO_ID, revision=repo.commit).sha == repo.commit


# -- ranges -------------------------------------------------------------------------------------------------------


def test_ranged_get_follows_the_redirect_to_the_cdn(hub: FakeHub, repo: Repo) -> None:
    url = hf_hub_url(REPO_ID, "model.safetensors", endpoint=hub.endpoint)
    response = get_session().get(url, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert [r.status_code for r in response.history] == [302]
    assert str(response.url) == f"{hub.cdn_endpoint}/lfs/{REPO_ID}/{repo.commit}/model.safetensors"
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(WEIGHTS)}"
    assert response.content == WEIGHTS[100:200]
    redirect = response.history[0].headers
    assert redirect["X-Repo-Commit"] == repo.commit
    assert redirect["ETag"] == redirect["X-Linked-Etag"] == f'"{sha256(WEIGHTS)}"'
    assert redirect["X-Linked-Size"] == str(len(WEIGHTS))
    # The retrying helper, with a suffix and an open-ended range.
    tail = http_backoff("GET", url, headers={"Range": "bytes=-5"})
    assert (tail.status_code, tail.content) == (206, WEIGHTS[-5:])
    rest = http_backoff("GET", url, headers={"Range": "bytes=3000-"})
    assert (rest.status_code, rest.headers["Content-Range"]) == (206, "bytes 3000-3071/3072")
    assert rest.content == WEIGHTS[3000:]


def test_ranges_on_the_hub_and_unsatisfiable_ranges(hub: FakeHub, repo: Repo) -> None:
    url = hf_hub_url(REPO_ID, "config.json", endpoint=hub.endpoint)
    response = get_session().get(url, headers={"Range": "bytes=2-15"})
    assert (response.status_code, response.history) == (206, [])
    assert response.headers["Content-Range"] == f"bytes 2-15/{len(CONFIG)}"
    assert response.headers["ETag"] == f'"{git_blob_oid(CONFIG)}"'
    assert response.headers["X-Repo-Commit"] == repo.commit
    assert response.content == CONFIG[2:16]
    clipped = get_session().get(url, headers={"Range": "bytes=40-9999"})
    assert (clipped.status_code, clipped.content) == (206, CONFIG[40:])

    for target in (url, hf_hub_url(REPO_ID, "model.safetensors", endpoint=hub.endpoint)):
        size = len(CONFIG) if target == url else len(WEIGHTS)
        refused = get_session().get(target, headers={"Range": f"bytes={size}-"})
        assert refused.status_code == 416
        assert refused.headers["Content-Range"] == f"bytes */{size}"
        with pytest.raises(HfHubHTTPError) as caught:
            hf_raise_for_status(refused)
        assert caught.value.response.status_code == 416


def test_ignore_range(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    hub.ignore_range = True
    for path, data in (("config.json", CONFIG), ("model.safetensors", WEIGHTS)):
        response = get_session().get(hf_hub_url(REPO_ID, path, endpoint=hub.endpoint), headers={"Range": "bytes=1-4"})
        assert response.status_code == 200
        assert "Content-Range" not in response.headers
        assert response.content == data
    # The client's resume notices the 200, rewinds and writes the whole file once.
    cdn_url = f"{hub.cdn_endpoint}/lfs/{REPO_ID}/{repo.commit}/model.safetensors"
    for ignore in (True, False):
        hub.ignore_range = ignore
        buffer = io.BytesIO(WEIGHTS[:1000])
        buffer.seek(1000)
        http_get(cdn_url, buffer, resume_size=1000, expected_size=len(WEIGHTS))
        assert buffer.getvalue() == WEIGHTS
        assert hub.log[-1].headers["range"] == "bytes=1000-"
        assert hub.log[-1].status == (200 if ignore else 206)


# -- errors -------------------------------------------------------------------------------------------------------


def test_missing_repo_revision_and_file(hub: FakeHub, api: HfApi, repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(RepositoryNotFoundError) as missing:
        api.model_info("acme/absent")
    assert missing.value.response.status_code == 404
    assert missing.value.repo_id == "acme/absent"
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/absent", "config.json", endpoint=hub.endpoint, cache_dir=cache)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("acme/absent", endpoint=hub.endpoint, cache_dir=cache)
    with pytest.raises(RepositoryNotFoundError):
        api.get_paths_info("acme/absent", ["config.json"])

    with pytest.raises(RevisionNotFoundError) as bad_revision:
        api.model_info(REPO_ID, revision="v9")
    assert bad_revision.value.response.headers["X-Error-Code"] == "RevisionNotFound"
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO_ID, "config.json", revision="v9", endpoint=hub.endpoint, cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO_ID, revision="v9", endpoint=hub.endpoint, cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree(REPO_ID, revision="0" * 40))

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO_ID, "absent.bin", endpoint=hub.endpoint, cache_dir=cache)
    # The client records the absence under the commit the 404 named.
    assert (cache / "models--acme--tiny" / ".no_exist" / repo.commit / "absent.bin").is_file()
    assert api.file_exists(REPO_ID, "config.json") is True
    assert api.file_exists(REPO_ID, "absent.bin") is False
    assert api.repo_exists("acme/absent") is False
    assert api.revision_exists(REPO_ID, "v9") is False


# -- hostile network ----------------------------------------------------------------------------------------------


def test_drop_next_closes_the_connection_without_a_response(
    hub: FakeHub, api: HfApi, repo: Repo, tmp_path: Path
) -> None:
    hub.drop_next = 1
    with pytest.raises(httpx2.RemoteProtocolError):
        api.model_info(REPO_ID)  # a plain session call: no retry
    assert hub.drop_next == 0
    assert hub.stats(REPO_ID) == (1, 0)
    assert hub.log[-1].status == 0
    assert api.model_info(REPO_ID).sha == repo.commit

    hub.drop_next = 1  # the metadata HEAD of hf_hub_download is not retried either, and not turned into an HF error
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download(REPO_ID, "config.json", endpoint=hub.endpoint, cache_dir=tmp_path)
    assert not (tmp_path / "models--acme--tiny").exists()

    # http_backoff retries dropped connections: two drops then the ranged answer, through the redirect.
    hub.reset_stats()
    hub.drop_next = 2
    url = hf_hub_url(REPO_ID, "model.safetensors", endpoint=hub.endpoint)
    response = http_backoff("GET", url, headers={"Range": "bytes=0-9"}, base_wait_time=0.01)
    assert (response.status_code, response.content) == (206, WEIGHTS[:10])
    assert [(e.server, e.status) for e in hub.log] == [("hub", 0), ("hub", 0), ("hub", 302), ("cdn", 206)]
    assert hub.stats(REPO_ID) == (4, 10)


def test_http_get_resumes_after_a_dropped_connection(hub: FakeHub, repo: Repo) -> None:
    buffer = io.BytesIO()
    hub.drop_next = 1
    http_get(f"{hub.cdn_endpoint}/lfs/{REPO_ID}/{repo.commit}/model.safetensors", buffer, expected_size=len(WEIGHTS))
    assert buffer.getvalue() == WEIGHTS
    assert [(e.server, e.status) for e in hub.log] == [("cdn", 0), ("cdn", 200)]


def test_stats_count_requests_and_body_bytes(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    assert hub.stats(REPO_ID) == (0, 0)
    cache = tmp_path / "cache"
    hf_hub_download(REPO_ID, "model.safetensors", endpoint=hub.endpoint, cache_dir=cache)  # HEAD 302 + CDN GET
    hf_hub_download(REPO_ID, "config.json", endpoint=hub.endpoint, cache_dir=cache)  # HEAD + GET on the hub
    assert hub.stats(REPO_ID) == (4, len(WEIGHTS) + len(CONFIG))
    assert [(e.server, e.method, e.status) for e in hub.log] == [
        ("hub", "HEAD", 302),
        ("cdn", "GET", 200),
        ("hub", "HEAD", 200),
        ("hub", "GET", 200),
    ]
    hf_hub_download(REPO_ID, "config.json", endpoint=hub.endpoint, cache_dir=cache)  # cached: only the HEAD
    assert hub.stats(REPO_ID) == (5, len(WEIGHTS) + len(CONFIG))

    hub.reset_stats()
    assert hub.stats(REPO_ID) == (0, 0)
    assert hub.log == []
    body = get_session().get(f"{hub.endpoint}/api/models/{REPO_ID}").content
    assert hub.stats(REPO_ID) == (1, len(body))
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint).model_info("acme/absent")
    assert hub.stats("acme/absent")[0] == 1
    assert hub.stats(REPO_ID) == (1, len(body))


# -- a lying mirror -----------------------------------------------------------------------------------------------


def test_served_bytes_differ_from_the_metadata(hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    forged = bytes(reversed(WEIGHTS))  # same length, other bytes
    lying = hub.add_repo("mirror/tiny", FILES, served={"model.safetensors": forged, "config.json": b"{}"})
    (entry,) = api.get_paths_info("mirror/tiny", ["model.safetensors"])
    assert isinstance(entry, RepoFile) and entry.lfs is not None and entry.lfs.sha256 == sha256(WEIGHTS)
    # The client does not hash plain HTTP downloads: the blob is named by the honest sha256 and holds other bytes.
    local = Path(hf_hub_download("mirror/tiny", "model.safetensors", endpoint=hub.endpoint, cache_dir=tmp_path))
    assert local.read_bytes() == forged
    assert local.resolve().name == sha256(WEIGHTS) != sha256(forged)
    # A length that disagrees with the metadata is caught by the client's size check.
    with pytest.raises(OSError, match="Consistency check failed"):
        hf_hub_download("mirror/tiny", "config.json", endpoint=hub.endpoint, cache_dir=tmp_path)
    assert lying.body("config.json") == b"{}"

    claimed = "f" * 64
    liar = hub.add_repo("mirror/claims", FILES, claimed_sha256={"model.safetensors": claimed})
    # The pointer is committed content: a different claim is a different commit; served bytes are not.
    assert liar.commit != hub.add_repo("mirror/claims", FILES, revision="honest").commit
    assert lying.commit == hub.add_repo("mirror/tiny", FILES, revision="honest").commit
    info = api.model_info("mirror/claims", files_metadata=True)
    assert info.siblings is not None
    (sibling,) = [s for s in info.siblings if s.rfilename == "model.safetensors"]
    assert sibling.lfs is not None and sibling.lfs.sha256 == claimed
    assert sibling.blob_id == git_blob_oid(lfs_pointer(claimed, len(WEIGHTS)))
    local = Path(hf_hub_download("mirror/claims", "model.safetensors", endpoint=hub.endpoint, cache_dir=tmp_path))
    assert (local.resolve().name, local.read_bytes()) == (claimed, WEIGHTS)


# -- configuration: HF_ENDPOINT, tokens ---------------------------------------------------------------------------


def test_token_goes_to_the_hub_but_not_to_the_cdn(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    hf_hub_download(REPO_ID, "model.safetensors", endpoint=hub.endpoint, cache_dir=tmp_path, token="hf_secret")
    assert [(e.server, e.headers.get("authorization")) for e in hub.log] == [
        ("hub", "Bearer hf_secret"),
        ("cdn", None),
    ]
    assert hub.log[0].headers["x-hf-download-counter"] == "1"
    hub.reset_stats()
    HfApi(endpoint=hub.endpoint, token="hf_api").model_info(REPO_ID)
    assert hub.log[0].headers["authorization"] == "Bearer hf_api"


def test_hf_endpoint_and_hf_token_from_the_environment(hub: FakeHub, repo: Repo, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from huggingface_hub import constants, hf_hub_download, model_info\n"
        "print(constants.ENDPOINT)\n"
        "print(model_info(sys.argv[1]).sha)\n"
        "print(open(hf_hub_download(sys.argv[1], 'model.safetensors', cache_dir=sys.argv[2]), 'rb').read().hex())\n"
    )
    opt_outs = ("HF_", "HUGGING", "DO_NOT_TRACK", "DISABLE_TELEMETRY", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(opt_outs)}
    env.update(HF_ENDPOINT=hub.endpoint + "/", HF_TOKEN="hf_from_env", HF_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-c", script, REPO_ID, str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.split() == [hub.endpoint, repo.commit, WEIGHTS.hex()]
    # Some client versions first fetch an agent-harnesses registry from HF_ENDPOINT, without the token.
    seen = [(e.server, e.method, e.path.split("?")[0], e.headers.get("authorization")) for e in hub.log]
    assert [s for s in seen if s[2] == "/api/agent-harnesses"] in ([], [("hub", "GET", "/api/agent-harnesses", None)])
    assert [s for s in seen if s[2] != "/api/agent-harnesses"] == [
        ("hub", "GET", f"/api/models/{REPO_ID}", "Bearer hf_from_env"),
        ("hub", "HEAD", f"/{REPO_ID}/resolve/main/model.safetensors", "Bearer hf_from_env"),
        ("cdn", "GET", f"/lfs/{REPO_ID}/{repo.commit}/model.safetensors", None),
    ]
    assert json.loads((tmp_path / "home" / ".agent_harnesses.json").read_text()) == {
        "standardEnvVars": [],
        "harnesses": {},
    }
    assert [(e.server, e.method, e.headers.get("authorization")) for e in hub.log[1:]] == [
        ("hub", "GET", "Bearer hf_from_env"),
        ("hub", "HEAD", "Bearer hf_from_env"),
        ("cdn", "GET", None),
    ]
