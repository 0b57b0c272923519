"""A small Hugging Face Hub-compatible HTTP server for the tests (standard library only).

Two real ``ThreadingHTTPServer`` instances on 127.0.0.1: the hub (``/api/models/...`` and
``/{repo_id}/resolve/{revision}/{path}``) and a second origin, the "CDN", that LFS files are redirected to,
exactly as huggingface.co redirects them to its CDN. The real ``huggingface_hub`` client talks to it through
``endpoint=hub.endpoint`` (or ``HF_ENDPOINT``).

Metadata (sizes, git oids, LFS sha256) comes from ``Repo.files`` and ``Repo.claimed_sha256``; the bytes served
come from ``Repo.served`` when it has the path: a mirror can claim the right sha256 and serve other bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".gguf", ".model")
LFS_THRESHOLD = 10 * 1024  # files larger than this are LFS whatever their name
TREE_PAGE_SIZE = 1000  # the Hub's page size for /tree (50 with expand=true)
EXPANDED_PAGE_SIZE = 50
DATE = "2024-01-01T00:00:00.000Z"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_HEX = re.compile(r"[0-9a-f]{7,40}")


def git_blob_oid(data: bytes) -> str:
    """The git blob oid of ``data``: sha1 over ``blob <len>\\0`` and the content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git-lfs commits in place of a file (spec v1, as ``git lfs pointer`` writes it)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs_path(path: str, size: int) -> bool:
    """Whether the Hub stores ``path`` with LFS: a weights/tokenizer extension, or larger than 10 KiB."""
    return path.endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid path in repo: {path!r}")


def _git_tree_oid(entries: list[tuple[str, bool, str]]) -> str:
    """Git tree oid of (name, is_directory, oid) entries, in git's order (a directory sorts as ``name/``)."""
    body = b""
    for name, is_dir, oid in sorted(entries, key=lambda e: e[0].encode() + (b"/" if e[1] else b"")):
        body += b"%s %s\0" % (b"40000" if is_dir else b"100644", name.encode()) + bytes.fromhex(oid)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


@dataclass
class Repo:
    """One revision of a model repo as the hub serves it."""

    repo_id: str
    files: dict[str, bytes]
    commit: str
    claimed_sha256: dict[str, str] = field(default_factory=dict)
    served: dict[str, bytes] = field(default_factory=dict)
    _sha256: dict[str, tuple[bytes, str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        repo_id: str,
        files: dict[str, bytes],
        claimed_sha256: dict[str, str] | None = None,
        served: dict[str, bytes] | None = None,
    ) -> Repo:
        """A repo whose commit is a git commit object over its tree (LFS files as their pointers) and repo_id."""
        for path in files:
            _check_path(path)
        repo = cls(repo_id, dict(files), "", dict(claimed_sha256 or {}), dict(served or {}))
        unknown = (set(repo.claimed_sha256) | set(repo.served)) - set(files)
        if unknown:
            raise ValueError(f"overrides for paths not in files: {sorted(unknown)}")
        for path in repo.directories():
            if path in files:
                raise ValueError(f"{path!r} is both a file and a directory")
        body = (
            f"tree {repo.tree_oid('')}\nauthor FakeHub <hub@localhost> 0 +0000\n"
            f"committer FakeHub <hub@localhost> 0 +0000\n\nUpload {repo_id}\n"
        ).encode()
        repo.commit = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
        return repo

    def is_lfs(self, path: str) -> bool:
        """Whether the file is stored with LFS (and so redirected to the CDN)."""
        return is_lfs_path(path, len(self.files[path]))

    def lfs_sha256(self, path: str) -> str:
        """The sha256 the metadata claims: the real one unless ``claimed_sha256`` overrides it (computed once
        per content: every resolve answer carries it, and a range request must not cost a hash of the file)."""
        data = self.files[path]
        known = self._sha256.get(path)
        if known is None or known[0] is not data:
            known = (data, hashlib.sha256(data).hexdigest())
            self._sha256[path] = known
        return self.claimed_sha256.get(path) or known[1]

    def pointer(self, path: str) -> bytes:
        """The LFS pointer file committed for an LFS path."""
        return lfs_pointer(self.lfs_sha256(path), len(self.files[path]))

    def blob_oid(self, path: str) -> str:
        """The git oid of the committed blob: of the content, or of the pointer for an LFS file."""
        return git_blob_oid(self.pointer(path) if self.is_lfs(path) else self.files[path])

    def etag(self, path: str) -> str:
        """The (unquoted) ETag the hub sends: the LFS sha256 for LFS files, the git oid otherwise."""
        return self.lfs_sha256(path) if self.is_lfs(path) else self.blob_oid(path)

    def body(self, path: str) -> bytes:
        """The bytes actually served for a path."""
        return self.served.get(path, self.files[path])

    def directories(self) -> set[str]:
        """Every directory that holds a file, at any depth (not the root)."""
        dirs: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return dirs

    def children(self, directory: str) -> list[str]:
        """Paths of the files and directories directly inside ``directory`` ("" is the root)."""
        prefix = f"{directory}/" if directory else ""
        names = {p for p in self.files.keys() | self.directories() if p.startswith(prefix)}
        return sorted(p for p in names if "/" not in p[len(prefix) :])

    def tree_oid(self, directory: str) -> str:
        """The git tree oid of a directory ("" is the root)."""
        entries = []
        for path in self.children(directory):
            name = path.rpartition("/")[2]
            is_dir = path not in self.files
            entries.append((name, is_dir, self.tree_oid(path) if is_dir else self.blob_oid(path)))
        return _git_tree_oid(entries)

    def entry(self, path: str, *, expand: bool = False) -> dict[str, Any]:
        """The JSON of a path as /tree and /paths-info give it."""
        info: dict[str, Any]
        if path in self.files:
            size = len(self.files[path])
            info = {"type": "file", "oid": self.blob_oid(path), "size": size, "path": path}
            if self.is_lfs(path):
                info["lfs"] = {"oid": self.lfs_sha256(path), "size": size, "pointerSize": len(self.pointer(path))}
        else:
            info = {"type": "directory", "oid": self.tree_oid(path), "size": 0, "path": path}
        if expand:
            info["lastCommit"] = {"id": self.commit, "title": f"Upload {self.repo_id}", "date": DATE}
        return info

    def sibling(self, path: str, *, blobs: bool) -> dict[str, Any]:
        """One entry of ``siblings`` in the model info (with size, blobId and lfs when ``blobs=true``)."""
        info: dict[str, Any] = {"rfilename": path}
        if blobs:
            size = len(self.files[path])
            info.update(size=size, blobId=self.blob_oid(path))
            if self.is_lfs(path):
                info["lfs"] = {"sha256": self.lfs_sha256(path), "size": size, "pointerSize": len(self.pointer(path))}
        return info

    def tags(self) -> list[str]:
        """Library tags the Hub derives from file extensions."""
        found = {
            tag
            for path in self.files
            for suffixes, tag in (
                ((".safetensors",), "safetensors"),
                ((".gguf",), "gguf"),
                ((".bin", ".pt", ".pth"), "pytorch"),
            )
            if path.endswith(suffixes)
        }
        return sorted(found)

    def model_json(self, *, blobs: bool = False, full: bool = True, expand: list[str] | None = None) -> dict[str, Any]:
        """The model info JSON (``full=False``: the short form list_models gives)."""
        namespace = self.repo_id.split("/")[0]
        info: dict[str, Any] = {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "private": False,
            "downloads": 0,
            "likes": 0,
            "trendingScore": 0,
            "tags": self.tags(),
            "createdAt": DATE,
        }
        if full or expand:
            info.update(
                author=namespace,
                sha=self.commit,
                lastModified=DATE,
                gated=False,
                disabled=False,
                siblings=[self.sibling(p, blobs=blobs) for p in sorted(self.files)],
                spaces=[],
                usedStorage=sum(len(b) for b in self.files.values()),
            )
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id", *expand)}
        return info


@dataclass
class LoggedRequest:
    """One request either server received (``server`` is "hub" or "cdn")."""

    server: str
    method: str
    path: str
    headers: dict[str, str]
    status: int  # 0 when the connection was dropped


@dataclass
class _Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    body = json.dumps(data).encode()
    return _Reply(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)


def _error(status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> _Reply:
    extra = {"X-Error-Message": message, **(headers or {})}
    if code is not None:
        extra["X-Error-Code"] = code
    return _json_reply({"error": message}, status, extra)


def _ranged(body: bytes, range_header: str | None, ignore_range: bool) -> _Reply:
    """200, 206 or 416 for a single ``bytes=a-b`` range (other forms are ignored, as RFC 9110 allows)."""
    size = len(body)
    match = _RANGE.fullmatch(range_header.strip()) if range_header and not ignore_range else None
    if match is None or match.group(1) == match.group(2) == "":
        return _Reply(200, {}, body)
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last N bytes
        start, end = max(size - int(last), 0), size - 1
        if int(last) == 0:
            start = size
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return _Reply(200, {}, body)  # invalid range-spec: ignore the header
    if start >= size or start > end:
        return _Reply(416, {"Content-Range": f"bytes */{size}"})
    return _Reply(206, {"Content-Range": f"bytes {start}-{end}/{size}"}, body[start : end + 1])


def _disposition(kind: str, path: str) -> str:
    name = path.rpartition("/")[2]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
    return f"{kind}; filename*=UTF-8''{quote(name)}; filename=\"{ascii_name}\";"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: FakeHub, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.role = role
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent: a client hanging up is not a test failure."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real Hub: every reply carries a Content-Length
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Never log to stderr."""

    def setup(self) -> None:
        super().setup()
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        server = cast(_Server, self.server)
        hub = server.hub
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        segments = split.path.split("/")[1:]
        repo_id = hub._repo_id_of(server.role, segments)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if hub.latency:
            time.sleep(hub.latency)  # a hub farther away than 127.0.0.1: what a run's concurrency must hide
        if hub._take_drop():
            hub._record(LoggedRequest(server.role, method, self.path, headers, 0), repo_id, 0)
            self.close_connection = True  # no status line at all: the client sees the connection close
            return
        try:
            if server.role == "hub" and repo_id is not None and not hub._authorized(repo_id, headers):
                reply = _error(401, "GatedRepo", f"Access to model {repo_id} is restricted: you must be authenticated.")
            elif server.role == "cdn":
                reply = hub._cdn(method, segments, self.headers.get("Range"))
            else:
                reply = hub._route(method, segments, parse_qs(split.query), payload, self.headers)
        except Exception as exc:  # a bug in the fake must show as a 500, not as a hung client
            hub.errors.append(exc)
            reply = _error(500, None, f"{type(exc).__name__}: {exc}")
        body = b"" if method == "HEAD" else reply.body
        serves_file = server.role == "cdn" or "/resolve/" in split.path
        allowed = hub._spend(len(body)) if serves_file else len(body)
        if serves_file:
            hub._count_file(allowed)
        hub._record(LoggedRequest(server.role, method, self.path, headers, reply.status), repo_id, allowed)
        try:
            self.send_response(reply.status)
            reply.headers.setdefault("Content-Length", str(len(reply.body)))
            if "x-amzn-trace-id" in headers:
                reply.headers.setdefault("X-Request-Id", headers["x-amzn-trace-id"])
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if body and hub.drip:
                for i in range(len(body)):  # a server that answers, but too slowly to ever finish
                    if hub._closed:
                        break
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(hub.drip)
            elif allowed < len(body):  # the budget ran out: part of the body, then the connection closes
                self.wfile.write(body[:allowed])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif body:
                self.wfile.write(body)
        except OSError:
            self.close_connection = True


class FakeHub:
    """The hub and its CDN on two 127.0.0.1 ports, with knobs for hostile-network tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._branches: dict[str, dict[str, Repo]] = {}  # repo_id -> branch -> Repo
        self._commits: dict[str, dict[str, Repo]] = {}  # repo_id -> commit -> Repo (old commits stay reachable)
        self._stats: dict[str, list[int]] = {}
        self.drop_next = 0
        self.budget: int | None = None  # file body bytes left to send; then every file body is cut short
        self.corrupt_once: dict[tuple[str, str], int] = {}  # (repo_id, path) -> offset flipped in the next body
        self.gated: dict[str, str] = {}  # repo_id -> the token its API and resolve URLs need
        self.file_bytes = 0  # body bytes of files sent (resolve and CDN answers), cut bodies counted as sent
        self.ignore_range = False
        self.drip = 0.0  # seconds between body bytes: 0 sends bodies at once
        self.latency = 0.0  # seconds every answer waits before it is sent
        self.page_size = TREE_PAGE_SIZE  # entries per page of /tree and /api/models (the client follows Link)
        self.log: list[LoggedRequest] = []
        self.errors: list[Exception] = []
        self._servers = [_Server(self, "hub"), _Server(self, "cdn")]
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, args=(0.02,), daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()
        self._closed = False

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        revision: str = "main",
        claimed_sha256: dict[str, str] | None = None,
        served: dict[str, bytes] | None = None,
    ) -> Repo:
        """Publish ``files`` as branch ``revision`` of ``repo_id`` ("org/name"); the returned Repo is live."""
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"repo_id must be 'org/name': {repo_id!r}")
        repo = Repo.build(repo_id, files, claimed_sha256, served)
        with self._lock:
            self._branches.setdefault(repo_id, {})[revision] = repo
            self._commits.setdefault(repo_id, {})[repo.commit] = repo
        return repo

    def stats(self, repo_id: str) -> tuple[int, int]:
        """(requests, body bytes) served for ``repo_id`` on the API, resolve and the CDN, dropped ones included."""
        with self._lock:
            requests, sent = self._stats.get(repo_id, (0, 0))
            return requests, sent

    def reset_stats(self) -> None:
        """Zero every counter and empty the request log."""
        with self._lock:
            self._stats.clear()
            self.log.clear()

    def close(self) -> None:
        """Stop both servers and hang up on open keep-alive connections."""
        if self._closed:
            return
        self._closed = True
        for server in self._servers:
            server.shutdown()
            server.server_close()
            with server.connections_lock:
                for conn in list(server.connections):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals used by the handler ----------------------------------------------------------------------

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drop_next > 0:
                self.drop_next -= 1
                return True
            return False

    def _spend(self, size: int) -> int:
        """How many of `size` body bytes may be sent: all of them, or what is left of the budget."""
        with self._lock:
            if self.budget is None:
                return size
            allowed = min(size, self.budget)
            self.budget -= allowed
            return allowed

    def _count_file(self, sent: int) -> None:
        with self._lock:
            self.file_bytes += sent

    def _authorized(self, repo_id: str, headers: dict[str, str]) -> bool:
        token = self.gated.get(repo_id)
        return token is None or headers.get("authorization") == f"Bearer {token}"

    def _damaged(self, repo_id: str, path: str, reply: _Reply) -> _Reply:
        """The body with one byte flipped, once, when it covers the offset `corrupt_once` names."""
        with self._lock:
            offset = self.corrupt_once.get((repo_id, path))
            match = re.match(r"bytes (\d+)-", reply.headers.get("Content-Range", "bytes 0-"))
            start = int(match.group(1)) if match else 0
            if offset is None or reply.status not in (200, 206) or not start <= offset < start + len(reply.body):
                return reply
            del self.corrupt_once[(repo_id, path)]
        body = bytearray(reply.body)
        body[offset - start] ^= 0xFF
        return _Reply(reply.status, reply.headers, bytes(body))

    def _record(self, entry: LoggedRequest, repo_id: str | None, sent: int) -> None:
        with self._lock:
            self.log.append(entry)
            if repo_id is not None:
                counters = self._stats.setdefault(repo_id, [0, 0])
                counters[0] += 1
                counters[1] += sent

    @staticmethod
    def _repo_id_of(role: str, segments: list[str]) -> str | None:
        if role == "cdn":
            return "/".join(segments[1:3]) if len(segments) >= 5 and segments[0] == "lfs" else None
        if len(segments) >= 4 and segments[0] == "api" and segments[1] in ("models", "datasets", "spaces"):
            return "/".join(segments[2:4])
        if len(segments) >= 5 and segments[2] == "resolve":
            return "/".join(segments[:2])
        return None

    def _lookup(self, repo_id: str, revision: str) -> Repo | _Reply:
        with self._lock:
            branches = self._branches.get(repo_id)
            commits = dict(self._commits.get(repo_id, {}))
        if branches is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if revision in branches:
            return branches[revision]
        if _HEX.fullmatch(revision):
            matches = [repo for commit, repo in commits.items() if commit.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _route(
        self, method: str, segments: list[str], query: dict[str, list[str]], payload: bytes, headers: Any
    ) -> _Reply:
        if segments == ["api", "agent-harnesses"] and method == "GET":
            # The client fetches this registry once a day (user-agent telemetry): an empty one detects no agent.
            return _json_reply({"standardEnvVars": [], "harnesses": {}})
        if segments[:2] == ["api", "models"] and len(segments) == 2:
            return self._list_models(query) if method == "GET" else _error(405, None, "Method not allowed")
        if len(segments) >= 4 and segments[0] == "api" and segments[1] in ("datasets", "spaces"):
            return _error(404, "RepoNotFound", "Repository not found")
        if len(segments) >= 4 and segments[:2] == ["api", "models"]:
            repo_id, rest = "/".join(segments[2:4]), segments[4:]
            if method == "GET" and not rest:
                return self._model_info(repo_id, "main", query)
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return self._model_info(repo_id, unquote(rest[1]), query)
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._tree(repo_id, segments, query)
            if method == "POST" and len(rest) == 2 and rest[0] == "paths-info":
                return self._paths_info(repo_id, unquote(rest[1]), payload, headers.get("Content-Type") or "")
            return _error(404, None, "Not Found")
        if len(segments) >= 6 and segments[0] in ("datasets", "spaces") and segments[3] == "resolve":
            return _error(404, "RepoNotFound", "Repository not found")  # model repos only
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            path = unquote("/".join(segments[4:]))
            range_header = None if method == "HEAD" else headers.get("Range")
            return self._resolve("/".join(segments[:2]), unquote(segments[3]), path, range_header, method)
        return _error(404, None, "Not Found")

    def _model_info(self, repo_id: str, revision: str, query: dict[str, list[str]]) -> _Reply:
        repo = self._lookup(repo_id, revision)
        if isinstance(repo, _Reply):
            return repo
        blobs = _flag(query, "blobs")
        info = repo.model_json(blobs=blobs, expand=query.get("expand"))
        if _flag(query, "securityStatus"):
            info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
        return _json_reply(info)

    def _list_models(self, query: dict[str, list[str]]) -> _Reply:
        search = (query.get("search") or [""])[0].lower()
        author = query["author"][0] if "author" in query else None
        wanted_tags = set(query.get("filter", []))
        with self._lock:
            repos = [b.get("main") or next(iter(b.values())) for _, b in sorted(self._branches.items())]
        found = [
            r
            for r in repos
            if search in r.repo_id.lower()
            and (author is None or r.repo_id.split("/")[0] == author)
            and wanted_tags <= set(r.tags())
        ]
        full = _flag(query, "full")
        items = [r.model_json(full=full, expand=query.get("expand")) for r in found]
        if "limit" in query:
            return _json_reply(items[: int(query["limit"][0])])
        return self._page(items, "/api/models", query, self.page_size)

    def _page(self, items: list[dict[str, Any]], path: str, query: dict[str, list[str]], size: int) -> _Reply:
        start = int((query.get("cursor") or ["0"])[0])
        headers = {}
        if start + size < len(items):
            params = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
            link = f"{self.endpoint}{path}?{urlencode([*params, ('cursor', str(start + size))])}"
            headers["Link"] = f'<{link}>; rel="next"'
        return _json_reply(items[start : start + size], headers=headers)

    def _tree(self, repo_id: str, segments: list[str], query: dict[str, list[str]]) -> _Reply:
        repo = self._lookup(repo_id, unquote(segments[5]))
        if isinstance(repo, _Reply):
            return repo
        directory = unquote("/".join(segments[6:])).strip("/")
        if directory and directory not in repo.directories():
            return _error(404, "EntryNotFound", f"{directory} does not exist on {segments[5]}")
        expand = _flag(query, "expand")
        if _flag(query, "recursive"):
            prefix = f"{directory}/" if directory else ""
            paths = sorted(p for p in repo.files.keys() | repo.directories() if p.startswith(prefix))
        else:
            paths = repo.children(directory)
        entries = [repo.entry(p, expand=expand) for p in paths]
        size = min(self.page_size, EXPANDED_PAGE_SIZE) if expand else self.page_size
        return self._page(entries, "/" + "/".join(segments), query, size)

    def _paths_info(self, repo_id: str, revision: str, payload: bytes, content_type: str) -> _Reply:
        repo = self._lookup(repo_id, revision)
        if isinstance(repo, _Reply):
            return repo
        if content_type.startswith("application/json"):
            data = json.loads(payload or b"{}")
            paths, expand = [str(p) for p in data.get("paths", [])], bool(data.get("expand"))
        else:
            form = parse_qs(payload.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _flag(form, "expand")
        known = repo.files.keys() | repo.directories()
        seen = dict.fromkeys(p.strip("/") for p in paths)
        return _json_reply([repo.entry(p, expand=expand) for p in seen if p in known])

    def _resolve(self, repo_id: str, revision: str, path: str, range_header: str | None, method: str) -> _Reply:
        repo = self._lookup(repo_id, revision)
        if isinstance(repo, _Reply):
            return repo
        if path not in repo.files:
            return _error(404, "EntryNotFound", f"{path} does not exist", {"X-Repo-Commit": repo.commit})
        headers = {
            "X-Repo-Commit": repo.commit,
            "ETag": f'"{repo.etag(path)}"',
            "Accept-Ranges": "bytes",
        }
        size = len(repo.files[path])
        if repo.is_lfs(path):
            location = f"{self.cdn_endpoint}/lfs/{repo_id}/{repo.commit}/{quote(path)}"
            headers.update(
                {
                    "Location": location,
                    "X-Linked-Etag": f'"{repo.lfs_sha256(path)}"',
                    "X-Linked-Size": str(size),
                    "Content-Type": "text/plain; charset=utf-8",
                }
            )
            return _Reply(302, headers)
        headers["Content-Type"] = "text/plain; charset=utf-8"
        headers["Content-Disposition"] = _disposition("inline", path)
        if method == "HEAD":  # the metadata size, whatever the bytes a GET would serve
            return _Reply(200, {**headers, "Content-Length": str(size)})
        reply = _ranged(repo.body(path), range_header, self.ignore_range)
        reply.headers = {**headers, **reply.headers}
        return self._damaged(repo_id, path, reply)

    def _cdn(self, method: str, segments: list[str], range_header: str | None) -> _Reply:
        if method not in ("GET", "HEAD") or len(segments) < 5 or segments[0] != "lfs":
            return _Reply(404, {"Content-Type": "text/plain"}, b"Not Found")
        repo_id, commit, path = "/".join(segments[1:3]), segments[3], unquote("/".join(segments[4:]))
        with self._lock:
            repo = self._commits.get(repo_id, {}).get(commit)
        if repo is None or path not in repo.files:
            return _Reply(404, {"Content-Type": "text/plain"}, b"Not Found")
        reply = _ranged(repo.body(path), None if method == "HEAD" else range_header, self.ignore_range)
        reply.headers.update(
            {
                "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes",
                "Content-Disposition": _disposition("attachment", path),
            }
        )
        return reply if method == "HEAD" else self._damaged(repo_id, path, reply)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[-1].lower() in ("1", "true", "yes")
