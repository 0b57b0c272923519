"""The commands that make documents rather than judge weights: `import`, `keygen` and `sign`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cli.options import ForceFlag, say
from cli.render.text import count
from provenance import ProvenanceError


def import_lists(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILES...", help="Checksum lists: checklist.chk, md5sum/sha256sum/b3sum output."),
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Manifest file to write (default: standard output).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Release name (default: the output's name, or the first list's).")
    ] = None,
    algorithm: Annotated[
        str | None, typer.Option("--algorithm", help="md5, sha256 or blake3 (default: from digest length and name).")
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Folder the listed names live in, e.g. 7B.")] = "",
    force: ForceFlag = False,
) -> None:
    """Turn published checksum lists into a file-level reference manifest."""
    from provenance import import_checksum_lists, refuse_overwrite, write_manifest

    if algorithm not in (None, "md5", "sha256", "blake3"):
        raise ProvenanceError(f"unknown algorithm {algorithm!r}; choose md5, sha256 or blake3")
    if output is not None:
        refuse_overwrite(output, force)
    release = name or (output or files[0]).name.split(".")[0]
    manifest = import_checksum_lists(files, release, algorithm=algorithm, prefix=prefix)
    if output is None:
        sys.stdout.buffer.write(manifest.to_json())
        return
    write_manifest(output, manifest, force=force)
    kinds = sorted({k for f in manifest.checkpoint.files for k in f.digests})
    weak = " (md5 only: weak evidence)" if kinds == ["md5"] else ""
    say(f"wrote {output}: {count(len(manifest.checkpoint.files), 'file')}, digests: {', '.join(kinds)}{weak}")


EncryptFlag = Annotated[
    bool,
    typer.Option(
        "--encrypt",
        help="Encrypt the private key; the password is read from PROVENANCE_KEY_PASSWORD "
        "or asked twice on the terminal, never taken from the command line.",
    ),
]


def keygen(
    name: Annotated[
        Path, typer.Argument(metavar="NAME", help="Writes NAME.key (private, mode 0600) and NAME.pub (PEM).")
    ],
    curve: Annotated[str, typer.Option("--curve", help="p256 (default), p384 or p521.")] = "p256",
    encrypt: EncryptFlag = False,
    force: ForceFlag = False,
) -> None:
    """Generate an EC key pair for signing manifests."""
    from provenance import PASSWORD_ENV, generate_key_pair, new_password

    password = new_password() if encrypt else None
    private, public = generate_key_pair(name, curve=curve, password=password, force=force)
    say(f"wrote {private} (private{', encrypted' if password else ''}, mode 0600) and {public}")
    if encrypt and password is not None:
        say(f"signing with it reads the password from {PASSWORD_ENV} or asks for it")


def sign(
    manifest: Annotated[Path, typer.Argument(metavar="MANIFEST", help="The unsigned manifest to sign; - reads stdin.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Private key (NAME.key from `provenance keygen`).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Signature bundle to write (default: MANIFEST with .sig).")
    ] = None,
    force: ForceFlag = False,
) -> None:
    """Sign a manifest: a Sigstore bundle that `model_signing verify key` accepts too.

    `-` reads the manifest from standard input; the bundle goes to standard output unless -o is given.
    """
    from provenance import read_stdin, sign_manifest_file

    if str(manifest) != "-":
        say(f"wrote {sign_manifest_file(manifest, key, output=output, force=force)}")
        return
    with tempfile.TemporaryDirectory(prefix="provenance-sign-") as folder:
        piped = Path(folder) / "stdin.json"
        piped.write_bytes(read_stdin("pipe the manifest to sign into `sign -`"))
        written = sign_manifest_file(piped, key, output=output or piped.with_suffix(".sig"), force=force)
        if output is None:
            sys.stdout.write(written.read_text(encoding="utf-8"))
        else:
            say(f"wrote {written}")
