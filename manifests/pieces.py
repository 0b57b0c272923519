"""BitTorrent v2 (BEP 52) pieces as a manifest records them: a file's pieces root and its piece layer.

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
ZERO = bytes(32)


def _zero_roots(levels: int) -> list[bytes]:
    roots = [ZERO]
    for _ in range(levels):
        roots.append(hashlib.sha256(roots[-1] + roots[-1]).digest())
    return roots


ZERO_ROOTS = _zero_roots(64)


def reduce_layer(nodes: list[bytes], width: int, level: int) -> bytes:
    """The root over `nodes` padded to `width` (a power of two) with zero subtrees of height `level`."""
    layer = nodes + [ZERO_ROOTS[level]] * (width - len(nodes))
    sha = hashlib.sha256
    while len(layer) > 1:
        layer = [sha(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


def pow2(count: int) -> int:
    return 1 << max(0, (count - 1).bit_length())


def check_piece_length(length: int) -> int:
    """`length` when BEP 52 allows it as a piece length (a power of two, 16 KiB to 1 GiB); else ValueError."""
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


def layer_root(layer: list[bytes], piece_length: int) -> bytes:
    """The pieces root over a piece layer: pieces past the end are zero subtrees."""
    return reduce_layer(layer, pow2(len(layer)), (piece_length // BLOCK).bit_length() - 1)
