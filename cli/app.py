"""The Typer application: each command parses its arguments and calls one library function."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.progress import ByteProgress
from provenance.errors import ProvenanceError

if TYPE_CHECKING:
    from rich.console import Console

    from provenance.report import Report

app = typer.Typer(
    name="provenance",
    help="Fingerprint model checkpoints tensor by tensor and verify them against release manifests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def stdout_console() -> Console:
    """rich is imported only when a table is drawn: `--json` and scripts skip its import time."""
    from rich.console import Console

    return Console(highlight=False)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")]
ForceFlag = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]
SymlinkFlag = Annotated[
    bool, typer.Option("--allow-symlinks", help="Follow symlinks that point outside the checkpoint.")
]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
KeyOption = Annotated[
    list[Path] | None,
    typer.Option("--key", "-k", help="Public key the manifest must be signed by (repeatable). Requires a signature."),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        help="Set aside files whose relative path (or a folder of it) matches this glob (repeatable); listed.",
    ),
]
AllowOlderFlag = Annotated[
    bool, typer.Option("--allow-older", help="Accept a manifest older than one already verified for this release.")
]
REFERENCE_HELP = (
    "Reference: a manifest, a signature bundle (ours or model_signing's) or a registry entry. "
    "./NAME is always a file, registry:NAME always a registry entry; a bare NAME that is both is refused."
)


def say(line: str) -> None:
    """One unwrapped line on stderr: errors and warnings must stay greppable, whatever the terminal width."""
    from cli.render.text import printable

    sys.stderr.write(printable(" ".join(line.split())) + "\n")
    sys.stderr.flush()


def _finish(report: Report, as_json: bool, show_all: bool = False) -> None:
    for warning in report.warnings:
        say(f"warning: {warning}")
    if as_json:
        from cli.render.json import render_json

        render_json(report)
    else:
        from cli.render.table import render_table

        render_table(report, stdout_console(), show_all=show_all)
    raise typer.Exit(report.exit_code)


@app.command()
def fingerprint(
    target: Annotated[
        str, typer.Argument(metavar="PATH", help="Checkpoint directory, single weights file, or hf://ORG/REPO[@REV].")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Manifest file to write (default: stdout).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Release name (default: the folder's name).")] = None,
    force: ForceFlag = False,
    allow_symlinks: SymlinkFlag = False,
    quiet: QuietFlag = False,
    list_globals: Annotated[
        bool,
        typer.Option("--list-globals", help="Only list what each PyTorch pickle would import (nothing is run)."),
    ] = False,
    torrent_v2: Annotated[
        bool,
        typer.Option(
            "--torrent-v2",
            help="Add each file's BitTorrent v2 pieces root and piece layer (chunk hashes for partial downloads).",
        ),
    ] = False,
    piece_length: Annotated[
        str, typer.Option("--piece-length", help="Chunk size for --torrent-v2: a power of two from 16KiB to 1GiB.")
    ] = "4MiB",
    full: Annotated[
        bool, typer.Option("--full", help="hf:// only: stream every byte for a tensor-level manifest (nothing kept).")
    ] = False,
    sketches: Annotated[
        bool,
        typer.Option(
            "--sketches", help="Add per float tensor: canonical F16/BF16 cast digests, moments, a seeded sample."
        ),
    ] = False,
) -> None:
    """Fingerprint a checkpoint into an unsigned manifest (OMS v1.0 statement with tensor digests)."""
    from provenance._sources.hub import is_hub_spec

    path = Path(target)
    if list_globals:
        _list_globals(path, allow_symlinks)
        return
    import provenance
    from manifests import build_manifest, write_atomic
    from manifests.io import dump_json, refuse_overwrite

    if output is not None:
        refuse_overwrite(output, force)  # before hashing, not after
    exclude = frozenset({output}) if output is not None else frozenset()
    pieces = _piece_length(piece_length) if torrent_v2 else 0
    if is_hub_spec(target):
        from provenance import fingerprint_hub

        manifest = fingerprint_hub(target, name, full=full, piece_length=pieces)
        checkpoint, release = manifest.checkpoint, manifest.release.name
    else:
        if full:
            raise ProvenanceError("--full applies to hf:// repositories; a local checkpoint is always read in full")
        checkpoint = provenance.fingerprint(
            path,
            options=provenance.ReadOptions(allow_symlinks=allow_symlinks),
            exclude=exclude,
            piece_length=pieces,
            sketches=sketches,
            progress=ByteProgress(quiet),
        )
        release = name or path.resolve().name
        manifest = build_manifest(checkpoint, release)
    data = dump_json(manifest.statement())
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        write_atomic(output, data, force=force)
        say(
            f"wrote {output}: release {release!r}, {len(checkpoint.files)} files, "
            f"{checkpoint.tensor_count} tensors (unsigned)"
        )


_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _piece_length(text: str) -> int:
    """A byte count with an optional binary unit: 16KiB, 4MiB, 4M, 1048576."""
    from manifests.pieces import check_piece_length

    match = _SIZE.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError(f"--piece-length {text!r} is not a size")
        return check_piece_length(int(match[1]) * _UNITS[match[2][:1].lower().strip("b")])
    except ValueError as exc:
        raise ProvenanceError(f"{exc}; give e.g. --piece-length 4MiB") from None


def _list_globals(path: Path, allow_symlinks: bool) -> None:
    from cli.render.text import printable
    from provenance._formats.torch import checkpoint_globals

    for name, global_name, allowed in checkpoint_globals(path, allow_symlinks=allow_symlinks):
        status = "not listed:" if allowed is None else ("allowed " if allowed else "REFUSED ")
        print(printable(f"{name}: {status} {global_name}"))


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="The download to check: a directory or a single file.")],
    manifest: Annotated[
        str,
        typer.Option("--manifest", "-m", help=REFERENCE_HELP),
    ],
    key: KeyOption = None,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching files and tensors too.")] = False,
    allow_symlinks: SymlinkFlag = False,
    quiet: QuietFlag = False,
    ignore: IgnoreOption = None,
) -> None:
    """Check a download against a manifest: identical, equivalent, incomplete, modified or unrelated."""
    from provenance import ReadOptions, verify_download

    report = verify_download(
        path,
        manifest,
        keys=key,
        allow_older=allow_older,
        options=ReadOptions(allow_symlinks=allow_symlinks, patterns=tuple(ignore or ())),
        progress=ByteProgress(quiet),
    )
    _finish(report, as_json, show_all)


@app.command()
def torrent(
    torrent_file: Annotated[Path, typer.Argument(metavar="TORRENT", help="The .torrent file (v1, v2 or hybrid).")],
    manifest: Annotated[str, typer.Option("--manifest", "-m", help=REFERENCE_HELP)],
    key: KeyOption = None,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching files too.")] = False,
) -> None:
    """Check a .torrent against a manifest before downloading: names, sizes and v2 pieces roots."""
    from provenance import verify_torrent

    _finish(verify_torrent(torrent_file, manifest, keys=key, allow_older=allow_older), as_json, show_all)


@app.command()
def audit(
    targets: Annotated[
        list[str] | None,
        typer.Argument(metavar="TARGET...", help="hf://ORG/REPO[@REV] mirrors, or `cache` for the local hub cache."),
    ] = None,
    manifest: Annotated[
        list[str] | None,
        typer.Option("--manifest", "-m", help=f"{REFERENCE_HELP} For `cache`, repeatable."),
    ] = None,
    search: Annotated[str | None, typer.Option("--search", help="Also audit the hub's models matching TEXT.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many search results.")] = 50,
    spot_check: Annotated[
        int, typer.Option("--spot-check", help="Fetch N random chunks or tensors by range request and check them.")
    ] = 0,
    full: Annotated[bool, typer.Option("--full", help="Stream every byte through the hasher (nothing kept).")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for the spot checks' choice.")] = None,
    max_requests: Annotated[int, typer.Option("--max-requests", help="HTTP requests in flight at most.")] = 8,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="`cache` only: the hub cache (default: huggingface_hub's).")
    ] = None,
    key: KeyOption = None,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching files too (one mirror).")] = False,
) -> None:
    """Audit hub mirrors against a manifest from metadata, headers, sampled or all bytes; or the local cache."""
    from cli.render.audit import render_cache, render_mirrors

    targets = targets or []
    if targets == ["cache"]:
        from provenance import audit_local_cache

        snapshots = audit_local_cache(cache_dir, manifest, keys=key, allow_older=allow_older)
        raise typer.Exit(render_cache(snapshots, as_json, stdout_console, say))
    if "cache" in targets:
        raise ProvenanceError("`provenance audit cache` takes no other target; audit mirrors in a separate run")
    if not manifest or len(manifest) != 1:
        raise ProvenanceError("give exactly one --manifest to audit mirrors against")
    if spot_check < 0 or max_requests < 1 or limit < 1:
        raise ProvenanceError("--spot-check must be >= 0, --max-requests and --limit >= 1")
    from provenance import audit_mirrors
    from provenance._checks.audit_mirror import AuditOptions

    results = audit_mirrors(
        targets,
        manifest[0],
        search=search,
        limit=limit,
        options=AuditOptions(spot_check=spot_check, full=full, seed=seed),
        keys=key,
        allow_older=allow_older,
        in_flight=max_requests,
    )
    if len(results) == 1 and not search and results[0].report is not None:
        _finish(results[0].report, as_json, show_all)
    raise typer.Exit(render_mirrors(results, as_json, stdout_console, say))


@app.command()
def identify(
    path: Annotated[Path, typer.Argument(help="The checkpoint to identify: a directory or a single file.")],
    registry: Annotated[
        list[Path] | None, typer.Option("--registry", help="Another folder of reference manifests (repeatable).")
    ] = None,
    allow_older: AllowOlderFlag = False,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
    ignore: IgnoreOption = None,
) -> None:
    """Which known release is this, or which does it derive from: ranked candidates and how they match."""
    from provenance import ReadOptions, identify_path

    ranked = identify_path(
        path,
        registry,
        options=ReadOptions(patterns=tuple(ignore or ())),
        allow_older=allow_older,
        progress=ByteProgress(quiet),
    )
    if as_json:
        import json

        sys.stdout.write(json.dumps({"matches": [c.as_dict() for c in ranked]}, indent=2) + "\n")
    else:
        from cli.render.audit import render_rows

        rows = [[c.release, c.verdict.value, f"{c.share:.0%}", c.how] for c in ranked]
        render_rows(stdout_console(), ["release", "verdict", "share", "how"], rows)
    best = ranked[0] if ranked else None
    raise typer.Exit(0 if best is not None and best.verdict.passes else 1)


@app.command("import")
def import_lists(
    files: Annotated[list[Path], typer.Argument(help="Checksum lists: checklist.chk, md5sum/sha256sum/b3sum output.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Manifest file to write.")],
    name: Annotated[str | None, typer.Option("--name", help="Release name (default: the output's name).")] = None,
    algorithm: Annotated[
        str | None, typer.Option("--algorithm", help="md5, sha256 or blake3 (default: from digest length and name).")
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Folder the listed names live in, e.g. 7B.")] = "",
    force: ForceFlag = False,
) -> None:
    """Turn published checksum lists into a file-level reference manifest."""
    from manifests.importers import import_checksum_lists
    from manifests.io import dump_json, refuse_overwrite, write_atomic

    if algorithm not in (None, "md5", "sha256", "blake3"):
        raise ProvenanceError(f"unknown algorithm {algorithm!r}; choose md5, sha256 or blake3")
    refuse_overwrite(output, force)
    manifest = import_checksum_lists(files, name or output.name.split(".")[0], algorithm=algorithm, prefix=prefix)
    write_atomic(output, dump_json(manifest.statement()), force=force)
    kinds = sorted({k for f in manifest.checkpoint.files for k in f.digests})
    weak = " (md5 only: weak evidence)" if kinds == ["md5"] else ""
    say(f"wrote {output}: {len(manifest.checkpoint.files)} files, digests: {', '.join(kinds)}{weak}")


@app.command()
def keygen(
    name: Annotated[Path, typer.Argument(help="Writes NAME.key (private, mode 0600) and NAME.pub (PEM).")],
    curve: Annotated[str, typer.Option("--curve", help="p256 (default), p384 or p521.")] = "p256",
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt the private key; the password is read from PROVENANCE_KEY_PASSWORD "
            "or asked twice on the terminal, never taken from the command line.",
        ),
    ] = False,
    force: ForceFlag = False,
) -> None:
    """Generate an EC key pair for signing manifests."""
    from manifests.keys import PASSWORD_ENV, generate_key_pair, new_password

    password = new_password() if encrypt else None
    private, public = generate_key_pair(name, curve=curve, password=password, force=force)
    say(f"wrote {private} (private{', encrypted' if password else ''}, mode 0600) and {public}")
    if encrypt and password is not None:
        say(f"signing with it reads the password from {PASSWORD_ENV} or asks for it")


@app.command()
def sign(
    manifest: Annotated[Path, typer.Argument(help="The unsigned manifest to sign.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Private key (NAME.key from `provenance keygen`).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Signature bundle to write (default: MANIFEST with .sig).")
    ] = None,
    force: ForceFlag = False,
) -> None:
    """Sign a manifest: a Sigstore bundle that `model_signing verify key` accepts too."""
    from manifests.signing.files import sign_manifest_file

    written = sign_manifest_file(manifest, key, output=output, force=force)
    say(f"wrote {written}")


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="Reference side: a checkpoint or a manifest.")],
    b: Annotated[Path, typer.Argument(help="Compared side: a checkpoint or a manifest.")],
    as_json: JsonFlag = False,
    show_all: Annotated[bool, typer.Option("--all", help="List matching files and tensors too.")] = False,
    allow_symlinks: SymlinkFlag = False,
    allow_older: AllowOlderFlag = False,
    quiet: QuietFlag = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw the layer-by-kind heatmap of change to FILE (.svg or .png)."),
    ] = None,
    force: ForceFlag = False,
    ignore: IgnoreOption = None,
) -> None:
    """Compare two checkpoints or manifests, tensor by tensor (A is the reference), with drift per layer."""
    from provenance import ReadOptions, diff_paths
    from provenance._judging.drift import drift

    if plot is not None:
        from manifests.io import refuse_overwrite

        if plot.suffix.lower() not in (".svg", ".png"):
            raise ProvenanceError(f"--plot {plot}: give a file name ending in .svg or .png")
        refuse_overwrite(plot, force)
    report = diff_paths(
        a,
        b,
        options=ReadOptions(allow_symlinks=allow_symlinks, patterns=tuple(ignore or ())),
        allow_older=allow_older,
        progress=ByteProgress(quiet),
    )
    grid = drift(report)
    if plot is not None:
        from cli.render.picture import write_plot

        write_plot(grid, plot, force=force)
        say(f"wrote {plot}: {len(grid.layers)} layers by {len(grid.kinds)} tensor kinds")
    if not as_json and grid.changed:
        from cli.render.picture import terminal_lines
        from cli.render.text import printable

        console = stdout_console()
        for line in terminal_lines(grid):  # tensor kinds are named after the files' own tensor names
            console.print(printable(line), highlight=False, soft_wrap=True, markup=False)
    _finish(report, as_json, show_all)


@app.command()
def demo(
    folder: Annotated[
        Path | None, typer.Option("--dir", help="Where to build the sample (default: a temp dir).")
    ] = None,
) -> None:
    """Build the bundled sample release, fingerprint it, then verify a damaged copy of it."""
    from cli.demo import run_demo

    if folder is None:
        with tempfile.TemporaryDirectory(prefix="provenance-demo-") as tmp:
            run_demo(Path(tmp), stdout_console())
    else:
        run_demo(folder, stdout_console())


def main() -> None:
    """Console entry point: turns every expected failure into one line on stderr and its exit code."""
    try:
        code = app(standalone_mode=False)
    except ProvenanceError as exc:
        say(f"error: {exc}")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        say("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:
        # click's usage errors (typer vendors click, so they are matched by shape, not by class)
        if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
        else:
            context = getattr(exc, "ctx", None)
            command = getattr(context, "command_path", "provenance")
            say(f"error: {exc.format_message()} (see: {command} --help)")
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    sys.exit(code if isinstance(code, int) else 0)
