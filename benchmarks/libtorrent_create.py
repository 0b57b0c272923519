"""The peer for `fingerprint --torrent-v2`: libtorrent hashing a directory into a v2 torrent.

Run by benchmarks/run.py inside its peer venv: `python libtorrent_create.py DIR OUT PIECE_LENGTH`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path


def main() -> None:
    import libtorrent as lt

    folder, output, piece_length = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        storage = lt.file_storage()
        lt.add_files(storage, str(folder))
        creator = lt.create_torrent(storage, piece_length, flags=lt.create_torrent.v2_only)
        lt.set_piece_hashes(creator, str(folder.parent))
        output.write_bytes(lt.bencode(creator.generate()))


if __name__ == "__main__":
    main()
