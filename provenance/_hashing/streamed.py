"""Hashing a file that arrives as a stream (a download that is not kept), as the engine hashes one on disk.

Tensor parts need the layout before the data, so they are had only for formats whose layout sits in the
file's first bytes (the reader's header_extent says how many): those bytes are held until the reader can
read them, then handed to the part hashers with everything after. Any other weights file gets its
SHA-256, which every manifest records.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from manifests.records import FileFingerprint, TensorFingerprint, role_of
from provenance._formats.detect import reader_for
from provenance._formats.interface import FormatReader, Layout
from provenance._hashing.merkle import PiecesHasher
from provenance._hashing.parts import PartHashers
from provenance._hashing.plan import HashPlan, Progress, update_all, whole_file_hashers
from provenance.errors import MalformedContainer


class _Header:
    """A stream's first bytes, held until its reader can read the layout from them; then its parts."""

    def __init__(self, reader: FormatReader, size: int, path: str, sketches: bool = False) -> None:
        self.reader, self.size, self.path, self.sketches = reader, size, path, sketches
        self.head: bytearray | None = bytearray()  # None once the layout is read, or cannot be
        self.need = 0  # bytes to hold before the reader is asked again
        self.parts: PartHashers | None = None
        self.error: str | None = None

    def feed(self, view: memoryview, offset: int) -> None:
        if self.parts is not None:
            self.parts.feed(view, offset)
            return
        if self.head is None:
            return
        self.head += view
        try:
            layout = self._layout()
        except MalformedContainer as exc:
            self.error, self.head = exc.reason, None
            return
        if layout is not None:
            self.parts = PartHashers(layout, sketches=self.sketches, size=self.size)
            self.parts.feed(memoryview(self.head), 0)
            self.head = None

    def _layout(self) -> Layout | None:
        """The layout once the bytes held are enough; None while they are not (or never will be)."""
        assert self.head is not None
        while len(self.head) >= self.need:  # each answer over the bytes asked with asks for more: it grows
            with memoryview(self.head) as held:  # one copy of the bytes asked with, not two
                prefix = bytes(held[: self.need])
            extent = self.reader.header_extent(prefix, self.size, self.path)
            if extent is None:  # the layout is not in the file's first bytes: nothing more is held
                self.head = None
                return None
            if extent <= len(prefix):
                return self.reader.read_layout(io.BytesIO(prefix[:extent]), self.size, self.path)
            self.need = extent
        return None


def hash_chunks(
    path: str, chunks: Iterable[bytes], size: int, plan: HashPlan, progress: Progress | None = None
) -> FileFingerprint:
    """Hash a file that arrives as a stream, as hash_file hashes one on disk.

    A stream that ends early or a header that does not validate is recorded as the file's error, as for a
    damaged download; the whole-file digests of a complete stream are kept either way.
    """
    reader = reader_for(path)
    role = role_of(path, reader is not None)
    hashers = whole_file_hashers(plan, 1, frozenset({"sha256"}) if plan.parts else frozenset())
    whole = list(hashers.values())
    pieces = PiecesHasher(plan.pieces) if plan.pieces else None
    header = _Header(reader, size, path, plan.sketches) if plan.parts and reader is not None else None
    offset = 0
    for chunk in chunks:
        view = memoryview(chunk)
        update_all(whole, view)
        if pieces is not None:
            pieces.update(view)
        if header is not None:
            header.feed(view, offset)
        offset += len(view)
        if progress:
            progress(len(view))
    parts = header.parts if header is not None else None
    error = header.error if header is not None else None
    if offset != size:
        error = error or f"the stream ended at {offset:,} of {size:,} bytes"
    tensors: tuple[TensorFingerprint, ...] = ()
    container = None
    if parts is not None:
        tensors, container = parts.finish(offset)
    return FileFingerprint(
        path=path,
        size=offset,
        role=role,
        format=reader.name if parts is not None and reader is not None else None,
        digests={name: h.hexdigest() for name, h in hashers.items()} if offset == size else {},
        tensors=tensors,
        container_blake3=container if error is None else None,
        expected_size=size if offset != size else None,
        error=error,
        pieces=pieces.finish() if pieces is not None and error is None else None,
    )
