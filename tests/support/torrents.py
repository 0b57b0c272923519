"""Torrents of a folder written by libtorrent, the reference BitTorrent implementation (v1, v2, hybrid)."""

from __future__ import annotations

import warnings
from pathlib import Path

import libtorrent as lt

PIECE = 32 << 10  # small pieces, so the sample's shards span several of them


def make_torrent(folder: Path, kind: str, piece_length: int = PIECE) -> bytes:
    """A torrent of `folder` written by libtorrent, the reference BitTorrent implementation."""
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        storage = lt.file_storage()
        lt.add_files(storage, str(folder))
        creator = lt.create_torrent(storage, piece_length, flags=flags)
        lt.set_piece_hashes(creator, str(folder.parent))
        return bytes(lt.bencode(creator.generate()))


def write_torrent(tmp_path: Path, folder: Path, kind: str, name: str | None = None) -> Path:
    path = tmp_path / f"{name or kind}.torrent"
    path.write_bytes(make_torrent(folder, kind))
    return path
