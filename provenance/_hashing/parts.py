"""The per-tensor parts of one file: BLAKE3 per tensor and one BLAKE3 of every byte outside the tensors.

This is the engine's hot loop: each window of the file is cut into the segments of the layout and each
segment handed once to its hasher (and to the tensor's sketch, when one is asked for).
"""

from __future__ import annotations

from typing import Any

from blake3 import blake3

from manifests.records import Sketch, TensorFingerprint
from provenance._formats.interface import Layout
from provenance._hashing.quants import quant_builders
from provenance._hashing.sketch import FLOAT_DTYPES, SketchBuilder, sketch_whole

PARALLEL_TENSOR = 16 << 20  # tensors at least this large use BLAKE3's own threads, when a file has cores to spare
# Sketches per file: a sketch is ~1 KB of manifest whatever its tensor's size, so a header of 200,000 tiny tensors
# (the format's cap) would make a manifest of 200 MB, past what a manifest may be read back at and past the
# memory and time bound on hostile input. A real file holds a few thousand tensors (100,000 small ones are
# spread over shards); beyond this many, the rest of the file's float tensors get digests without sketches.
MAX_SKETCHES = 1 << 16


class PartHashers:
    """BLAKE3 per tensor plus one BLAKE3 of every byte outside the tensors, fed window by window."""

    def __init__(
        self,
        layout: Layout,
        threads: int = 1,
        sketches: bool = False,
        size: int | None = None,
        *,
        quants: frozenset[str] = frozenset(),
    ) -> None:
        self.layout = layout
        # A sketch only for a tensor the file holds in full: a tensor past the end gets no digest either,
        # and its claimed element count (2**62 x 32 in a hostile header) is not one a sampler can take.
        # Each builder is made when its tensor's bytes arrive and dropped when they end: 200,000 of them at
        # once (two BLAKE3 states each) would take gigabytes.
        self.sketched = _sketched(layout, size) if sketches else [False] * len(layout.tensors)
        self.quants = quant_builders(layout, quants, size)
        self.sketches: list[Sketch | None] = [None] * len(layout.tensors)
        self.builder: SketchBuilder | None = None  # of the tensor that continues into the next window
        self.threads = threads  # BLAKE3 threads for one large tensor: 1 when other files keep the cores busy
        segments: list[tuple[int, int, int]] = []  # (start, end, tensor index or -1 for container bytes)
        cursor = 0
        for index, tensor in enumerate(layout.tensors):
            if tensor.start > cursor:
                segments.append((cursor, tensor.start, -1))
            segments.append((tensor.start, tensor.end, index))
            cursor = max(cursor, tensor.end)
        if layout.expected_size > cursor:
            segments.append((cursor, layout.expected_size, -1))
        self.segments = segments
        self.next = 0
        self.container = blake3()
        self.open: Any = None  # hasher of a tensor that continues into the next window
        self.digests: list[str | None] = [None] * len(layout.tensors)

    def feed(self, view: memoryview, base: int) -> None:
        limit = base + len(view)
        segments, digests, container = self.segments, self.digests, self.container
        i, count = self.next, len(segments)
        while i < count:
            start, end, index = segments[i]
            if start >= base and end <= limit:  # the common case: the whole segment is in this window
                piece = view[start - base : end - base]
                if index < 0:
                    container.update(piece)
                    i += 1
                    continue
                if self.threads > 1 and end - start >= PARALLEL_TENSOR:
                    digests[index] = blake3(piece, max_threads=self.threads).hexdigest()
                else:
                    digests[index] = blake3(piece).hexdigest()
                if self.sketched[index]:
                    self.sketches[index] = self._sketch(index, piece)
                if self.quants and (quant := self.quants.get(index)) is not None:
                    quant.update(piece)
                i += 1
                continue
            if start >= limit:
                break
            piece = view[max(start, base) - base : min(end, limit) - base]
            if index < 0:
                container.update(piece)
            else:
                if self.open is None:
                    self.open = blake3(max_threads=self.threads)
                    if self.sketched[index]:
                        tensor = self.layout.tensors[index]
                        self.builder = SketchBuilder(tensor.name, tensor.dtype, tensor.shape)
                self.open.update(piece)
                if self.builder is not None:
                    self.builder.update(piece)
                if self.quants and (quant := self.quants.get(index)) is not None:
                    quant.update(piece)
                if end <= limit:
                    digests[index] = self.open.hexdigest()
                    self.open = None
                    if self.builder is not None:
                        self.sketches[index] = self.builder.finish()
                        self.builder = None
            if end > limit:
                break
            i += 1
        self.next = i

    def _sketch(self, index: int, piece: memoryview) -> Sketch:
        """The sketch of a tensor whose bytes are all in one window."""
        tensor = self.layout.tensors[index]
        return sketch_whole(tensor.name, tensor.dtype, tensor.shape, piece)

    def finish(self, size: int) -> tuple[tuple[TensorFingerprint, ...], str | None]:
        empty = memoryview(b"")
        self.feed(empty, size)  # empty tensors that sit at the very end of the file
        digests, sketches = self.digests, self.sketches
        tensors = tuple(
            [
                TensorFingerprint(
                    t.name,
                    t.dtype,
                    t.shape,
                    t.start,
                    t.end,
                    digests[i] if t.end <= size else None,
                    sketch=sketches[i] if t.end <= size else None,
                    path=t.path,
                    quants=q.finish() if (q := self.quants.get(i)) is not None and t.end <= size else None,
                )
                for i, t in enumerate(self.layout.tensors)
            ]
        )
        whole = size >= self.layout.expected_size
        return tensors, self.container.hexdigest() if whole else None


def _sketched(layout: Layout, size: int | None) -> list[bool]:
    """Which tensors get a sketch: float tensors the file holds in full, the first MAX_SKETCHES of them."""
    sketched = []
    budget = MAX_SKETCHES
    for tensor in layout.tensors:
        take = budget > 0 and tensor.dtype in FLOAT_DTYPES and (size is None or tensor.end <= size)
        budget -= take
        sketched.append(take)
    return sketched
