"""A plain HTTP(S) folder of a release's files, such as the signed CDN link Meta's download script used.

No hub metadata and no token: each file is asked for by its path under the folder's URL, sizes come from
the server's answer to HEAD, and bytes by range requests through the same gated, retried and counted
requests as the hub's (`Hub`). A signed link's query string (its signature) is kept on every request and
left out of every message.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from provenance._sources.hub import TOTAL_TIMEOUT, Hub
from provenance.errors import UnreadableInput


class HttpFolder:
    """Files by path under one http(s) URL, read by byte ranges."""

    def __init__(self, url: str, *, in_flight: int = 8, total: float = TOTAL_TIMEOUT) -> None:
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise UnreadableInput(f"{url} is not an http(s) folder URL; give https://HOST/PATH/")
        path = split.path if split.path.endswith("/") else split.path + "/"
        self._base = urlunsplit((split.scheme, split.netloc, path, "", ""))
        self._query = split.query
        self.label = self._base  # what reports and errors name: never the signature in the query
        self.hub = Hub(self._base, in_flight=in_flight, total=total, kind="the server")

    def url(self, path: str) -> str:
        return self._base + quote(path) + (f"?{self._query}" if self._query else "")

    def size_of(self, path: str) -> int | None:
        """The size the server gives the file, or None when it has no such file (404 or 410)."""
        return self.hub.head_size(self.label, f"{self.label}{path}", self.url(path), {})

    def read_range(self, path: str, start: int, end: int) -> bytes:
        what = f"{self.label}{path} bytes {start}-{end - 1}"
        return self.hub.read_url_range(self.label, what, self.url(path), {}, (start, end))
