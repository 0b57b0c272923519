"""Header tables a reader has parsed, kept by file identity, so that one file's header is parsed once.

The engine reads a GGUF's layout (key-values included); a layout adapter then needs the same key-values
(head counts, rotary base) from the same file. The table is kept here under what identifies the file's
bytes (device, inode, size, modification and change times, alike before and after the parse), and given
back to a reader of that very file instead of a second walk over its header. Bounded: a few files, and
no table whose strings are large.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import BinaryIO

from provenance._formats.interface import KeyValue

MAX_FILES = 16  # tables kept: the GGUF files of one checkpoint, or of the few being compared
MAX_CHARS = 1 << 20  # characters of string values in one table kept (a chat template is a few thousand)

Identity = tuple[int, int, int, int, int]
Table = Mapping[str, KeyValue]

_lock = threading.Lock()
_kept: OrderedDict[Identity, Table] = OrderedDict()


def identity(stream: BinaryIO) -> Identity | None:
    """What identifies the bytes of the file `stream` reads; None for a stream that is not a file."""
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def remember(before: Identity | None, stream: BinaryIO, table: Table) -> None:
    """Keep the table parsed from `stream`, if the file is the one it was (`before`) when parsing began."""
    if before is None or identity(stream) != before:
        return
    if sum(len(value) for value in table.values() if type(value) is str) > MAX_CHARS:
        return
    with _lock:
        _kept[before] = dict(table)  # a copy: the layout's own table may be changed by its holder
        _kept.move_to_end(before)
        while len(_kept) > MAX_FILES:
            _kept.popitem(last=False)


def recall(stream: BinaryIO) -> Table | None:
    """The table kept for the file `stream` reads, as it is now; None when none was kept."""
    key = identity(stream)
    if key is None:
        return None
    with _lock:
        return _kept.get(key)
