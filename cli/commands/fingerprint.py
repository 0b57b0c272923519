"""`provenance fingerprint`: a checkpoint on disk or a hub repository into an unsigned manifest."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import ForceFlag, QuietFlag, SchedulerOption, SymlinkFlag, say
from cli.progress import ByteProgress
from cli.render.text import count
from provenance import ProvenanceError

if TYPE_CHECKING:
    from provenance import Manifest

TargetArgument = Annotated[
    str, typer.Argument(metavar="PATH", help="Checkpoint directory, single weights file, or hf://ORG/REPO[@REV].")
]
OutputOption = Annotated[Path | None, typer.Option("-o", "--output", help="Manifest file to write (default: stdout).")]
NameOption = Annotated[str | None, typer.Option("--name", help="Release name (default: the folder's name).")]
ListGlobalsFlag = Annotated[
    bool, typer.Option("--list-globals", help="Only list what each PyTorch pickle would import (nothing is run).")
]
TorrentFlag = Annotated[
    bool,
    typer.Option(
        "--torrent-v2",
        help="Add each file's BitTorrent v2 pieces root and piece layer (chunk hashes for partial downloads).",
    ),
]
PieceLengthOption = Annotated[
    str, typer.Option("--piece-length", help="Chunk size for --torrent-v2: a power of two from 16KiB to 1GiB.")
]
FullFlag = Annotated[
    bool, typer.Option("--full", help="hf:// only: stream every byte for a tensor-level manifest (nothing kept).")
]
SketchesFlag = Annotated[
    bool,
    typer.Option(
        "--sketches/--no-sketches",
        help="Per float tensor: canonical F16/BF16 cast digests, moments, a seeded sample (the default; what tells "
        "a cast or a fine-tune from an unrelated tensor). --no-sketches leaves them out.",
    ),
]

QuantDigestsOption = Annotated[
    str | None,
    typer.Option(
        "--quant-digests",
        metavar="TYPES",
        help="Add per float tensor the digest of llama.cpp's converter's blocks in these GGUF types "
        "(Q8_0,Q4_0,Q4_1,Q5_0,Q5_1): proves a GGUF of the release exact.",
    ),
]


def fingerprint(
    target: TargetArgument,
    output: OutputOption = None,
    name: NameOption = None,
    force: ForceFlag = False,
    allow_symlinks: SymlinkFlag = False,
    quiet: QuietFlag = False,
    list_globals: ListGlobalsFlag = False,
    torrent_v2: TorrentFlag = False,
    piece_length: PieceLengthOption = "4MiB",
    full: FullFlag = False,
    sketches: SketchesFlag = True,
    quant_digests: QuantDigestsOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Fingerprint a checkpoint into an unsigned manifest (OMS v1.0 statement with tensor digests)."""
    from provenance import build_manifest, is_hub_spec, refuse_overwrite

    path = Path(target)
    if list_globals:
        _list_globals(path, allow_symlinks)
        return
    if output is not None:
        refuse_overwrite(output, force)  # before hashing, not after
    pieces = _piece_length(piece_length) if torrent_v2 else 0
    if is_hub_spec(target):
        from provenance import fingerprint_hub

        if quant_digests is not None:
            raise ProvenanceError("--quant-digests reads the values of the tensors: fingerprint a local copy")
        manifest = fingerprint_hub(target, name, full=full, piece_length=pieces, sketches=sketches)
    else:
        if full:
            raise ProvenanceError("--full applies to hf:// repositories; a local checkpoint is always read in full")
        from provenance import ReadOptions
        from provenance import fingerprint as fingerprint_path

        checkpoint = fingerprint_path(
            path,
            options=ReadOptions(allow_symlinks=allow_symlinks, scheduler=scheduler),
            exclude=frozenset({output}) if output is not None else frozenset(),
            piece_length=pieces,
            sketches=sketches,
            quant_digests=quant_digests if quant_digests is not None else (),
            progress=ByteProgress(quiet),
        )
        manifest = build_manifest(checkpoint, name or path.resolve().name)
    _write(manifest, output, force)


def _write(manifest: Manifest, output: Path | None, force: bool) -> None:
    """The manifest on stdout, or written atomically to `output` with one line saying what it holds."""
    from provenance import write_manifest

    if output is None:
        sys.stdout.buffer.write(manifest.to_json())
        return
    write_manifest(output, manifest, force=force)
    checkpoint = manifest.checkpoint
    say(
        f"wrote {output}: release {manifest.release.name!r}, {count(len(checkpoint.files), 'file')}, "
        f"{count(checkpoint.tensor_count, 'tensor')} (unsigned)"
    )


_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _piece_length(text: str) -> int:
    """A byte count with an optional binary unit: 16KiB, 4MiB, 4M, 1048576."""
    from provenance import check_piece_length

    match = _SIZE.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError(f"--piece-length {text!r} is not a size")
        return check_piece_length(int(match[1]) * _UNITS[match[2][:1].lower().strip("b")])
    except ValueError as exc:
        raise ProvenanceError(f"{exc}; give e.g. --piece-length 4MiB") from None


def _list_globals(path: Path, allow_symlinks: bool) -> None:
    from cli.render.text import printable
    from provenance import checkpoint_globals

    for name, global_name, allowed in checkpoint_globals(path, allow_symlinks=allow_symlinks):
        status = "not listed:" if allowed is None else ("allowed " if allowed else "REFUSED ")
        print(printable(f"{name}: {status} {global_name}"))
