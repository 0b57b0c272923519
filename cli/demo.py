"""The demo: the main job end to end on the bundled sample release, printed as the commands a user types."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from cli.render.table import render_table
from provenance._sample import build_sample_release, flip_bit
from provenance.errors import UnreadableInput


def run_demo(folder: Path, console: Console) -> None:
    """Each step printed as the command a user would type, then its real output."""
    import provenance
    from manifests import build_manifest, write_atomic
    from manifests.io import dump_json
    from provenance import verify_download

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    if folder.exists() and any(folder.iterdir()):
        raise UnreadableInput(f"{folder} is not empty; give an empty or new folder to --dir")
    folder.mkdir(parents=True, exist_ok=True)
    release = build_sample_release(folder / "release")
    say(f"[bold]1. a sample release[/] in {release}: 3 safetensors shards, index, config, tokenizer")

    manifest_path = folder / "release.manifest.json"
    say(f"\n[bold]$ provenance fingerprint {release} -o {manifest_path}[/]")
    checkpoint = provenance.fingerprint(release)
    write_atomic(manifest_path, dump_json(build_manifest(checkpoint, "sample-release").statement()))
    say(f"{len(checkpoint.files)} files, {checkpoint.tensor_count} tensors fingerprinted")

    download = folder / "download"
    shutil.copytree(release, download)
    flip_bit(download / "model-00002-of-00003.safetensors", "model.layers.2.mlp.up_proj.weight", byte=100, bit=3)
    (download / "model-00003-of-00003.safetensors").unlink()
    say(
        f"\n[bold]2. a damaged copy[/] in {download}: one bit flipped in "
        "model.layers.2.mlp.up_proj.weight, shard 3 of 3 deleted"
    )

    say(f"\n[bold]$ provenance verify {download} --manifest {manifest_path}[/]")
    report = verify_download(download, manifest_path)
    render_table(report, console)
    say(f"(exit code {report.exit_code})")
