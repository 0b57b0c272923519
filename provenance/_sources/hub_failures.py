"""How hub requests fail: the exceptions the request gate retries or gives up on, and the wording of why."""

from __future__ import annotations


class TooSlow(Exception):
    """A request, or a chunk of a stream, not finished within the total time limit: not retried."""


class Transient(Exception):
    """A response that should not happen on a healthy connection (a short body): retried."""


def unreachable(exc: BaseException) -> str | None:
    """Why no request can reach the hub at all, when retrying cannot help: its host name does not resolve,
    or this machine has no route to it (no network). None for failures worth retrying."""
    import errno
    import socket

    chain: list[BaseException] = [exc]
    while len(chain) < 8 and (chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return "cannot resolve the host name of"
    if any(isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) for e in chain):
        return "this machine has no route to"
    return None


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]
