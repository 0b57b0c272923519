"""A file's bytes from a server in order, fetched as parallel range requests.

Hashes are sequential (SHA-256 of the file, BLAKE3 of each tensor), so the bytes are handed on in file
order however the ranges arrive: up to `ahead` segments are in flight or waiting, the one the consumer
needs next first. Memory stays at `ahead` segments whatever the file's size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

SEGMENT = 16 << 20  # bytes per range request: large enough that a request's cost is small beside its body

ReadRange = Callable[[str, int, int], bytes]


def segments(start: int, end: int, size: int = SEGMENT) -> list[tuple[int, int]]:
    """[start, end) cut into ranges of at most `size` bytes."""
    return [(s, min(s + size, end)) for s in range(start, end, size)]


def receive(read_range: ReadRange, path: str, spans: list[tuple[int, int]], *, connections: int) -> Iterator[bytes]:
    """The bytes of `spans` of `path`, in order, fetched `connections` at a time.

    A failed range raises when the consumer reaches it; closing the iterator early cancels what is pending.
    """
    if connections <= 1 or len(spans) <= 1:
        for start, end in spans:
            yield read_range(path, start, end)
        return
    pool = ThreadPoolExecutor(connections, thread_name_prefix="fetch")
    pending: deque[Future[bytes]] = deque()
    todo = iter(spans)
    try:
        for start, end in todo:
            pending.append(pool.submit(read_range, path, start, end))
            if len(pending) > connections:
                break
        while pending:
            body = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(read_range, path, *following))
            yield body
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
