"""BitTorrent v2 (BEP 52) Merkle hashing: a file's pieces root and its piece layer.

The pieces root is SHA-256 over a binary tree of 16 KiB blocks, padded with zero hashes to a power of
two; it does not depend on the piece length, so a manifest's root can be compared with any v2 torrent.
The piece layer (the roots of each piece's subtree) doubles as the manifest's chunk hashes: it says
which pieces of a damaged file must be fetched again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BLOCK = 16 << 10  # BEP 52 leaf size
DEFAULT_PIECE_LENGTH = 4 << 20
MAX_PIECE_LENGTH = 1 << 30
_ZERO = bytes(32)


def _zero_roots(levels: int) -> list[bytes]:
    roots = [_ZERO]
    for _ in range(levels):
        roots.append(hashlib.sha256(roots[-1] + roots[-1]).digest())
    return roots


_ZEROS = _zero_roots(64)


def _reduce(nodes: list[bytes], width: int, level: int) -> bytes:
    """The root over `nodes` padded to `width` (a power of two) with zero subtrees of height `level`."""
    layer = nodes + [_ZEROS[level]] * (width - len(nodes))
    sha = hashlib.sha256
    while len(layer) > 1:
        layer = [sha(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


def _pow2(count: int) -> int:
    return 1 << max(0, (count - 1).bit_length())


def check_piece_length(length: int) -> int:
    if length < BLOCK or length > MAX_PIECE_LENGTH or length & (length - 1):
        raise ValueError(f"piece length {length:,} is not a power of two between 16 KiB and 1 GiB")
    return length


@dataclass(frozen=True, slots=True)
class Pieces:
    """A file's BEP 52 pieces root and piece layer (empty when the file fits in one piece)."""

    root: str
    piece_length: int
    layer: tuple[str, ...] = ()

    def chunk_count(self, size: int) -> int:
        return max(1, -(-size // self.piece_length))

    def chunk_hash(self, index: int) -> str:
        """The expected hash of piece `index`: its layer entry, or the root for a one-piece file."""
        return self.layer[index] if self.layer else self.root


def leaf_hashes(data: bytes | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of `data` (which starts on a block boundary)."""
    sha = hashlib.sha256
    return [sha(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]


def piece_root(leaves: list[bytes], piece_length: int, one_piece: bool) -> str:
    """The hash of one piece from its leaves, as in the piece layer (or the root of a one-piece file)."""
    leaves = leaves or [_ZERO]
    width = _pow2(len(leaves)) if one_piece else piece_length // BLOCK
    return _reduce(leaves, width, 0).hex()


def piece_hash(data: bytes | memoryview, piece_length: int, one_piece: bool) -> str:
    """The hash of one piece's bytes, as it appears in the piece layer (or as the root of a one-piece file)."""
    return piece_root(leaf_hashes(data), piece_length, one_piece)


def layer_root(layer: list[bytes], piece_length: int) -> bytes:
    """The pieces root over a piece layer: pieces past the end are zero subtrees."""
    return _reduce(layer, _pow2(len(layer)), (piece_length // BLOCK).bit_length() - 1)


class PiecesHasher:
    """Fed a file's bytes in order (any slicing), gives its Pieces; memory is one piece of leaf hashes."""

    def __init__(self, piece_length: int = DEFAULT_PIECE_LENGTH) -> None:
        self.piece_length = check_piece_length(piece_length)
        self.per_piece = piece_length // BLOCK
        self.leaves: list[bytes] = []
        self.layer: list[bytes] = []
        self.pending = bytearray()
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        pos = 0
        if self.pending:
            pos = min(len(view), BLOCK - len(self.pending))
            self.pending += view[:pos]
            if len(self.pending) < BLOCK:
                return
            self._leaf(hashlib.sha256(self.pending).digest())
            self.pending = bytearray()
        sha, end = hashlib.sha256, len(view)
        while pos + BLOCK <= end:
            self._leaf(sha(view[pos : pos + BLOCK]).digest())
            pos += BLOCK
        if pos < end:
            self.pending += view[pos:]

    def _leaf(self, digest: bytes) -> None:
        self.leaves.append(digest)
        if len(self.leaves) == self.per_piece:
            self.layer.append(_reduce(self.leaves, self.per_piece, 0))
            self.leaves = []

    def finish(self) -> Pieces | None:
        """None for an empty file, which has no pieces root in BEP 52."""
        if self.size == 0:
            return None
        if self.pending:
            self.leaves.append(hashlib.sha256(self.pending).digest())
            self.pending = bytearray()
        if self.size <= self.piece_length:
            leaves = self.layer or self.leaves  # a file of exactly one piece has its root in the layer already
            root = leaves[0] if self.layer else _reduce(leaves, _pow2(len(leaves)), 0)
            return Pieces(root.hex(), self.piece_length)
        if self.leaves:
            self.layer.append(_reduce(self.leaves, self.per_piece, 0))
            self.leaves = []
        return Pieces(
            layer_root(self.layer, self.piece_length).hex(), self.piece_length, tuple(h.hex() for h in self.layer)
        )
