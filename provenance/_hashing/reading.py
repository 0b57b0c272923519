"""Reading a listed file: opened without following a swap, leased, and read window by window.

Files are read through bounded, read-only mmap windows (no copy into Python buffers, memory flat
whatever the checkpoint's size). A mapped page past the end of a file that shrank raises SIGBUS, which
no Python code can catch. So a file is mapped only while this process holds a read lease on it (Linux
F_SETLEASE): another process that opens it for writing or truncates it then waits until the lease is
given up, which happens before the next window, with the file reported as changed. Where no lease can be
had (a file of another user, a file system without leases, a file open for writing right now), windows
are read with readinto instead: slower by a copy, but a file cut short only ends a read early.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import mmap
import os
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from provenance._hashing.paths import link_bound
from provenance.errors import FileChanged, UnreadableInput, UnsafePath

WINDOW = 64 << 20  # bytes mapped at a time per file: bounds memory, large enough to amortise syscalls
COPY_WINDOW = 8 << 20  # bytes read at a time where a file cannot be leased: a buffer that stays in cache


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def open_listed(root: Path, full: Path, allow_symlinks: bool) -> io.FileIO:
    """Open a listed file without blocking or following a swap: a FIFO, device or folder put in its place
    since the listing, or a symlink repointed outside the checkpoint, is reported as a changed file.

    O_NONBLOCK keeps a FIFO's open from waiting for a writer; O_NOFOLLOW refuses a symlink as the last
    component, and only a path that is a symlink is opened again following it, then resolved once more:
    the resolved file must be the one opened (same device and inode) and, unless symlinks may leave the
    checkpoint, inside it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(full, flags | os.O_NOFOLLOW)
            linked = False
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = os.open(full, flags)
            linked = True
    except OSError as exc:
        raise UnreadableInput(f"cannot open {full}: {exc.strerror}; check the path and its permissions") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise FileChanged(f"{full} is no longer a regular file (replaced since it was listed); check who writes it")
        if linked:
            target = Path(os.path.realpath(full))
            try:
                resolved = target.stat()
            except OSError:
                resolved = None
            if resolved is None or (resolved.st_dev, resolved.st_ino) != (opened.st_dev, opened.st_ino):
                raise FileChanged(f"{full} was repointed while it was being opened; check who changes it, then retry")
            if not allow_symlinks and not target.is_relative_to(link_bound(root)):
                raise UnsafePath(
                    f"{full} is a symlink that now leaves the checkpoint (to {target}), changed since it was "
                    "listed; check who changes it"
                )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb", closefd=True)


def take_lease(fd: int) -> bool:
    """A read lease on the file, so that nobody can truncate it under a mapped window; False if refused.

    The lease-break signal is set to SIGURG, ignored unless handled: the default SIGIO would kill us.
    """
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return False
    return True


def lease_held(fd: int) -> bool:
    """False once another process asked to write or truncate the file (the lease is being broken)."""
    return bool(fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK)


@contextlib.contextmanager
def _window(fd: int, offset: int, length: int, leased: bool, full: Path) -> Iterator[memoryview]:
    """The bytes [offset, offset + length) of the file: mapped under a lease, else copied by readinto."""
    if leased:
        if not lease_held(fd):
            raise FileChanged(f"{full} is being written or truncated by another process; wait until it is done")
        with mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=offset) as window:
            window.madvise(mmap.MADV_SEQUENTIAL)
            view = memoryview(window)
            try:
                yield view
            finally:
                view.release()
        return
    buffer = bytearray(length)
    view = memoryview(buffer)
    try:
        got = os.preadv(fd, [view], offset)
        while 0 < got < length:
            more = os.preadv(fd, [view[got:]], offset + got)
            if more == 0:
                break
            got += more
        if got != length:
            raise FileChanged(f"{full} was cut short while it was being read; wait until nothing writes it")
        yield view
    finally:
        view.release()


def read_windows(
    fd: int,
    size: int,
    full: Path,
    window_size: int,
    leased: bool,
    consume: Callable[[memoryview, int], None],
    progress: Callable[[int], None] | None,
) -> None:
    """Hand each window of the file to `consume(view, offset)` in order, the view valid only during the
    call; a file whose size changes between windows is reported as changed."""
    offset = 0
    if not leased:
        window_size = min(window_size, COPY_WINDOW)
    while offset < size:
        if os.fstat(fd).st_size != size:
            raise FileChanged(f"{full} changed size while it was being read; wait until nothing writes it")
        length = min(window_size, size - offset)
        with _window(fd, offset, length, leased, full) as view:
            consume(view, offset)
        offset += length
        if progress:
            progress(length)
