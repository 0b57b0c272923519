"""Tensors that are views of a storage (strided, shared, big-endian): bounded, then gathered and digested.

The storage is mapped read-only and its elements gathered in row-major order a block of rows at a time,
byte-swapped to little-endian where needed: the same digest as the tensor saved contiguously.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from blake3 import blake3

from manifests.dtypes import DTYPE_BITS
from manifests.records import TensorFingerprint
from provenance._formats.interface import Layout, ViewRecord
from provenance.errors import FileChanged, MalformedContainer

GATHER = 16 << 20  # bytes of a strided view copied at a time to make them contiguous
VIEW_SLACK = 1 << 30  # bytes views may read beyond the file's size (expanded tensors, tied weights)


def check_views(layout: Layout, size: int, path: str) -> None:
    """Refuse views whose gathering would cost far more than reading the file: a stride-0 or overlapping
    view can claim terabytes of elements over a storage of a few bytes."""
    total = 0
    for view in layout.views:
        count = 1
        for dim in view.shape:
            count *= dim
        total += count * DTYPE_BITS[view.dtype] // 8
        if total > 2 * size + VIEW_SLACK:
            raise MalformedContainer(
                path,
                f"its views (strided or shared tensors) read {total:,} bytes or more from a file of {size:,}; "
                "refusing to gather them",
            )


def digest_views(fd: int, size: int, views: Sequence[ViewRecord], full: Path) -> tuple[TensorFingerprint, ...]:
    """Digest tensors that are strided, shared or big-endian views of a storage, in bounded memory.

    The storage is mapped read-only and its elements gathered in row-major order a block of rows at a
    time, byte-swapped to little-endian where needed: the same digest as the tensor saved contiguously.
    """
    import numpy as np  # only checkpoints with views pay for numpy

    return tuple(
        TensorFingerprint(
            view.name,
            view.dtype,
            view.shape,
            view.storage_start,
            view.storage_end,
            _gather_digest(fd, view, np, full) if view.storage_end <= size else None,
            True,
            path=view.path,
        )
        for view in views
    )


def _gather_digest(fd: int, view: ViewRecord, np: Any, full: Path) -> str:
    itemsize = DTYPE_BITS[view.dtype] // 8
    hasher = blake3()
    count = 1
    for dim in view.shape:
        count *= dim
    if count == 0 or view.storage_end == view.storage_start:
        return hasher.hexdigest()
    if os.fstat(fd).st_size < view.storage_end:  # a mapped page past a new end of file would fault
        raise FileChanged(f"{full} was cut short while it was being read; wait until nothing writes it")
    aligned = view.storage_start - view.storage_start % mmap.ALLOCATIONGRANULARITY
    length = view.storage_end - aligned
    unit = itemsize // 2 if view.dtype == "C64" else itemsize  # a complex is two floats
    with mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=aligned) as mapped:
        raw = np.frombuffer(
            mapped, dtype=np.uint8, count=view.storage_end - view.storage_start, offset=view.storage_start - aligned
        )
        elements = raw.view(np.dtype(f"V{itemsize}"))
        strided = np.lib.stride_tricks.as_strided(
            elements[view.offset :],
            shape=view.shape or (1,),
            strides=tuple(s * itemsize for s in view.stride) or (itemsize,),
            writeable=False,
        )
        for part in _blocks(strided, GATHER):
            block = np.ascontiguousarray(part)
            data = block.view(np.uint8).reshape(-1, unit)
            if view.big_endian and unit > 1:
                data = data[:, ::-1]
            hasher.update(np.ascontiguousarray(data).tobytes())
            del block, data, part
        del strided, elements, raw
    return hasher.hexdigest()


def _blocks(array: Any, limit: int) -> Iterator[Any]:
    """Consecutive slices of `array` in row-major order, each of at most `limit` bytes (or one element):
    whole rows at a time where rows are small, each row cut up in turn where one row is larger."""
    if array.nbytes <= limit or array.ndim == 0:
        yield array
        return
    if array.ndim == 1:
        step = max(1, limit // array.itemsize)
        for first in range(0, array.shape[0], step):
            yield array[first : first + step]
        return
    row = array[0].nbytes
    if row <= limit:
        step = max(1, limit // max(1, row))
        for first in range(0, array.shape[0], step):
            yield array[first : first + step]
        return
    for index in range(array.shape[0]):
        yield from _blocks(array[index], limit)
