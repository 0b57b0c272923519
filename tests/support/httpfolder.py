"""A plain HTTP server of a folder of files with Range support (a CDN link), for the download tests.

Standard library only: a real ``ThreadingHTTPServer`` on 127.0.0.1 serving ``files`` (path -> bytes) under
``/release/``, answering HEAD, GET and single ``bytes=a-b`` ranges as a CDN does, counting the body bytes it
sends. ``query`` is a signed link's query string the server requires on every request.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from tests.support.hubserver import _ranged


class FolderServer:
    """``files`` served at ``url`` (``http://127.0.0.1:PORT/release/``); ``served`` overrides bodies."""

    def __init__(self, files: dict[str, bytes], *, query: str = "") -> None:
        self.files = dict(files)
        self.served: dict[str, bytes] = {}
        self.query = query
        self.sent = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        cast(Any, self._server).folder = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/release/" + (f"?{query}" if query else "")
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def count(self, sent: int) -> None:
        with self._lock:
            self.sent += sent

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FolderServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Never log to stderr."""

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        folder = cast(FolderServer, cast(Any, self.server).folder)
        split = urlsplit(self.path)
        path = unquote(split.path.removeprefix("/release/"))
        if folder.query and split.query != folder.query:
            status, headers, body = 403, {}, b"Forbidden: bad signature"
        elif not split.path.startswith("/release/") or path not in folder.files:
            status, headers, body = 404, {}, b"Not Found"
        else:
            content = folder.served.get(path, folder.files[path])
            reply = _ranged(content, None if head else self.headers.get("Range"), False)
            status, headers, body = reply.status, {**reply.headers, "Accept-Ranges": "bytes"}, reply.body
            if head:
                headers["Content-Length"] = str(len(content))
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
            folder.count(len(body))
