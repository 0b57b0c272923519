"""Hugging Face Hub repositories as evidence: file metadata, byte ranges and streams, through huggingface_hub.

The hub's per-file sha256 (from LFS metadata) is a claim made by whoever uploaded the file, not a proof;
callers say which evidence each conclusion rests on. Every request goes through one gate that bounds
how many are in flight, is retried with exponential backoff on network errors and server errors, and is
counted per repository so an audit can say what it cost. Tokens come from huggingface_hub's usual
places (HF_TOKEN, the saved login) and never appear in a report or an error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from provenance._sources.hub_failures import TooSlow, Transient, short, unreachable
from provenance._sources.hub_refs import MAX_SIZE, REPO_ID, HubSnapshot, RepoRef, hub_file
from provenance.errors import HubError

DEFAULT_ENDPOINT = "https://huggingface.co"
STREAM_CHUNK = 4 << 20
# Seconds a whole request may take with all its retries, however steadily the server drips bytes (the
# read timeout alone lets one byte every 20 s hold a request forever); for a stream, each STREAM_CHUNK of
# its body. Under the 60 s any one input may cost (DESIGN.md), with room for the work around it.
TOTAL_TIMEOUT = 45.0
# Bytes a metadata answer may take: a model info listing 100,000 files with LFS metadata is ~30 MB.
METADATA_CAP = 64 << 20
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})  # of the body as sent
T = TypeVar("T")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class Hub:
    """One hub endpoint: requests gated, retried and counted per repository."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        in_flight: int = 8,
        retries: int = 3,
        backoff: float = 0.25,
        timeout: float = 60.0,
        total: float = TOTAL_TIMEOUT,
        kind: str = "the hub",
    ) -> None:
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.server = f"{kind} at {self.endpoint}"  # how errors name it: "the hub at ...", "the server at ..."
        self._gate = threading.BoundedSemaphore(max(1, in_flight))
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout  # seconds a request may wait for the server; a silent server is an error
        self.total = total  # seconds a whole request may take (a chunk of a stream): a dripping server too
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.received: Counter[str] = Counter()

    def _count(self, repo_id: str, requests: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests[repo_id] += requests
            self.received[repo_id] += received

    def _retrying(self, repo_id: str, what: str, call: Callable[[], T]) -> T:
        """Run one request under the gate, retrying transient failures with exponential backoff."""
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        delay = self.backoff
        deadline = time.monotonic() + self.total
        for attempt in range(self.retries + 1):
            self._count(repo_id, requests=1)
            try:
                with self._gate:
                    return self._within(call, deadline)
            except TooSlow:
                raise HubError(
                    f"{what}: {self.server} did not finish answering within {self.total:g} s; retry later"
                ) from None
            except OfflineModeIsEnabled:
                raise HubError(
                    f"{what}: offline mode is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE); unset it to read the hub "
                    f"at {self.endpoint}"
                ) from None
            except (httpx2.TransportError, Transient) as exc:
                cut_off = unreachable(exc)
                if cut_off is not None:
                    raise HubError(
                        f"{what}: {cut_off} {self.server} ({short(exc)}); check HF_ENDPOINT "
                        "and this machine's network (or DNS) settings"
                    ) from None
                failure: Exception = exc
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status not in (408, 429, 500, 502, 503, 504):
                    if _is_not_found(exc):
                        raise  # the caller says which repository or revision is missing
                    raise HubError(f"{what}: {self.server} answered {status} ({short(exc)})") from None
                failure = exc
            except httpx2.HTTPError as exc:  # redirect loops, invalid URLs: not worth retrying
                raise HubError(f"{what}: {self.server} did not answer usably ({short(exc)})") from None
            except (ValueError, KeyError, TypeError, RecursionError) as exc:  # an answer that cannot be parsed
                raise HubError(
                    f"{what}: {self.server} sent an answer that is not the Hub's API ({short(exc)})"
                ) from None
            except MemoryError:
                raise HubError(f"{what}: {self.server} sent an answer too large to hold") from None
            if attempt < self.retries:
                if time.monotonic() + delay >= deadline:
                    break  # no time left for another attempt
                time.sleep(delay)
                delay *= 2
        raise HubError(f"{what}: {self.server} failed {attempt + 1} times ({short(failure)}); retry later")

    def _within(self, call: Callable[[], T], deadline: float) -> T:
        """Run `call` with a total time limit: in a daemon thread, abandoned if it has not finished in time.

        httpx's timeouts bound each read, not the request. The abandoned thread reads on until the server
        stops or its next read times out; the bodies read here stop at their own deadline too (_read_body).
        """
        outcome: list[Any] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=run, name="hub-request", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise TooSlow
        ok, value = outcome[0]
        if not ok:
            raise value
        return cast(T, value)

    def _read_body(self, response: Any, limit: int | None) -> Iterator[bytes]:
        """A body in chunks of STREAM_CHUNK, each of which must arrive within the total time limit."""
        deadline = time.monotonic() + self.total
        pending = bytearray()
        for piece in response.iter_bytes():
            pending += piece
            if len(pending) >= STREAM_CHUNK or (limit is not None and len(pending) > limit):
                yield bytes(pending)
                pending.clear()
                deadline = time.monotonic() + self.total
            elif time.monotonic() > deadline:
                raise TooSlow
        if pending:
            yield bytes(pending)

    def _read_into(self, response: Any, size: int) -> tuple[bytearray, int]:
        """A body of `size` bytes read into one buffer (no copy per chunk: a download's bytes are many), and
        how many arrived (past `size`, reading stops); each STREAM_CHUNK must arrive within the time limit."""
        body = bytearray(size)
        filled, mark = 0, STREAM_CHUNK
        deadline = time.monotonic() + self.total
        for piece in response.iter_bytes():
            if filled + len(piece) > size:
                return body, filled + len(piece)  # more than was asked for: not kept
            body[filled : filled + len(piece)] = piece
            filled += len(piece)
            if filled >= mark:
                mark, deadline = filled + STREAM_CHUNK, time.monotonic() + self.total
            elif time.monotonic() > deadline:
                raise TooSlow
        return body, filled

    def snapshot(self, ref: RepoRef) -> HubSnapshot:
        """The repository's files with sizes and claimed sha256, at the revision's current commit."""
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            info = self._retrying(ref.repo_id, str(ref), lambda: self._model_info(ref))
        except RevisionNotFoundError:
            raise HubError(
                f"{ref}: no revision {ref.revision!r} in {ref.repo_id}; check the branch, tag or commit"
            ) from None
        except RepositoryNotFoundError:
            raise HubError(
                f"{ref}: no such repository at {self.endpoint} (or it is private or gated: log in with `hf auth login`)"
            ) from None
        files = [hub_file(ref, sibling) for sibling in info.siblings or []]
        if not isinstance(info.sha, str) or not _COMMIT.fullmatch(info.sha):
            # the commit names a cache folder and every URL: anything but 40 hex digits could lead out of both
            raise HubError(f"{ref}: the hub gave {str(info.sha)[:60]!r} as this revision's commit, not 40 hex digits")
        return HubSnapshot(ref, str(info.sha), tuple(sorted(files, key=lambda f: f.path)))

    def _model_info(self, ref: RepoRef) -> Any:
        """What HfApi.model_info(files_metadata=True) returns, with the answer read to at most METADATA_CAP
        bytes (the client reads a body whole, however long the server sends)."""
        from urllib.parse import quote

        from huggingface_hub import ModelInfo

        url = f"{self.endpoint}/api/models/{ref.repo_id}"
        if ref.revision is not None:
            url += f"/revision/{quote(ref.revision, safe='')}"
        from manifests.io import check_parse_cost

        raw = self._get_small(str(ref), url, {"blobs": "true"})
        check_parse_cost(raw, f"{ref}: the hub's answer at {self.endpoint}", HubError)
        data = json.loads(raw)
        return ModelInfo(**data)  # type: ignore[no-untyped-call]

    def _get_small(self, what: str, url: str, params: dict[str, str]) -> bytes:
        """The body of a GET answer of at most METADATA_CAP bytes; an error answer raises as the client's would."""
        import httpx2
        from huggingface_hub import get_session, hf_raise_for_status
        from huggingface_hub.utils._headers import build_hf_headers

        session = get_session()
        request = session.build_request("GET", url, params=params, headers=build_hf_headers(), timeout=self.timeout)
        response = session.send(request, stream=True, follow_redirects=True)
        try:
            body = bytearray()
            for chunk in self._read_body(response, METADATA_CAP):
                body += chunk
                if len(body) > METADATA_CAP:
                    raise HubError(
                        f"{what}: {self.server} sent an answer over {METADATA_CAP >> 20} MiB, more than "
                        "any repository's metadata takes"
                    )
        finally:
            response.close()
        # The client's error checks read the body: give them the bounded copy.
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS}
        hf_raise_for_status(
            httpx2.Response(response.status_code, headers=headers, content=bytes(body), request=request)
        )
        return bytes(body)

    def _url(self, snapshot: HubSnapshot, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(snapshot.ref.repo_id, path, revision=snapshot.commit, endpoint=self.endpoint)

    def read_range(self, snapshot: HubSnapshot, path: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file at the snapshot's commit, by one HTTP range request."""
        from huggingface_hub.utils._headers import build_hf_headers

        what = f"{snapshot.ref}: {path} bytes {start}-{end - 1}"
        url = self._url(snapshot, path)
        return self.read_url_range(snapshot.ref.repo_id, what, url, build_hf_headers(), (start, end))

    def read_url_range(self, key: str, what: str, url: str, headers: dict[str, str], span: tuple[int, int]) -> bytes:
        """Bytes [start, end) of `url` by one range request with `headers`, counted under `key`: a short or
        cut answer is retried, a server that ignores Range is an error."""
        start, end = span
        if end <= start:
            return b""

        def fetch() -> bytes:
            from huggingface_hub import get_session, hf_raise_for_status

            asked = {**headers, "Range": f"bytes={start}-{end - 1}"}
            session = get_session()
            request = session.build_request("GET", url, headers=asked, timeout=self.timeout)
            response = session.send(request, stream=True, follow_redirects=True)
            try:
                if response.status_code >= 400:
                    response.read()
                hf_raise_for_status(response)
                if response.status_code != 206:
                    raise HubError(f"{what}: the server ignored the Range request (status {response.status_code})")
                body, filled = self._read_into(response, end - start)
            finally:
                response.close()
            if not response.headers.get("Content-Range", "").startswith(f"bytes {start}-") or filled != end - start:
                raise Transient(f"{filled:,} bytes for a range of {end - start:,}")
            return bytes(body)  # one copy, of the whole range: the type every reader of ranges takes

        body = self._retrying(key, what, fetch)
        self._count(key, received=len(body))
        return body

    def head_size(self, key: str, what: str, url: str, headers: dict[str, str]) -> int | None:
        """The Content-Length a HEAD request on `url` answers (redirects followed), None for 404 or 410."""

        def ask() -> int | None:
            from huggingface_hub import get_session, hf_raise_for_status

            session = get_session()
            response = session.send(
                session.build_request("HEAD", url, headers=headers, timeout=self.timeout), follow_redirects=True
            )
            response.close()
            if response.status_code in (404, 410):
                return None
            hf_raise_for_status(response)
            size = int(response.headers.get("Content-Length", ""))  # a ValueError: not an answer to HEAD
            if not 0 <= size <= MAX_SIZE:
                raise ValueError(f"Content-Length {size}")
            return size

        return self._retrying(key, what, ask)

    def stream(self, snapshot: HubSnapshot, path: str, size: int | None = None) -> Iterator[bytes]:
        """A file's bytes as they arrive, never kept; a dropped connection fails the stream (not retried
        mid-file: the hashes would have to start again)."""
        from huggingface_hub import get_session, hf_raise_for_status
        from huggingface_hub.utils._headers import build_hf_headers

        url = self._url(snapshot, path)
        repo_id = snapshot.ref.repo_id

        def opened() -> Any:
            response = get_session().send(
                get_session().build_request("GET", url, headers=build_hf_headers(), timeout=self.timeout),
                stream=True,
                follow_redirects=True,
            )
            if response.status_code >= 400:
                response.read()
                response.close()
            hf_raise_for_status(response)
            return response

        response = self._retrying(repo_id, f"{snapshot.ref}: {path}", opened)
        try:
            with self._gate:  # the body counts as a request in flight until it is read
                yield from self._body(response, repo_id, snapshot, path, size)
        except HubError:
            raise
        except TooSlow:
            raise HubError(
                f"{snapshot.ref}: {path}: the server sent under {STREAM_CHUNK >> 20} MiB in {self.total:g} s; "
                "retry later"
            ) from None
        except Exception as exc:
            raise HubError(f"{snapshot.ref}: {path}: the download broke off ({short(exc)}); retry later") from None
        finally:
            response.close()

    def _body(self, response: Any, repo_id: str, snapshot: HubSnapshot, path: str, size: int | None) -> Iterator[bytes]:
        received = 0
        for chunk in self._read_body(response, size):
            self._count(repo_id, received=len(chunk))
            received += len(chunk)
            if size is not None and received > size:
                raise HubError(f"{snapshot.ref}: {path}: the server sends more than the {size:,} bytes it lists")
            yield chunk

    def search(self, text: str, limit: int) -> list[RepoRef]:
        """Model repositories whose name matches `text`, as the hub's search finds them."""
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.endpoint)
        # The client retries a search itself and says so on stderr ("Retrying in 1s"); ours retries and, when
        # it gives up, says why in one line.
        chatty = logging.getLogger("huggingface_hub.utils._http")
        level = chatty.level
        chatty.setLevel(logging.ERROR)
        try:
            models = self._retrying(
                "(search)", f"search {text!r}", lambda: list(api.list_models(search=text, limit=limit))
            )
        finally:
            chatty.setLevel(level)
        return [RepoRef(m.id) for m in models if REPO_ID.fullmatch(m.id)]


def _is_not_found(exc: Exception) -> bool:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    return isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError)


@dataclass(frozen=True, slots=True, eq=False)
class Mirror:
    """One repository on a hub, at the commit its metadata was read at: what an audit reads from, as one
    object rather than a hub and a snapshot handed around together."""

    hub: Hub
    ref: RepoRef
    snapshot: HubSnapshot

    @classmethod
    def open(cls, hub: Hub, ref: RepoRef) -> Mirror:
        """The repository's metadata, read once; raises HubError when it cannot be read."""
        return cls(hub, ref, hub.snapshot(ref))

    def read_range(self, path: str, start: int, end: int) -> bytes:
        return self.hub.read_range(self.snapshot, path, start, end)

    def stream(self, path: str, size: int | None = None) -> Iterator[bytes]:
        return self.hub.stream(self.snapshot, path, size)
