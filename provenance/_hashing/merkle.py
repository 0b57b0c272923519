"""BitTorrent v2 (BEP 52) Merkle hashing: a file's pieces root and its piece layer, fed in one read.

The tree itself (16 KiB leaves, zero padding, the root over a piece layer) is the manifest's record, in
`manifests.pieces`; this module feeds it bytes.
"""

from __future__ import annotations

import hashlib

from manifests.pieces import (
    BLOCK,
    DEFAULT_PIECE_LENGTH,
    ZERO,
    Pieces,
    check_piece_length,
    layer_root,
    pow2,
    reduce_layer,
)


def leaf_hashes(data: bytes | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of `data` (which starts on a block boundary)."""
    sha = hashlib.sha256
    return [sha(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]


def piece_root(leaves: list[bytes], piece_length: int, one_piece: bool) -> str:
    """The hash of one piece from its leaves, as in the piece layer (or the root of a one-piece file)."""
    leaves = leaves or [ZERO]
    width = pow2(len(leaves)) if one_piece else piece_length // BLOCK
    return reduce_layer(leaves, width, 0).hex()


def piece_hash(data: bytes | memoryview, piece_length: int, one_piece: bool) -> str:
    """The hash of one piece's bytes, as it appears in the piece layer (or as the root of a one-piece file)."""
    return piece_root(leaf_hashes(data), piece_length, one_piece)


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
            self.layer.append(reduce_layer(self.leaves, self.per_piece, 0))
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
            root = leaves[0] if self.layer else reduce_layer(leaves, pow2(len(leaves)), 0)
            return Pieces(root.hex(), self.piece_length)
        if self.leaves:
            self.layer.append(reduce_layer(self.leaves, self.per_piece, 0))
            self.leaves = []
        return Pieces(
            layer_root(self.layer, self.piece_length).hex(), self.piece_length, tuple(h.hex() for h in self.layer)
        )
